"""Per-epoch training-loss curves (issue #13): every record carries its runs' mean minibatch loss
per epoch, through compaction, LTH's rounds and halving's partial states; the store keeps it in
the params blob (older records simply have none); the viewer and the report show it.

The curve's values against a float64 NumPy loop, on every kernel, are in
``tests/test_train.py::test_loss_curve_matches_numpy`` (and RigL's in its timing test)."""
from __future__ import annotations

import json
import re

import numpy as np

from sparsejax import mlp, runs, train
from sparsejax.sweep import identity
from sparsejax.sweep import store as store_lib
from sparsejax.sweep.store import Store
from sparsejax.viz import figures, report, viewer

FAST = dict(batch_size=4096, epochs=2)  # 12 steps per epoch


def _cfg(method: str, widths=(3, 3, 3), budget=None, **kw) -> dict:
    return {"method": method, "widths": widths, "budget": budget, "lr": 0.1, "schedule": "cosine", **FAST, **kw}


def _net(widths=(3, 3, 3), seed=0) -> tuple[dict, ...]:
    return tuple({"w": np.asarray(l["w"]), "b": np.asarray(l["b"])}
                 for l in mlp.init(train.jax.random.PRNGKey(seed), widths))


def test_records_carry_the_curve_of_every_epoch():
    recs = runs.run_population([_cfg("dense", lr=lr) for lr in (0.05, 0.2)])
    for r in recs:
        assert r["loss_curve"].shape == (2,) and r["loss_curve"].dtype == np.float32
        assert np.all(np.isfinite(r["loss_curve"])) and np.all(r["loss_curve"] > 0)
    assert not np.array_equal(recs[0]["loss_curve"], recs[1]["loss_curve"])


def test_lth_curve_holds_every_round():
    (rec,) = runs.run_population([_cfg("lth", budget=20, method_params={"rounds": 3})])
    curve = rec["loss_curve"]
    assert curve.shape == (3 * 2,) and np.all(np.isfinite(curve))
    assert curve[2] > curve[1]  # round 2 restarts from the (rewound, pruned) initialisation


def test_compacted_training_records_the_same_curve():
    cfgs = [_cfg("random", widths=(32, 32, 32), budget=b) for b in (60, 90)]
    compacted = runs.run_population(cfgs)
    plain = runs.run_population(cfgs, compact=False)
    assert compacted[0]["numeric_path"]["compaction"] != "off"
    for a, b in zip(compacted, plain):
        np.testing.assert_allclose(a["loss_curve"], b["loss_curve"], rtol=1e-5)


def test_halving_prefixes_give_the_full_curve_and_old_states_resume():
    cfgs = [_cfg("dense", lr=lr) for lr in (0.05, 0.2)]
    straight = runs.run_population(cfgs)
    half = runs.advance_population(runs.prepare_population(cfgs), 1)
    leaves = runs.population_leaves(half)
    promoted = runs.finish_population(runs.advance_population(runs.restore_population(cfgs, leaves, 1), 2))
    for p, q in zip(promoted, straight):
        np.testing.assert_array_equal(p["loss_curve"], q["loss_curve"])
    # a state saved before populations kept loss sums (its last leaf missing): epoch 1 unknown
    old = runs.finish_population(runs.advance_population(runs.restore_population(cfgs, leaves[:-1], 1), 2))
    for o, q in zip(old, straight):
        assert np.isnan(o["loss_curve"][0]) and o["loss_curve"][1] == q["loss_curve"][1]
        assert o["accuracy"] == q["accuracy"]


def test_store_round_trip_and_records_without_a_curve(tmp_path):
    path = str(tmp_path / "s.sqlite")
    curve = np.asarray([0.69, 0.4, 0.25], np.float32)
    net = _net()
    with_cfg, without_cfg = runs.validate(_cfg("dense")), runs.validate(_cfg("dense", lr=0.2))
    with_id, without_id = identity.run_id(with_cfg), identity.run_id(without_cfg)
    with Store(path) as st:
        st.write_records([{"config": with_cfg, "accuracy": 0.9, "params": net, "loss_curve": curve},
                          {"config": without_cfg, "accuracy": 0.8, "params": net}])
    with Store(path, create=False) as st:
        got, old = st.get(with_id), st.get(without_id)
        assert "loss_curve" not in st.records([with_id])[0]  # no blobs read, no curve
    np.testing.assert_array_equal(got["loss_curve"], curve)
    assert got["loss_curve"].dtype == np.float32
    assert "loss_curve" not in old and "loss_curve" not in (got["metrics"] or {})
    assert store_lib.unflatten_layers(got["params"])[0]["w"].shape == (2, 3)  # the params blob holds layers only
    assert store_lib.verify(path)["ok"]
    merged = str(tmp_path / "m.sqlite")
    assert store_lib.merge(merged, [path]).ok
    with Store(merged, create=False) as st:
        np.testing.assert_array_equal(st.get(with_id)["loss_curve"], curve)


# ----------------------------------------------------------------------------- shown


def test_viewer_payload_and_page_hold_the_curve(tmp_path):
    path = str(tmp_path / "s.sqlite")
    net = _net()
    masks = tuple({"w": np.ones(l["w"].shape, bool), "b": np.ones(l["b"].shape, bool)} for l in net)
    with Store(path) as st:
        st.write_records([{"run_id": "r", "config": _cfg("dense"), "accuracy": 0.6, "params": net, "masks": masks,
                           "loss_curve": np.asarray([0.7, 0.5, np.nan, 0.3], np.float32)}])
    spec = viewer.load_store_model(path, "r")
    page = viewer.build_html([spec, viewer.ModelSpec(params=net, name="bare")], sample_size=50, points=20,
                             grid_size=16, unit_px=8, output_px=16)
    payload = json.loads(re.search(r'id="sv-data">(.*?)</script>', page, re.S).group(1))
    assert payload["panels"][0]["loss_curve"] == [0.7, 0.5, None, 0.3]  # NaN: an unknown epoch
    assert payload["panels"][1]["loss_curve"] is None
    assert "buildLossPlot" in page and "no training-loss curve stored for this run" in page


def _report_store(path: str) -> None:
    """Pruning runs of two methods (one above 95 %, one below) and a search run, with curves."""
    net = _net()
    curve = lambda a: np.asarray([0.7, 0.7 * a, 0.7 * a * a], np.float32)  # noqa: E731
    recs = [{"config": _cfg("gmp", budget=b, lr=lr), "accuracy": acc, "model_nnz": nnz, "weight_nnz": nnz - 4,
             "diverged": False, "params": net, "loss_curve": curve(0.5)}
            for b, lr, acc, nnz in ((10, 0.1, 0.96, 20), (12, 0.2, 0.97, 22), (14, 0.1, 0.999, 26))]
    recs.append({"config": _cfg("snip", budget=10), "accuracy": 0.9, "model_nnz": 20, "weight_nnz": 16,
                 "diverged": False, "params": net, "loss_curve": curve(0.8)})
    recs.append({"config": dict(_cfg("search"), structure=(3, 3, 3), mask_index=3), "accuracy": 0.96,
                 "model_nnz": 18, "weight_nnz": 13, "diverged": False, "params": net, "loss_curve": curve(0.6)})
    recs.append({"config": _cfg("snip", budget=12), "accuracy": 0.99, "model_nnz": 21, "weight_nnz": 17,
                 "diverged": False, "params": net})  # stored before curves: left out
    with Store(path) as st:
        st.write_records(recs)


def test_report_shows_the_curves_of_the_sparsest_runs(tmp_path):
    path = str(tmp_path / "s.sqlite")
    _report_store(path)
    rows = report.pareto.load_table(path)
    panels = report.loss_curve_panels(path, rows)
    assert [label for label, _, _ in panels["sparsest run > 95% (random init)"]] == \
        ["GMP: 20 nnz, 96.00%", "Comb. (search): 18 nnz, 96.00%"]  # SNIP's sparsest above 95 % has no curve
    assert [label for label, _, _ in panels["sparsest run > 99.5% (random init)"]] == ["GMP: 26 nnz, 99.90%"]
    fig = figures.fig_loss_curves(panels)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1]
    assert figures.fig_loss_curves({"empty": []}) is None
    out = tmp_path / "out"
    page = open(report.build_report(path, str(out), mc_trials=20, theorem_widths=(16,), after_training=False),
                encoding="utf-8").read()
    assert "Training loss per epoch of the sparsest run above each target" in page
    assert (out / "loss_curves.png").exists() and (out / "loss_curves.svg").exists()
