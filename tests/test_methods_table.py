"""One property table over every registered method (as optax's alias tests): exact budget, masked
entries zero after every step, population independence, determinism given the run id, FLOPs and
label defined, params defaults equal SPEC §5, params in the run id and in the numbers.

Cheap on purpose: width 4 (44 weights), 1 epoch, populations of 3 and 1."""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import data, mlp, runs
from sparsejax.analysis import flops
from sparsejax.config import RunConfig
from sparsejax.pruning import registry

WIDTHS = (4, 4, 4)  # 44 weights
METHODS = registry.names()

# SPEC §5 numbers (and §2's init schemes): what every paper method's params type defaults to.
SPEC_DEFAULTS = {
    "dense": {"init_scheme": "torch"},
    "random": {"init_scheme": "torch"},
    "gmp": {"init_scheme": "torch", "interval_divisor": 200, "cubic_events": 199},  # 97 = int(19,500/200)
    "lth": {"init_scheme": "torch", "rounds": 5},
    "snip": {"init_scheme": "xavier_normal"},
    "iter_snip": {"init_scheme": "torch", "steps": 10},
    "force": {"init_scheme": "torch", "steps": 10},
    "grasp": {"init_scheme": "xavier_normal", "temperature": 200.0, "samples_per_class": 25},
    "synflow": {"init_scheme": "torch", "iterations": 100},
    "prospr": {"init_scheme": "torch", "inner_steps": 3, "momentum": 0.9},
    "rigl": {"init_scheme": "torch", "delta_t": 100, "end_fraction": 0.75, "alpha": 0.3},
}


def _configs(name: str) -> list[dict]:
    """Three runs of one program: two budgets, two learning rates, two seeds."""
    base = {"method": name, "widths": list(WIDTHS), "epochs": 1, "schedule": "cosine"}
    if registry.get(name).needs_budget:
        return [dict(base, budget=9, lr=0.1), dict(base, budget=20, lr=0.05), dict(base, budget=20, lr=0.1, seed=1)]
    return [dict(base, lr=0.1), dict(base, lr=0.05), dict(base, lr=0.1, seed=1)]


def _same_numbers(a: dict, b: dict) -> None:
    """Every number and the trained parameters and masks bit for bit (``train.evaluate``
    evaluates in fixed model chunks, so the loss does not depend on P either)."""
    assert a["run_id"] == b["run_id"]
    for key in ("accuracy", "loss", "weight_nnz", "model_nnz", "diverged"):
        assert a[key] == b[key], key
    for la, lb in zip(jax.tree.leaves((a["params"], a["masks"])), jax.tree.leaves((b["params"], b["masks"]))):
        np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))


@pytest.mark.parametrize("name", METHODS)
def test_method_properties(name):
    method = registry.get(name)
    cfgs = _configs(name)
    steps = []

    def observe(pop):  # after every chunk (130 steps): masked entries are exactly zero
        for lp, lm in zip(jax.tree.leaves(pop.params), jax.tree.leaves(pop.masks)):
            assert np.all(np.asarray(lp)[np.asarray(lm) == 0] == 0.0), "a masked entry is nonzero"
        steps.append(1)

    records = runs.run_population(cfgs, chunk_steps=130, observe=observe)
    assert len(steps) == 3 * method.training_passes
    n_w = mlp.weight_count(WIDTHS)
    for cfg, rec in zip(cfgs, records):
        budget = cfg.get("budget", n_w)
        wm = [np.asarray(l["w"], np.float32) for l in rec["masks"]]
        assert rec["mask_weight_count"] == budget == int(sum(m.sum() for m in wm))  # exact budget
        assert rec["weight_nnz"] <= budget and 0.0 <= rec["accuracy"] <= 1.0 and not rec["diverged"]
        # the bias rule: hidden bias i kept iff unit i has an outgoing weight; output bias kept
        for layer, exp in zip(rec["masks"], mlp.bias_masks_out_degree(wm)):
            np.testing.assert_array_equal(np.asarray(layer["b"]), np.asarray(exp) > 0)
        assert rec["model_nnz"] == rec["weight_nnz"] + int(sum(np.count_nonzero(l["b"]) for l in rec["params"]))
    # population independence and determinism given the run id: the middle run alone (another
    # population size and chunking) has the same numbers, bit for bit
    alone = runs.run_population([cfgs[1]], chunk_steps=390)[0]
    _same_numbers(records[1], alone)


@pytest.mark.parametrize("name", METHODS)
def test_method_flops_label_and_params(name):
    method = registry.get(name)
    assert isinstance(method.label, str) and method.label and flops.METHOD_LABELS[name] == method.label
    f = flops.method_flops(name, width=16, budget=55)
    assert math.isfinite(f["total"]) and f["train"] > 0 and f["prune"] >= 0
    assert f["total"] == f["prune"] + f["train"]
    ptype = method.params_type
    assert dataclasses.is_dataclass(ptype) and ptype.__dataclass_params__.frozen
    assert isinstance(method.params, ptype) and method.init_scheme == method.params.init_scheme \
        if hasattr(method.params, "init_scheme") else True
    if name in SPEC_DEFAULTS:
        assert dataclasses.asdict(ptype()) == SPEC_DEFAULTS[name]
    assert registry.instance(name, None) == method and registry.instance(name, {}) == method
    with pytest.raises(ValueError, match="has no parameter 'nope'"):
        registry.instance(name, {"nope": 1})


def _changed(value):
    """A different valid value of a params field."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5
    if value in mlp.INIT_SCHEMES:
        return [s for s in mlp.INIT_SCHEMES if s != value][0]
    return None


@pytest.mark.parametrize("name", METHODS)
def test_every_method_param_changes_the_run_id(name):
    method = registry.get(name)
    budget = 20 if method.needs_budget else None
    default = RunConfig(method=name, widths=WIDTHS, budget=budget)
    spelled = RunConfig(method=name, widths=WIDTHS, budget=budget, method_params=dataclasses.asdict(method.params))
    assert spelled.run_id == default.run_id and spelled.method_params is None  # defaults never change an id
    ids = {default.run_id}
    for f in dataclasses.fields(method.params_type):
        new = _changed(getattr(method.params, f.name))
        if new is None:
            continue
        cfg = RunConfig(method=name, widths=WIDTHS, budget=budget, method_params={f.name: new})
        assert cfg.method_params == {f.name: new}
        ids.add(cfg.run_id)
        # the runs' method is configured with it
        assert getattr(runs._method(name, cfg.method_params).params, f.name) == new
    assert len(ids) == 1 + sum(_changed(getattr(method.params, f.name)) is not None
                               for f in dataclasses.fields(method.params_type))


def _masks_at_init(name: str, method_params: dict | None, budgets=(9, 20, 30)) -> list[np.ndarray]:
    method = registry.instance(name, method_params)
    p = len(budgets)
    keys = jax.random.split(jax.random.PRNGKey(7), p)
    params = mlp.init_population(keys, WIDTHS, method.init_scheme)
    x, y = data.load("cubist_spiral")
    wm = method.prune_at_init(params, jnp.asarray(budgets, jnp.int32), keys, jnp.full((p,), 0.1), x, y, WIDTHS)
    return [np.asarray(m) for m in wm]


@pytest.mark.parametrize("name,params", [("synflow", {"iterations": 3}), ("iter_snip", {"steps": 2}),
                                         ("force", {"steps": 2}), ("prospr", {"inner_steps": 1}),
                                         ("grasp", {"temperature": 1.0}), ("snip", {"init_scheme": "torch"})])
def test_changing_a_param_changes_the_masks(name, params):
    a, b = _masks_at_init(name, None), _masks_at_init(name, params)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))
    for x, y in zip(a, b):  # still exactly the budgets
        assert x.shape == y.shape
    assert [int(sum(m[i].sum() for m in b)) for i in range(3)] == [9, 20, 30]


def test_gmp_with_fewer_events_trains_differently():
    base = {"method": "gmp", "widths": list(WIDTHS), "epochs": 1, "lr": 0.1, "schedule": "cosine", "budget": 9}
    fewer = dict(base, method_params={"interval_divisor": 20, "cubic_events": 19})  # events every 19 steps
    assert runs.program_key(runs.validate(fewer)) != runs.program_key(runs.validate(base))
    a, b = runs.run_population([base], chunk_steps=390)[0], runs.run_population([fewer], chunk_steps=390)[0]
    assert a["run_id"] != b["run_id"] and a["mask_weight_count"] == b["mask_weight_count"] == 9
    assert a["loss"] != b["loss"]
    gmp = registry.instance("gmp", fewer["method_params"])
    assert gmp.count_table(WIDTHS, [9], 390).shape == (1, 20)  # interval int(390/20) = 19: steps 19, …, 380
    assert registry.get("gmp").count_table(WIDTHS, [9], 390).shape == (1, 389)  # interval 1: steps 1, …, 389


def test_training_passes_are_the_plan_multiplier():
    from sparsejax.sweep import plan
    lth = runs.validate({"method": "lth", "widths": list(WIDTHS), "budget": 9})
    assert plan.steps_multiplier(lth) == 5 == registry.get("lth").training_passes
    three = runs.validate({"method": "lth", "widths": list(WIDTHS), "budget": 9, "method_params": {"rounds": 3}})
    assert plan.steps_multiplier(three) == 3
    assert plan.steps_multiplier(runs.validate({"method": "snip", "widths": list(WIDTHS), "budget": 9})) == 1
