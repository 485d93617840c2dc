"""Analysis: Pareto frontiers, the FLOPs model of Table 1, Theorem L.1 and pruning after training."""
from __future__ import annotations


import itertools

import numpy as np
import pytest

from sparsejax import mlp
from sparsejax.analysis import after_training, flops, pareto, theorem
from sparsejax.sweep.store import Store

# ----------------------------------------------------------------------------- Pareto


def test_pareto_frontier_hand_computed():
    #            0   1   2   3   4   5   6   7    8
    nnz = [30, 40, 40, 50, 35, 60, 45, 30, np.nan]
    acc = [.90, .95, .93, .95, .89, .99, .96, .90, .999]
    # 0 and 7 tie at (30, .90): neither dominates, both kept; 4 (35, .89) is dominated by 0;
    # 2 (40, .93) by 1; 3 (50, .95) by 1; 6 (45, .96) beats 1's accuracy; 8 has no nnz.
    assert pareto.pareto_frontier(nnz, acc).tolist() == [0, 7, 1, 6, 5]
    assert pareto.pareto_frontier([], []).tolist() == []
    assert pareto.pareto_frontier([5, 5], [np.nan, 0.7]).tolist() == [1]
    with pytest.raises(ValueError):
        pareto.pareto_frontier([1, 2], [0.5])


def test_pareto_frontier_matches_definition_on_random_points():
    rng = np.random.default_rng(0)
    nnz = rng.integers(10, 30, 200).astype(float)
    acc = np.round(rng.uniform(0.5, 1.0, 200), 2)
    front = set(pareto.pareto_frontier(nnz, acc).tolist())
    for i in range(200):
        dominated = np.any((nnz <= nnz[i]) & (acc >= acc[i]) & ((nnz < nnz[i]) | (acc > acc[i])))
        assert (i in front) == (not dominated)


def test_first_nnz_reaching_and_best_per_nnz():
    nnz = [44, 30, 51, 61, 29]
    acc = [0.951, 0.94, 0.996, 0.9955, np.nan]
    assert pareto.first_nnz_reaching(nnz, acc, 0.95) == 44
    assert pareto.first_nnz_reaching(nnz, acc, 0.995) == 51
    assert pareto.first_nnz_reaching(nnz, acc, 0.951) == 51  # strictly above: equal does not count
    assert pareto.first_nnz_reaching(nnz, acc, 0.999) is None
    x, best = pareto.best_per_nnz([3, 1, 3, 2], [0.5, 0.6, 0.7, np.nan])
    assert x.tolist() == [1, 3] and best.tolist() == [0.6, 0.7]


def test_load_table_resolves_configs_and_merges_metrics(tmp_path):
    path = str(tmp_path / "s.sqlite")
    with Store(path) as st:
        st.write_records([
            {"config": {"method": "snip", "budget": 55}, "accuracy": 0.9, "model_nnz": 76, "weight_nnz": 55,
             "diverged": False, "metrics": {"connectivity": {"effective_model_nnz": 70}, "bias_rule": "out_degree"}},
            {"config": {"method": "structured", "widths": (3, 3, 3), "structure": (3, 3, 3), "lr": 0.05},
             "accuracy": 0.96, "model_nnz": 37, "weight_nnz": 27, "diverged": False},
            {"config": {"method": "lth", "budget": 20, "init": "/x/bench995_init.npz", "optimal_width": 6},
             "accuracy": 0.8, "model_nnz": 30, "weight_nnz": 20, "diverged": True},
        ])
    rows = {r["method"]: r for r in pareto.load_table(path)}
    snip = rows["snip"]
    assert snip["widths"] == [16, 16, 16] and snip["lr"] == 0.1 and snip["schedule"] == "constant"
    assert snip["kind"] == "pruning" and snip["width"] == 16 and snip["init_name"] == "random"
    assert snip["effective_model_nnz"] == 70 and snip["bias_rule"] == "out_degree"
    assert rows["structured"]["kind"] == "structured" and rows["structured"]["structured_nnz"] == 37
    assert rows["lth"]["width"] == 6 and rows["lth"]["init_name"] == "bench995_init"
    assert np.isnan(pareto.column([rows["lth"]], "accuracy", diverged_nan=True)[0])
    assert pareto.select(rows.values(), kind="pruning", width=16)[0]["method"] == "snip"


# ----------------------------------------------------------------------------- FLOPs


def test_flops_table1_ordering_and_magnitudes():
    table = flops.flops_table(width=16, budget=55)
    assert list(table) == list(flops.TABLE1_METHODS)
    assert table["lth"] > table["dense"] > table["gmp"] > table["rigl"]
    at_init = [table[m] for m in ("grasp", "prospr", "snip", "iter_snip", "force", "synflow")]
    assert table["rigl"] > 1.05 * max(at_init)  # RigL clearly above the pruning-at-init group
    assert max(at_init) / min(at_init) < 1.01   # ... which is one tier (the paper: 1.9e8–2.0e8)
    for m, paper in flops.PAPER_TABLE1.items():
        assert 0.9 < table[m] / paper < 1.15, (m, table[m], paper)
    # dense: 609 parameters x 19,500 steps x 128 samples, forward only (model-tools)
    assert table["dense"] == 609 * 19_500 * 128
    fwd_bwd = flops.flops_table(convention="fwd_bwd")
    assert fwd_bwd["dense"] == pytest.approx(6 * table["dense"])
    assert all(5.9 < fwd_bwd[m] / table[m] < 6.1 for m in table)  # same tiers, six times the count
    with pytest.raises(ValueError):
        flops.flops_table(convention="nope")


def test_flops_measured_nnz_and_schedules():
    t = flops.method_flops("snip", final_model_nnz=76)
    assert t["train"] == 76 * 19_500 * 128 and t["prune"] == 609 * 128
    # a measured count that separates GraSP from the others reorders them, as in the paper
    table = flops.flops_table(final_model_nnz={"grasp": 80, "prospr": 76, "snip": 76})
    assert table["grasp"] > table["prospr"] > table["snip"]
    counts = flops.gmp_weight_counts(560, 55)
    assert counts[0] == 560 and counts[96] == 560 and counts[97] < 560 and counts[-1] == 55
    assert np.all(np.diff(counts) <= 0)
    assert flops.lth_round_counts(560, 55).tolist() == [560, 313, 175, 98, 55]
    assert flops.rigl_update_steps() == 146
    assert flops.erk_layer_counts((16, 16, 16), 55).sum() == 55


def test_expected_bias_count_matches_sampling():
    widths = (16, 16, 16)
    assert flops.expected_bias_nnz(widths, weights=560) == 49
    assert flops.expected_bias_nnz(widths, weights=0) == 1  # the output bias only
    rng = np.random.default_rng(0)
    flat_TxN = np.argsort(rng.random((4000, 560)), axis=1) < 55  # 55 weights uniformly at random
    ws, start = [], 0
    for i, o in mlp.layer_shapes(widths):
        ws.append(flat_TxN[:, start:start + i * o].reshape(-1, i, o))
        start += i * o
    # the pruning rule: hidden bias i kept iff row i of the next (in, out) matrix is nonzero
    kept_T = 1 + sum(np.sum(w_next.any(axis=2), axis=1) for w_next in ws[1:])
    assert flops.expected_bias_nnz(widths, weights=55) == pytest.approx(kept_T.mean(), abs=0.15)


# ----------------------------------------------------------------------------- Theorem L.1


@pytest.mark.parametrize("width,counts", [(3, (2, 2, 2, 2)), (4, (1, 2, 1, 1)), (2, (2, 2, 2, 1))])
def test_monte_carlo_matches_brute_force(width, counts):
    exact = theorem.exact_brute_force(width, counts)
    mc = theorem.monte_carlo(width, counts, trials=40_000, seed=1)
    assert abs(mc.p - exact) < 4 * mc.stderr + 1e-3


def test_no_path_probability_grows_with_width():
    counts = (2, 3, 3, 2)
    ps = [theorem.monte_carlo(w, counts, trials=3000, seed=w).p for w in (4, 8, 16, 32)]
    assert all(a < b for a, b in zip(ps, ps[1:])) and ps[-1] > 0.99
    pairs = [theorem.pair_lower_bound(w, counts) for w in (8, 16, 64, 256, 1024)]
    bounds = [theorem.bound(w, counts) for w in (8, 16, 64, 256, 1024)]
    assert all(a < b for a, b in zip(pairs, pairs[1:])) and pairs[-1] > 0.98
    assert all(b <= p + 1e-12 for b, p in zip(bounds, pairs))  # the bound is a lower bound
    assert theorem.bound(5, counts) == 0.0  # w must exceed n_l + n_{l+1}


def test_pair_probability_and_the_papers_exponent():
    # one weight in each middle layer: disconnected unless they share the unit, 1 - 1/w
    assert theorem.pair_probability(5, 1, 1) == pytest.approx(0.8)
    assert theorem.bound(5, (1, 1, 1, 1)) == pytest.approx(0.8)
    assert theorem.paper_bound(5, (1, 1, 1, 1)) == 1.0  # the printed exponent n_l - 1 overshoots
    # exact pair probability by enumeration on a 3x3 pair
    w, na, nb = 3, 2, 2
    cells = [(i, j) for i in range(w) for j in range(w)]
    hits = total = 0
    for a in itertools.combinations(cells, na):
        for b in itertools.combinations(cells, nb):
            fed = {j for _, j in a}  # units W^l writes (its output index)
            read = {i for i, _ in b}  # units W^{l+1} reads
            hits += not (fed & read)
            total += 1
    assert theorem.pair_probability(w, na, nb) == pytest.approx(hits / total)
    with pytest.raises(ValueError):
        theorem.monte_carlo(3, (7, 1, 1, 1), trials=10)


# ----------------------------------------------------------------------------- after training


def _two_path_net() -> tuple[dict, ...]:
    """Width-2 net: path A (x0 → u0 → u0 → u0 → out, weights 2.0) alone classifies x0 > 0;
    path B (−x0, weights 1.5) helps only redundantly; a 0.01 distractor from x1. Output bias −0.01."""
    w1, w2, w3, w4 = np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 1))
    w1[0, 0], w1[0, 1], w1[1, 0] = 2.0, -1.5, 0.01
    w2[0, 0], w2[1, 1] = 2.0, 1.5
    w3[0, 0], w3[1, 1] = 2.0, 1.5
    w4[0, 0], w4[1, 0] = 2.0, -1.5
    biases = (np.zeros(2), np.zeros(2), np.zeros(2), np.array([-0.01]))
    return tuple({"w": w.astype(np.float32), "b": b.astype(np.float32)} for w, b in zip((w1, w2, w3, w4), biases))


def test_smallest_nnz_after_training_on_a_hand_built_network():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2000, 2)).astype(np.float32)
    x[:, 0] = np.sign(x[:, 0]) * (0.5 + 0.5 * np.abs(x[:, 0]))
    y = (x[:, 0] > 0).astype(np.float32)
    params = _two_path_net()
    masks = tuple({"w": (l["w"] != 0).astype(np.float32), "b": np.ones_like(l["b"])} for l in params)
    res = after_training.smallest_nnz_after_training(params, masks, x, y, target=0.99)
    assert res.weight_counts_K.tolist() == list(range(1, 10))
    # kept 9..4: distractor and path B go first, accuracy stays 1; at 3 a path-A weight is gone
    assert np.all(res.accuracy_K[3:] == 1.0) and np.all(res.accuracy_K[:3] < 0.6)
    assert res.weight_nnz == 4 and res.nnz == 5  # path A plus the output bias
    assert res.active_units == (1, 1, 1) and res.effective_model_nnz == 5
    assert res.accuracy == 1.0
    kept = [np.flatnonzero(l["w"]).tolist() for l in res.params]
    assert kept == [[0], [0], [0], [0]]
    # flat store blobs work too, and an unreachable target gives no model
    flat = {f"{i}/{k}": v for i, l in enumerate(params) for k, v in l.items()}
    none = after_training.smallest_nnz_after_training(flat, None, x, y, target=1.01)
    assert none.nnz is None and none.active_units is None and len(none.accuracy_K) == 9


def test_sparsest_by_width_is_the_brute_force_minimum_per_method_and_width():
    rng = np.random.default_rng(3)
    rows = [{"kind": "pruning", "init_name": "random", "method": m, "width": w, "run_id": f"{m}{w}{i}",
             "model_nnz": int(rng.integers(20, 90)), "accuracy": float(rng.uniform(0.5, 1.0)),
             "diverged": bool(rng.random() < 0.1)}
            for m in ("gmp", "snip") for w in (4, 16, 64) for i in range(30)]
    rows.append({"kind": "search", "init_name": "random", "method": "search", "width": 16, "model_nnz": 1,
                 "accuracy": 1.0, "diverged": False})  # never a pruning row
    table = pareto.sparsest_by_width(rows, 0.95)
    assert set(table) == {"gmp", "snip"} and all(set(v) == {4, 16, 64} for v in table.values())
    for m, per in table.items():
        for w, got in per.items():
            ok = [r for r in rows if r["method"] == m and r["width"] == w and not r["diverged"]
                  and r["accuracy"] > 0.95]
            want = min((r["model_nnz"] for r in ok), default=None)
            assert (got["model_nnz"] if got else None) == want
    assert pareto.sparsest_by_width(rows, 1.0) == {"gmp": {4: None, 16: None, 64: None},
                                                   "snip": {4: None, 16: None, 64: None}}


def test_a_method_variant_is_its_own_series():
    """Rows of a variant (non-default method params) never pool with the defaults' rows."""
    from sparsejax.analysis import flops
    assert pareto.series_name("sfp", None) == "sfp"
    assert pareto.series_name("sfp", {"slack": 0.5, "mean_replace": True}) == "sfp[mean_replace=True,slack=0.5]"
    assert pareto.series_parts("sfp[mean_replace=True,slack=0.5]") == ("sfp", "mean_replace=True,slack=0.5")
    assert pareto.series_parts("sfp") == ("sfp", "")
    label = flops.METHOD_LABELS["sfp"]
    assert flops.METHOD_LABELS["sfp[mean_replace=True]"] == f"{label} [mean_replace=True]"
    base = {"kind": "pruning", "init_name": "random", "width": 16, "diverged": False}
    rows = [dict(base, method="sfp", model_nnz=40, accuracy=0.96),
            dict(base, method=pareto.series_name("sfp", {"mean_replace": True}), model_nnz=35, accuracy=0.97)]
    table = pareto.sparsest_by_width(rows, 0.95)
    assert table["sfp"][16]["model_nnz"] == 40 and table["sfp[mean_replace=True]"][16]["model_nnz"] == 35
