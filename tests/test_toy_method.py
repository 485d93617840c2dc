"""Adding a pruning method touches one file: a toy method defined and registered here runs
through a sweep into a store, gets FLOPs, a label and a figure, with nothing else edited."""
from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import mlp
from sparsejax.analysis import flops, pareto
from sparsejax.config import RunConfig
from sparsejax.pruning import base, registry
from sparsejax.pruning.topk import keep_top, weights_of
from sparsejax.sweep import runner
from sparsejax.sweep.plan import Plan, grid
from sparsejax.sweep import store as store_lib
from sparsejax.sweep.store import Store
from sparsejax.viz import figures


@dataclasses.dataclass(frozen=True)
class ToyParams(base.MethodParams):
    power: int = 1  # score |W|^power (the ranking is the same for every power >= 1)


@dataclasses.dataclass(frozen=True)
class ToyMagnitude(base.AtInit):
    """Magnitude pruning at initialisation: keep the B largest |W| of the initial weights."""
    name = "toy_magnitude"
    label = "Toy magnitude"
    params_type = ToyParams

    def score_one(self, params, budget, key, lr, data, counts_K, widths):
        return keep_top(tuple(jnp.abs(w) ** self.params.power for w in weights_of(params)), budget)

    def prune_flops(self, ctx):
        return ctx.conv.pass_flops(1, ctx.dense, grad=False)  # one look at every weight


@pytest.fixture
def toy():
    method = registry.register(ToyMagnitude())
    yield method
    registry.unregister(method.name)


def test_toy_method_sweep_flops_and_figure(toy, tmp_path):
    widths = (4, 4, 4)
    configs = grid(method=["toy_magnitude", "random"], widths=[widths], budget=[9, 20], lr=0.1, epochs=1,
                   schedule="cosine")
    store_path = str(tmp_path / "toy.sqlite")
    runner.run_sweep(Plan(configs), store_path, population_size=4, chunk_steps=390, log=lambda *_: None)
    with Store(store_path) as st:
        recs = list(st.iter_records(with_blobs=True))
    toys = [r for r in recs if r["config"]["method"] == "toy_magnitude"]
    assert len(toys) == 2 and len(recs) == 4
    for r in toys:  # exactly B weights in the stored masks
        flat = r["masks"] if isinstance(r["masks"], dict) else store_lib.flatten_arrays(r["masks"])
        kept = sum(int(np.sum(v)) for k, v in flat.items() if k.endswith("w"))
        assert kept == r["config"]["budget"] and r["weight_nnz"] <= kept
        assert 0.0 <= r["accuracy"] <= 1.0
    # FLOPs and the label come from the method itself
    f = flops.method_flops("toy_magnitude", width=4, budget=20)
    assert f["prune"] == mlp.weight_count(widths) + flops.expected_bias_nnz(widths, weights=44)
    assert f["train"] == flops.method_flops("random", width=4, budget=20)["train"] > 0
    assert flops.METHOD_LABELS["toy_magnitude"] == "Toy magnitude"
    # a figure from the store, the toy method in it under its label
    rows = pareto.load_table(store_path)
    assert "toy_magnitude" in figures.ordered_methods({r["method"] for r in rows})
    fig = figures.fig_method_scatter(rows, "random", 4)
    assert "Toy magnitude" in [ax.get_title() for ax in fig.axes]
    paths = figures.method_scatters(rows, str(tmp_path / "fig"))
    assert paths and all(os.path.getsize(p) > 0 for p in paths)
    # its params are in the run id
    default = RunConfig(method="toy_magnitude", widths=widths, budget=20).run_id
    assert RunConfig(method="toy_magnitude", widths=widths, budget=20, method_params={"power": 2}).run_id != default
    assert RunConfig(method="toy_magnitude", widths=widths, budget=20, method_params={"power": 1}).run_id == default


def test_toy_scores_are_the_initial_magnitudes(toy):
    params = mlp.init_population(np.zeros((2, 2), np.uint32), (4, 4, 4), "torch")
    wm = toy.prune_at_init(params, jnp.asarray([5, 30]), None, jnp.ones(2), np.zeros((1, 2)), np.zeros(1), (4, 4, 4))
    for i, b in enumerate((5, 30)):
        w = np.concatenate([np.abs(np.asarray(l["w"][i])).reshape(-1) for l in params])
        m = np.concatenate([np.asarray(x[i]).reshape(-1) for x in wm]) > 0
        assert m.sum() == b and w[m].min() >= w[~m].max()
