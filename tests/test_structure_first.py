"""The structure-first, connectivity-preserving method (sparsejax.pruning.structure_first, "sfp").

References: hand-computed unit scores and configurations, sparsejax.connectivity (an independent
implementation of SPEC §7's effective support) for "every weight is on an input→output path",
and the mask sums for exact budgets.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import connectivity, mlp, runs, train
from sparsejax.pruning import magnitude, registry
from sparsejax.pruning import structure_first as sf

WIDTHS = (8, 8, 8)  # 152 weights
TOTAL = 390          # one epoch: GMP interval 1, events at steps 1..199


def _np_masks(ms):
    return [np.asarray(m, bool) for m in ms]


def _eff_reference(ms) -> list[np.ndarray]:
    """E via sparsejax.connectivity on the masks as parameters (support = mask)."""
    net = tuple({"w": jnp.asarray(m, jnp.float32), "b": jnp.zeros((m.shape[1],))} for m in ms)
    return [np.asarray(e) for e in connectivity.effective_weight_masks(net)]


# ------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("budget,slack,ratio,expected", [
    (23, 0.25, 2.0, (6, 2, 2)),   # S = 29: m = 2 → d1 = ceil(23/4) = 6 ≥ 4; m = 3 → 4 < 6
    (33, 0.25, 2.0, (6, 3, 3)),   # S = 42: m = 3 → ceil(30/5) = 6 ≥ 6; m = 4 → ceil(22/6) = 4 < 8
    (24, 0.0, 1.0, (3, 3, 3)),    # S = 24: m = 3 → ceil(12/5) = 3 ≥ 3; m = 4 → ceil(4/6) = 1 < 4
    (15, 0.0, 2.0, (5, 1, 1)),    # S = 15: m = 1 → ceil(13/3) = 5 ≥ 2; m = 2 → ceil(9/4) = 3 < 4
    (559, 0.25, 2.0, (16, 16, 16)),  # more than (16, m, m) can hold: every unit kept
])
def test_target_config_hand_computed(budget, slack, ratio, expected):
    cfg = tuple(np.asarray(sf.target_config(budget, (16, 16, 16), slack, ratio)).tolist())
    assert cfg == expected
    d1, m = cfg[0], cfg[1]
    assert sf.config_weight_count(d1, m, 3) == 2 * d1 + d1 * m + m * m + m >= budget


def test_target_config_holds_the_budget_for_every_budget():
    for b in range(1, mlp.weight_count((16, 16, 16))):
        cfg = np.asarray(sf.target_config(b, (16, 16, 16), 0.25, 2.0))
        assert int(sf.config_weight_count(int(cfg[0]), int(cfg[1]), 3)) >= b, b


# ------------------------------------------------------------------------- stage 1: units


def _unit_net():
    """widths (3, 2, 2); layer-1 unit 0: in-norm 5, out-norm 0.1 (product 0.5); unit 1: in 0,
    out 5 (product 0); unit 2: in √2, out √2 (product 2)."""
    w1 = np.array([[3.0, 0.0, 1.0], [4.0, 0.0, 1.0]])
    w2 = np.array([[0.1, 0.0], [3.0, 4.0], [1.0, 1.0]])
    w3 = np.array([[1.0, 2.0], [3.0, 4.0]])
    w4 = np.array([[1.0], [1.0]])
    return [jnp.asarray(w, jnp.float32) for w in (w1, w2, w3, w4)]


def test_unit_scores_hand_computed():
    ws = _unit_net()
    np.testing.assert_allclose(sf.unit_scores(ws, "in_norm")[0], [5.0, 0.0, math.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(sf.unit_scores(ws, "out_norm")[0], [0.1, 5.0, math.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(sf.unit_scores(ws, "norm_product")[0], [0.5, 0.0, 2.0], rtol=1e-6)
    # layer 2: in-norms of columns of w2, out-norms of rows of w3
    np.testing.assert_allclose(sf.unit_scores(ws, "norm_product")[1],
                               [math.hypot(0.1, 3, 1) * math.sqrt(5), math.hypot(0, 4, 1) * 5], rtol=1e-6)


def test_activity_score_hand_computed():
    """Mean ReLU output on the minibatch times the out-norm; a unit dead on the data scores 0
    whatever its weights. Layer 1 of the net above on x = (1, 0), (0, 1), (-1, -1) with zero
    biases: pre-activations unit 0: 3, 4, -7 -> mean 7/3; unit 1: 0 -> 0; unit 2: 1, 1, -2 -> 2/3."""
    ws = _unit_net()
    params = [{"w": w, "b": jnp.zeros((w.shape[1],), jnp.float32)} for w in ws]
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    acts = mlp.hidden_activations(params, x)[:-1]
    got = sf.unit_scores(ws, "activity", acts)
    np.testing.assert_allclose(got[0], [7 / 3 * 0.1, 0.0, 2 / 3 * math.sqrt(2)], rtol=1e-6)
    h2 = np.maximum(np.maximum(np.asarray(x) @ np.asarray(ws[0]), 0) @ np.asarray(ws[1]), 0)
    np.testing.assert_allclose(got[1], h2.mean(0) * np.linalg.norm(np.asarray(ws[2]), axis=1), rtol=1e-6)
    # unit 0 has the largest in-norm, but a bias that kills it on these inputs zeroes its score
    params[0]["b"] = jnp.array([-10.0, 0.0, 0.0])
    dead = sf.unit_scores(ws, "activity", mlp.hidden_activations(params, x)[:-1])[0]
    np.testing.assert_allclose(dead, [0.0, 0.0, 2 / 3 * math.sqrt(2)], rtol=1e-6)
    out = _np_masks(sf.prune_units(ws, [jnp.ones(w.shape, bool) for w in ws], jnp.array([1, 2, 2]),
                                   "activity", mlp.hidden_activations(params, x)[:-1]))
    np.testing.assert_array_equal(out[0].any(axis=0), [False, False, True])
    with pytest.raises(ValueError, match="activations"):
        sf.unit_scores(ws, "activity")


@pytest.mark.parametrize("kind,kept", [("norm_product", 2), ("in_norm", 0), ("out_norm", 1)])
def test_prune_units_keeps_the_best_unit(kind, kept):
    ws = _unit_net()
    ms = [jnp.ones(w.shape, bool) for w in ws]
    out = _np_masks(sf.prune_units(ws, ms, jnp.array([1, 2, 2]), kind))
    alive = np.zeros(3, bool)
    alive[kept] = True
    np.testing.assert_array_equal(out[0], np.ones((2, 3), bool) & alive[None, :])
    np.testing.assert_array_equal(out[1], alive[:, None] & np.ones((3, 2), bool))
    np.testing.assert_array_equal(out[2], np.ones((2, 2), bool))


def test_unit_counts_cubic():
    cfg = jnp.array([6, 2, 2])
    # k = 30 of 60: floor(d + (16 − d)/8)
    np.testing.assert_array_equal(sf.unit_counts(30, 60, (16, 16, 16), cfg), [7, 3, 3])
    np.testing.assert_array_equal(sf.unit_counts(60, 60, (16, 16, 16), cfg), [6, 2, 2])
    np.testing.assert_array_equal(sf.unit_counts(0, 60, (16, 16, 16), cfg), [16, 16, 16])


# ------------------------------------------------------------------------- stage 2: weights


def _diamond():
    """widths (1, 2, 1): in0→h1 (0.3), in1→h1 (2), h1→a (3), h1→b (1), a→h3 (4), b→h3 (0.005),
    h3→out (5): 7 weights, all effective."""
    w1 = np.array([[0.3], [2.0]])
    w2 = np.array([[3.0, 1.0]])
    w3 = np.array([[4.0], [0.005]])
    w4 = np.array([[5.0]])
    return [jnp.asarray(w, jnp.float32) for w in (w1, w2, w3, w4)]


def test_safe_weight_goes_before_a_smaller_unsafe_one_then_cascade_regrows():
    ws = _diamond()
    ms = [jnp.asarray(w != 0) for w in ws]
    grads = [jnp.zeros_like(w) for w in ws]
    # safe: in0→h1 and in1→h1 only (h1 has in-degree 2); b→h3 (0.005) is the smallest but unsafe
    np.testing.assert_array_equal(_np_masks(sf.safe_weights(ms))[0], [[True], [True]])
    assert sum(int(np.asarray(m).sum()) for m in sf.safe_weights(ms)[1:]) == 0
    six = _np_masks(sf.prune_connected(ws, ms, grads, 6))
    np.testing.assert_array_equal(six[0], [[False], [True]])
    for got, want in zip(six[1:], ms[1:]):
        np.testing.assert_array_equal(got, np.asarray(want))
    # to 5 from the original 7 masks minus in0→h1: nothing is safe, so b→h3 is cut, h1→b goes
    # with it (3 left: in1→h1, h1→a, a→h3, h3→out = 4), and the one connected free slot
    # (in0→h1) is grown back: 5 weights, all effective.
    five = _np_masks(sf.prune_connected(ws, [jnp.asarray(m) for m in six], grads, 5))
    np.testing.assert_array_equal(five[0], [[True], [True]])
    np.testing.assert_array_equal(five[1], [[True, False]])
    np.testing.assert_array_equal(five[2], [[True], [False]])
    np.testing.assert_array_equal(five[3], [[True]])
    for e, m in zip(_eff_reference(five), five):
        np.testing.assert_array_equal(e, m)


def test_prune_connected_prefers_safe():
    # complete (2, 2, 2) blocks: every weight is safe; removing one keeps the rest effective
    shapes = mlp.layer_shapes((2, 2, 2))
    ms = [jnp.ones(s, bool) for s in shapes]
    key = jax.random.PRNGKey(0)
    ws = [jax.random.normal(jax.random.fold_in(key, i), s) for i, s in enumerate(shapes)]
    grads = [jnp.zeros(s) for s in shapes]
    out = _np_masks(sf.prune_connected(ws, ms, grads, sum(i * o for i, o in shapes) - 1))
    removed = [~m for m in out]
    assert sum(int(r.sum()) for r in removed) == 1
    absw = np.concatenate([np.abs(np.asarray(w)).ravel() for w in ws])
    got = np.concatenate([np.abs(np.asarray(w))[r] for w, r in zip(ws, removed)])
    assert got[0] == absw.min()


def test_from_the_unit_stage_every_paper_budget_is_hit_exactly():
    """Stage 2 starts from the complete blocks of target_config(B); pruning them to B with
    random magnitudes gives exactly B weights, all effective, inside the blocks."""
    widths = (16, 16, 16)
    shapes = mlp.layer_shapes(widths)
    rng = np.random.default_rng(0)
    for b in (15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65):
        cfg = np.asarray(sf.target_config(b, widths, 0.25, 2.0))
        blocks = [np.asarray(m["w"]) > 0 for m in mlp.structured_masks(widths, cfg)]
        ws = [jnp.asarray(rng.normal(size=s) * m, jnp.float32) for s, m in zip(shapes, blocks)]
        out = _np_masks(sf.prune_connected(ws, [jnp.asarray(m) for m in blocks], [jnp.zeros(s) for s in shapes], b))
        assert sum(int(m.sum()) for m in out) == b, b
        for e, m, blk in zip(_eff_reference(out), out, blocks):
            np.testing.assert_array_equal(e, m)
            assert not np.any(m & ~blk)


@pytest.mark.parametrize("seed", range(6))
def test_prune_connected_on_random_masks(seed):
    """Random fully effective masks at widths (5, 4, 3), several targets: never more than the
    target, every weight effective (sparsejax.connectivity), and fewer than the target only
    when no connected slot is left to give the budget back to (the documented limit)."""
    rng = np.random.default_rng(seed)
    shapes = mlp.layer_shapes((5, 4, 3))
    ms = _eff_reference([rng.random(s) < 0.6 for s in shapes])
    n = sum(int(m.sum()) for m in ms)
    if n < 4:
        pytest.skip("the random mask collapsed")
    ws = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes]
    grads = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes]
    for target in sorted({n, max(4, n // 2), max(4, n - 1), 4}):
        out = _np_masks(sf.prune_connected(ws, [jnp.asarray(m) for m in ms], grads, target))
        got = sum(int(m.sum()) for m in out)
        assert got <= target
        for e, m in zip(_eff_reference(out), out):
            np.testing.assert_array_equal(e, m)
        if got < target:
            net = tuple({"w": jnp.asarray(m, jnp.float32), "b": jnp.zeros((m.shape[1],))} for m in out)
            f, g = connectivity.reachability(net)
            free = sum(int((~m & np.asarray(f[l])[:, None] & np.asarray(g[l + 1])[None, :]).sum())
                       for l, m in enumerate(out))
            assert free == 0, (target, got, free)


def test_cascade_gives_the_budget_back():
    # two disjoint input→output paths (8 weights): no weight is safe and every removal costs a
    # whole path (4). Asked for 5: one path goes (4 left) and the one connected free slot (the
    # other input into the surviving first-layer unit) is grown: 5, all effective.
    ms = [np.zeros(s, bool) for s in mlp.layer_shapes((2, 2, 2))]
    for u in range(2):
        ms[0][u, u] = ms[1][u, u] = ms[2][u, u] = True
        ms[3][u, 0] = True
    ws = [jnp.asarray(m * (1.0 + np.arange(m.size).reshape(m.shape)), jnp.float32) for m in ms]
    grads = [jnp.ones(m.shape) for m in ms]
    assert not any(np.asarray(m).any() for m in sf.safe_weights([jnp.asarray(m) for m in ms]))
    out = _np_masks(sf.prune_connected(ws, [jnp.asarray(m) for m in ms], grads, 5))
    assert sum(int(m.sum()) for m in out) == 5
    np.testing.assert_array_equal(out[0], np.ones((2, 1), bool) @ np.ones((1, 2), bool) & out[0].any(0)[None, :])
    for e, m in zip(_eff_reference(out), out):
        np.testing.assert_array_equal(e, m)


def test_weight_target_schedule():
    assert int(sf.weight_target(60, 60, 149, 42, 33)) == 42
    assert int(sf.weight_target(149, 60, 149, 42, 33)) == 33
    assert int(sf.weight_target(199, 60, 149, 42, 33)) == 33
    k = 100
    assert int(sf.weight_target(k, 60, 149, 42, 33)) == math.floor(33 + 9 * (1 - 40 / 89) ** 3)


# ------------------------------------------------------------------------- every event


def _population(budgets, widths=WIDTHS, seed=0):
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(len(budgets)) + seed)
    params = mlp.init_population(keys, widths)
    raw = train.model_keys(seed, range(len(budgets)))
    return train.make_population(params, None, 0.1, "cosine", raw, hook_state=jnp.asarray(budgets, jnp.int32))


def _run_events(pop, hook, x, y, perturb=True):
    """Apply every event of the hook in order (no SGD in between: weights get a small keyed
    perturbation so magnitudes change), checking invariants after each; returns the final pop
    and the per-event weight counts."""
    counts = []
    update = jax.jit(hook.update)
    for step in range(1, TOTAL):
        if not bool(hook.is_event(jnp.int32(step))):
            continue
        old = [np.asarray(l["w"]) > 0 for l in pop.masks]
        pop = update(pop, jnp.int32(step), x, y)
        for lp, lm in zip(jax.tree.leaves(pop.params), jax.tree.leaves(pop.masks)):
            assert np.all(np.asarray(lp)[np.asarray(lm) == 0] == 0.0), f"masked entry nonzero at step {step}"
        new = [np.asarray(l["w"]) > 0 for l in pop.masks]
        for i in range(new[0].shape[0]):
            mi = [m[i] for m in new]
            for e, m in zip(_eff_reference(mi), mi):
                np.testing.assert_array_equal(e, m, err_msg=f"non-effective weight at step {step}")
        grown = sum(int((n & ~o).sum()) for n, o in zip(new, old))
        counts.append((step, np.stack([m.sum(axis=(1, 2)) for m in new]).sum(0), grown))
        if perturb:
            noise = jax.tree.map(lambda a: 0.05 * jax.random.normal(jax.random.PRNGKey(step), a.shape), pop.params)
            pop = pop._replace(params=mlp.apply_masks(jax.tree.map(jnp.add, pop.params, noise), pop.masks))
    return pop, counts


def test_every_event_keeps_masks_zero_effective_and_ends_at_budget():
    budgets = [12, 30, 75]
    pop = _population(budgets)
    hook = sf.SFPHook(TOTAL)
    x = jax.random.normal(jax.random.PRNGKey(1), (len(budgets), 128, 2))
    y = (x[..., 0] > 0).astype(jnp.float32)
    pop, counts = _run_events(pop, hook, x, y)
    k1, k2 = sf.SFPParams().event_bounds()
    assert len(counts) == k2
    final = counts[-1][1]
    np.testing.assert_array_equal(final, budgets)
    # after the unit stage the mask is the complete blocks of the target configuration
    after_units = counts[k1 - 1][1]
    for b, c in zip(budgets, after_units):
        cfg = np.asarray(sf.target_config(b, WIDTHS, 0.25, 2.0))
        assert c == sf.config_weight_count(int(cfg[0]), int(cfg[1]), 3)
    # counts never increase
    series = np.stack([c for _, c, _ in counts])
    assert np.all(np.diff(series, axis=0) <= 0)
    stats = connectivity.connectivity_stats_population(pop.params, pop.masks)
    np.testing.assert_array_equal(stats["effective_weight_nnz"], budgets)
    np.testing.assert_array_equal(stats["direct_weight_nnz"], budgets)


@pytest.mark.parametrize("params", [sf.SFPParams(unit_score="activity"), sf.SFPParams(mean_replace=True)])
def test_variant_events_keep_masks_effective_and_end_at_budget(params):
    budgets = [12, 30, 75]
    hook = sf.SFPHook(TOTAL, params)
    x = jax.random.normal(jax.random.PRNGKey(1), (len(budgets), 128, 2))
    y = (x[..., 0] > 0).astype(jnp.float32)
    pop, counts = _run_events(_population(budgets), hook, x, y)
    np.testing.assert_array_equal(counts[-1][1], budgets)
    stats = connectivity.connectivity_stats_population(pop.params, pop.masks)
    np.testing.assert_array_equal(stats["effective_weight_nnz"], budgets)


def test_mean_replacement_keeps_every_target_mean_pre_activation():
    """Removing weights with mean replacement leaves every layer's mean pre-activation (over the
    minibatch, on the layer's inputs before the event) unchanged; a hand case on top."""
    key = jax.random.PRNGKey(3)
    p = mlp.init(key, WIDTHS)
    x = jax.random.normal(jax.random.PRNGKey(4), (64, 2))
    old = [{"w": jnp.ones_like(l["w"]), "b": jnp.ones_like(l["b"])} for l in p]
    drop = [jax.random.bernoulli(jax.random.PRNGKey(10 + i), 0.4, l["w"].shape) for i, l in enumerate(p)]
    new = [{"w": jnp.where(d, 0.0, 1.0), "b": l["b"]} for d, l in zip(drop, old)]
    q = sf.mean_replaced(p, old, new, x)
    inputs = [x, *mlp.hidden_activations(p, x)[:-1]]
    for l in range(len(p)):
        before = jnp.mean(inputs[l] @ p[l]["w"] + p[l]["b"], axis=0)
        after = jnp.mean(inputs[l] @ (q[l]["w"] * new[l]["w"]) + q[l]["b"], axis=0)
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    # hand case: one removed input weight w = 2 from input 0 (mean 0.5) -> bias + 1
    w = [jnp.array([[2.0], [3.0]]), jnp.array([[1.0]])]
    p1 = [{"w": w[0], "b": jnp.zeros(1)}, {"w": w[1], "b": jnp.zeros(1)}]
    m_old = [{"w": jnp.ones((2, 1)), "b": jnp.ones(1)}, {"w": jnp.ones((1, 1)), "b": jnp.ones(1)}]
    m_new = [{"w": jnp.array([[0.0], [1.0]]), "b": jnp.ones(1)}, m_old[1]]
    xh = jnp.array([[0.0, 1.0], [1.0, -1.0]])
    q1 = sf.mean_replaced(p1, m_old, m_new, xh)
    np.testing.assert_allclose(q1[0]["b"], [1.0])
    np.testing.assert_allclose(q1[1]["b"], [0.0])


@pytest.mark.parametrize("params,widths", [(sf.SFPParams(), WIDTHS),
                                           (sf.SFPParams(mean_replace=True), (16, 16, 16))])
def test_population_independence_of_events(params, widths):
    """Every model's masks and parameters after all events are those it gets alone (P = 1).
    Mean replacement adds floats to the biases, so there the float order matters: vmapped over
    P its dots summed in another order for one model than for several (a retrained winner then
    missed its claim); it runs model by model."""
    budgets = [12, 30, 75]
    x = jax.random.normal(jax.random.PRNGKey(1), (len(budgets), 128, 2))
    y = (x[..., 0] > 0).astype(jnp.float32)
    hook = sf.SFPHook(TOTAL, params)
    together, _ = _run_events(_population(budgets, widths), hook, x, y, perturb=False)
    for i in range(len(budgets)):
        pop_i = jax.tree.map(lambda a: a[i:i + 1], _population(budgets, widths))
        alone, _ = _run_events(pop_i, hook, x[i:i + 1], y[i:i + 1], perturb=False)
        for a, t in zip(jax.tree.leaves((alone.masks, alone.params)), jax.tree.leaves((together.masks, together.params))):
            np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(t)[i])


# ------------------------------------------------------------------------- the method


def test_hook_is_hashable_by_value():
    a, b = sf.SFPHook(19_500), sf.SFPHook(19_500, sf.SFPParams())
    assert a == b and hash(a) == hash(b)
    assert a != sf.SFPHook(19_500, sf.SFPParams(slack=0.5)) and a != sf.SFPHook(390)
    method = registry.get("sfp")
    cfg = train.TrainConfig(widths=(16, 16, 16))
    assert method.hook(cfg, 49_982) == method.hook(cfg, 49_982) == sf.SFPHook(19_500)
    assert isinstance(a, train.MaskHook) and not a.skip_optimizer
    assert method.params_type is sf.SFPParams and method.needs_budget


def test_event_grid_is_gmps_up_to_k2():
    hook = sf.SFPHook(19_500)
    k1, k2 = sf.SFPParams().event_bounds()
    steps = [s for s in magnitude.gmp_event_steps(19_500) if bool(hook.is_event(jnp.int32(s)))]
    assert steps == [97 * k for k in range(1, k2 + 1)] and (k1, k2) == (60, 149)
    assert not bool(hook.is_event(jnp.int32(96))) and not bool(hook.is_event(jnp.int32(98)))


@pytest.mark.parametrize("bad", [dict(unit_score="l1"), dict(structured_end=0.8, prune_end=0.5),
                                 dict(slack=-1.0), dict(prune_end=1.5)])
def test_params_validation(bad):
    with pytest.raises(ValueError):
        sf.SFPParams(**bad)


@pytest.mark.parametrize("method_params", [None, {"mean_replace": True}, {"unit_score": "activity"}])
def test_training_runs_end_exact_effective_and_independent_of_neighbours(method_params):
    """Through the run path (1 epoch, widths (6, 6, 6)): exact budget, effective == direct
    weights, masked entries zero after every chunk; run B=20's record is the same alone (mean
    replacement once depended on P: a vmapped dot sums in another order for one model)."""
    base = {"method": "sfp", "widths": [6, 6, 6], "epochs": 1, "lr": 0.1, "schedule": "cosine",
            "method_params": method_params}
    cfgs = [dict(base, budget=b) for b in (20, 35, 60)]

    def observe(pop):
        for lp, lm in zip(jax.tree.leaves(pop.params), jax.tree.leaves(pop.masks)):
            assert np.all(np.asarray(lp)[np.asarray(lm) == 0] == 0.0)

    recs = runs.run_population(cfgs, chunk_steps=65, observe=observe)
    for cfg, rec in zip(cfgs, recs):
        conn = rec["connectivity"] if "connectivity" in rec else rec["metrics"]["connectivity"]
        assert rec["mask_weight_count"] == cfg["budget"] if "mask_weight_count" in rec else True
        wm = [np.asarray(l["w"], bool) for l in rec["masks"]]
        assert sum(int(m.sum()) for m in wm) == cfg["budget"]
        assert conn["effective_weight_nnz"] == conn["direct_weight_nnz"] == cfg["budget"]
        assert not conn["layer_collapse"]
    alone = runs.run_population([cfgs[0]], chunk_steps=65)[0]
    assert alone["accuracy"] == recs[0]["accuracy"]
    for a, t in zip(jax.tree.leaves(alone["params"]), jax.tree.leaves(recs[0]["params"])):
        np.testing.assert_array_equal(a, t)


def test_method_is_a_frozen_dataclass():
    m = registry.get("sfp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.name = "x"
    assert m == sf.StructureFirst() and hash(m) == hash(sf.StructureFirst())
