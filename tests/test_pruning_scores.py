"""Pruning scores and exact-budget masks against independent NumPy references (SPEC §5).

Tiny networks (widths (3, 4, 3): N = 33 weights). References are written here from the
formulas in float64 NumPy (hand-derived backprop, path products, finite differences), never
by calling the code under test.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import mlp
from sparsejax.pruning import magnitude, rigl, saliency, schedules, synflow, topk

WIDTHS = (3, 4, 3)
SHAPES = mlp.layer_shapes(WIDTHS)
N = mlp.weight_count(WIDTHS)  # 33
BUDGETS = np.array([1, 17, N - 1], np.int32)


# ---------------------------------------------------------------------------------------------
# NumPy references


def to_np(params) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(l["w"], np.float64), np.asarray(l["b"], np.float64)) for l in params]


def np_torch_flat(ws) -> np.ndarray:
    return np.concatenate([np.asarray(w).T.ravel() for w in ws])


def np_from_torch_flat(flat, shapes=SHAPES) -> list[np.ndarray]:
    out, s = [], 0
    for i, o in shapes:
        out.append(np.asarray(flat[s:s + i * o]).reshape(o, i).T)
        s += i * o
    return out


def np_keep_top(scores_flat: np.ndarray, k: int) -> np.ndarray:
    """Highest first, NaN last, ties by lower index."""
    s = np.asarray(scores_flat, np.float64)
    nan = np.isnan(s)
    order = np.lexsort((np.arange(s.size), np.where(nan, 0.0, -s), nan))
    keep = np.zeros(s.size)
    keep[order[:k]] = 1.0
    return keep


def np_grads(p, x, y, temperature=1.0):
    """Hand-derived backprop of mean BCE(logit / T, y): (dW list, db list)."""
    hs, zs = [np.asarray(x, np.float64)], []
    for l, (w, b) in enumerate(p):
        z = hs[-1] @ w + b
        zs.append(z)
        hs.append(np.maximum(z, 0.0) if l < len(p) - 1 else z)
    logit = zs[-1][:, 0] / temperature
    delta = ((1.0 / (1.0 + np.exp(-logit)) - y) / (temperature * len(y)))[:, None]
    dws, dbs = [None] * len(p), [None] * len(p)
    for l in range(len(p) - 1, -1, -1):
        dws[l] = hs[l].T @ delta
        dbs[l] = delta.sum(0)
        if l > 0:
            delta = (delta @ p[l][0].T) * (zs[l - 1] > 0)
    return dws, dbs


def np_loss(p, x, y):
    h = np.asarray(x, np.float64)
    for l, (w, b) in enumerate(p):
        h = h @ w + b
        if l < len(p) - 1:
            h = np.maximum(h, 0.0)
    z = h[:, 0]
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


def np_schedule(n, b, j, k, rounding="floor"):
    """Exponential schedule count: floor / ceil (with the documented 1e-3 guard) or nearest."""
    x = n * (b / n) ** (j / k)
    r = {"floor": math.floor(x + 1e-3), "ceil": math.ceil(x - 1e-3), "nearest": math.floor(x + 0.5)}[rounding]
    return b if j >= k else int(min(max(r, b), n))


def make_nets(seed: int, pop: int | None = None, widths=WIDTHS) -> tuple:
    """PyTorch-default-like init drawn in NumPy (no compile): one network, or `pop` stacked."""
    rng = np.random.default_rng(seed)
    lead = () if pop is None else (pop,)
    out = []
    for i, o in mlp.layer_shapes(widths):
        bound = 1.0 / np.sqrt(i)
        out.append({"w": jnp.asarray(rng.uniform(-bound, bound, lead + (i, o)), jnp.float32),
                    "b": jnp.asarray(rng.uniform(-bound, bound, lead + (o,)), jnp.float32)})
    return tuple(out)


def count(masks) -> int:
    return int(sum(np.asarray(m).sum() for m in masks))


@pytest.fixture(scope="module")
def net():
    return make_nets(0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.normal(size=(10, 16, 2)), jnp.float32)
    ys = jnp.asarray(rng.random((10, 16)) < 0.5, jnp.float32)
    return xs, ys


# ---------------------------------------------------------------------------------------------
# top-k and PyTorch order


def test_torch_order_matches_state_dict(net):
    state = mlp.to_torch_state(net)
    expected = np.concatenate([state[f"{n}.weight"].ravel() for n in mlp.torch_names(4)])
    flat = topk.flatten_torch_order(net)
    np.testing.assert_array_equal(np.asarray(flat), expected)
    back = topk.unflatten_torch_order(flat, SHAPES)
    for layer, w in zip(net, back):
        np.testing.assert_array_equal(np.asarray(w), np.asarray(layer["w"]))


def test_keep_top_matches_reference_with_ties_and_nan():
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 6, N).astype(np.float32)  # many ties
    flat[[3, 20]] = np.nan
    flat[7] = -np.inf
    flat[9] = -0.0
    scores = tuple(jnp.asarray(w) for w in np_from_torch_flat(flat))
    f = jax.jit(topk.keep_top)
    for b in range(0, N + 1):
        got = np_torch_flat([np.asarray(m) for m in f(scores, jnp.int32(b))])
        np.testing.assert_array_equal(got, np_keep_top(flat, b), err_msg=f"budget {b}")
    # all-equal scores: the first B in PyTorch flat order
    eq = tuple(jnp.ones(s) for s in SHAPES)
    got = jax.jit(jax.vmap(lambda b: topk.flatten_torch_order(topk.keep_top(eq, b))))(jnp.asarray(BUDGETS))
    for row, b in zip(np.asarray(got), BUDGETS):
        np.testing.assert_array_equal(row, (np.arange(N) < b).astype(np.float32))


def test_exponential_count_schedule():
    sched = jax.jit(jax.vmap(topk.exponential_count, (None, None, 0, None, None)),
                    static_argnums=(0, 3, 4))
    cases = [(33, 1, 10), (560, 55, 10), (560, 55, 100), (131840, 15, 100), (560, 559, 4), (560, 35, 4)]
    for rounding in topk.ROUNDINGS:
        for n, b, k in cases:
            got = np.asarray(sched(n, jnp.int32(b), jnp.arange(1, k + 1), k, rounding))
            assert got[-1] == b and np.all(np.diff(got) <= 0) and got.min() >= b and got.max() <= n
            ref = np.array([np_schedule(n, b, j, k, rounding) for j in range(1, k + 1)])
            assert np.max(np.abs(got - ref)) <= 1  # float32 vs float64 next to a rounding boundary
            assert np.mean(got == ref) > 0.9
    # exact integers stay exact despite float32: 560·(1/16)^(j/4) = 280, 140, 70, 35
    for rounding in ("floor", "ceil"):
        got = sched(560, jnp.int32(35), jnp.arange(1, 5), 4, rounding)
        np.testing.assert_array_equal(got, [280, 140, 70, 35])
    assert list(np.asarray(sched(33, jnp.int32(1), jnp.arange(1, 3), 2, "ceil"))) == [6, 1]  # 33^0.5 = 5.74
    assert list(np.asarray(sched(33, jnp.int32(1), jnp.arange(1, 3), 2, "floor"))) == [5, 1]


# ---------------------------------------------------------------------------------------------
# per-method scores against references


def test_snip_scores_vs_numpy_backprop(net, data):
    xs, ys = data
    dws, _ = np_grads(to_np(net), np.asarray(xs[0]), np.asarray(ys[0]))
    got, masks = jax.jit(lambda p, x, y, b: (saliency.snip_scores(p, x, y), saliency.snip(p, x, y, b)))(
        net, xs[0], ys[0], jnp.int32(17))
    for (w, _), dw, s in zip(to_np(net), dws, got):
        np.testing.assert_allclose(np.asarray(s), np.abs(w * dw), rtol=1e-4, atol=1e-7)
    expected = np_keep_top(np_torch_flat([np.asarray(s) for s in got]), 17)
    np.testing.assert_array_equal(np_torch_flat(masks), expected)


def test_grasp_hg_vs_finite_difference_of_gradient(net):
    rng = np.random.default_rng(2)
    x0, x1 = rng.normal(size=(25, 2)), rng.normal(size=(25, 2))
    p = to_np(net)
    t = 200.0

    def g_np(ws):
        q = [(w, b) for w, (_, b) in zip(ws, p)]
        d0, _ = np_grads(q, x0, np.zeros(25), t)
        d1, _ = np_grads(q, x1, np.ones(25), t)
        return [a + b for a, b in zip(d0, d1)]

    ws = [w for w, _ in p]
    g = g_np(ws)
    norm = np.sqrt(sum(np.sum(v * v) for v in g))
    eps = 1e-4 / norm
    plus = g_np([w + eps * v for w, v in zip(ws, g)])
    minus = g_np([w - eps * v for w, v in zip(ws, g)])
    hg_fd = [(a - b) / (2 * eps) for a, b in zip(plus, minus)]
    with jax.enable_x64(True):
        net64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), net)
        (g_j, hg_j), sc, masks = jax.jit(lambda *a: (saliency.grasp_hg(*a), saliency.grasp_scores(*a),
                                                     saliency.grasp(*a, budget=jnp.int32(10))))(
            net64, jnp.asarray(x0), jnp.asarray(x1))
        scale = max(np.abs(h).max() for h in hg_fd)
        for a, b, h, hj in zip(g, g_j, hg_fd, hg_j):
            np.testing.assert_allclose(np.asarray(b), a, rtol=1e-9, atol=1e-14)
            np.testing.assert_allclose(np.asarray(hj), h, rtol=1e-5, atol=1e-6 * scale)
    # score −W ⊙ Hg; GraSP removes the highest, so it keeps the B lowest
    sc = np_torch_flat(sc)
    np.testing.assert_allclose(sc, np_torch_flat([-w * h for w, h in zip(ws, hg_fd)]),
                               rtol=1e-5, atol=1e-6 * np.abs(sc).max())
    np.testing.assert_array_equal(np_torch_flat(masks), np_keep_top(-sc, 10))


def test_synflow_scores_vs_path_products(net):
    rng = np.random.default_rng(3)
    mask_flat = (rng.random(N) < 0.7).astype(np.float32)
    masks = tuple(jnp.asarray(m) for m in np_from_torch_flat(mask_flat))
    a = [np.abs(w) * np.asarray(m) for (w, _), m in zip(to_np(net), masks)]
    bias = [np.abs(b) for _, b in to_np(net)]
    # forward flow h (units reached from the all-ones input) and backward flow u (paths to the output)
    h = [np.ones(2)]
    for al, bl in zip(a, bias):
        h.append(h[-1] @ al + bl)
    u = [np.ones(1)]
    for al in a[::-1]:
        u.insert(0, al @ u[0])
    expected = [al * np.outer(h[l], u[l + 1]) for l, al in enumerate(a)]
    scores_fn = jax.jit(synflow.synflow_scores)
    got = scores_fn(net, masks)
    for e, s in zip(expected, got):
        np.testing.assert_allclose(np.asarray(s), e, rtol=1e-5, atol=1e-7)
    # zero biases: every layer's scores sum to R = 1ᵀ|W4||W3||W2||W1|1 (each path once per layer)
    net0 = tuple({"w": l["w"], "b": jnp.zeros_like(l["b"])} for l in net)
    r = np.ones(2) @ a[0] @ a[1] @ a[2] @ a[3]
    for s in scores_fn(net0, masks):
        np.testing.assert_allclose(float(jnp.sum(s)), r[0], rtol=1e-5)


def test_synflow_iterations_vs_numpy_loop(net):
    n_iter, b = 7, 9
    p = to_np(net)
    mask = np.ones(N)
    for i in range(n_iter):
        ms = np_from_torch_flat(mask)
        a = [np.abs(w) * m for (w, _), m in zip(p, ms)]
        h = [np.ones(2)]
        for al, (_, bl) in zip(a, p):
            h.append(h[-1] @ al + np.abs(bl))
        u = [np.ones(1)]
        for al in a[::-1]:
            u.insert(0, al @ u[0])
        sc = np_torch_flat([al * np.outer(h[l], u[l + 1]) for l, al in enumerate(a)])
        sc = np.where(mask > 0, sc, np.nan)
        mask = np_keep_top(sc, np_schedule(N, b, i + 1, n_iter, "ceil"))
    keep = np.array([np_schedule(N, b, i + 1, n_iter, "ceil") for i in range(n_iter)], np.int32)
    got = jax.jit(synflow.synflow)(net, keep)
    np.testing.assert_array_equal(np_torch_flat(got), mask)
    with pytest.raises(ValueError, match="keep_I"):
        synflow.synflow(net, keep.reshape(1, -1))


@pytest.mark.parametrize("detach", [True, False])
def test_prospr_meta_gradient_vs_central_differences(net, data, detach):
    xs, ys = (np.asarray(a, np.float64) for a in data)
    xs, ys = xs[:4], ys[:4]
    p = to_np(net)
    lr, mom = 0.1, 0.9
    g0_at_c1 = list(zip(*np_grads(p, xs[0], ys[0])))  # the reference detaches the first buffer

    def meta_np(c_flat):
        cs = np_from_torch_flat(c_flat)
        q = [(w * c, b.copy()) for (w, b), c in zip(p, cs)]
        bufs = None
        for k in range(3):
            dws, dbs = np_grads(q, xs[k], ys[k])
            gs = [(dw, db) for dw, db in zip(dws, dbs)]
            if bufs is None:  # first momentum buffer = first gradient (a constant when detached)
                bufs = g0_at_c1 if detach else gs
            else:
                bufs = [(mom * bw + gw, mom * bb + gb) for (bw, bb), (gw, gb) in zip(bufs, gs)]
            q = [(w - lr * bw, b - lr * bb) for (w, b), (bw, bb) in zip(q, bufs)]
        return np_loss(q, xs[3], ys[3])

    eps = 1e-6
    fd = np.array([(meta_np(np.eye(N)[i] * eps + 1) - meta_np(-np.eye(N)[i] * eps + 1)) / (2 * eps)
                   for i in range(N)])
    with jax.enable_x64(True):
        net64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), net)
        scores = jax.jit(saliency.prospr_scores, static_argnums=5)(net64, jnp.asarray(xs), jnp.asarray(ys),
                                                                    lr, mom, detach)
        np.testing.assert_allclose(np_torch_flat(scores), np.abs(fd), rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Iter SNIP vs FORCE


def test_iter_snip_and_force_steps_vs_numpy(data):
    xs, ys = data
    nets = make_nets(5, pop=4)
    nets_np = jax.tree.map(np.asarray, nets)
    xs_np, ys_np = np.asarray(xs), np.asarray(ys)
    b = 4
    keep = np.array([np_schedule(N, b, j, 10, "floor") for j in range(1, 11)], np.int32)
    revived = 0
    with pytest.raises(ValueError, match="one count per minibatch"):
        saliency.iterative_saliency_trajectory(jax.tree.map(lambda a: a[0], nets), xs, ys, keep[:9], False)
    for revive in (False, True):
        fn = jax.vmap(lambda p: saliency.iterative_saliency_trajectory(p, xs, ys, keep, revive))
        traj = jax.jit(fn)(nets)
        traj = [np.asarray(m) for m in traj]
        for n in range(4):
            p = to_np(jax.tree.map(lambda a: a[n], nets_np))
            w0 = [w for w, _ in p]
            prev = np.ones(N)
            for j in range(10):
                cur = np_torch_flat([m[n, j] for m in traj])
                assert cur.sum() == keep[j]
                ms = np_from_torch_flat(prev)
                q = [(w * m, bb) for (w, bb), m in zip(p, ms)]
                g, _ = np_grads(q, xs_np[j], ys_np[j])
                if revive:
                    sc = np_torch_flat([np.abs(w * gw) for w, gw in zip(w0, g)])
                else:
                    sc = np_torch_flat([np.abs(w * m * gw) for w, m, gw in zip(w0, ms, g)])
                    sc = np.where(prev > 0, sc, np.nan)
                    assert np.all(cur <= prev), "Iter SNIP revived a pruned weight"
                np.testing.assert_array_equal(cur, np_keep_top(sc, int(cur.sum())))
                revived += int(revive and np.any(cur > prev))
                prev = cur
    assert revived > 0, "FORCE never revived a pruned weight"


# ---------------------------------------------------------------------------------------------
# exact budgets, jit with a traced budget, vmap over a population of 3, ties in PyTorch order


def _methods(data):
    """Each method as f(params, budget, keep_counts) (the iterative ones use the counts)."""
    xs, ys = data
    masks = mlp.dense_masks(WIDTHS)
    return {
        "snip": lambda p, b, k: saliency.snip(p, xs[0], ys[0], b),
        "iter_snip": lambda p, b, k: saliency.iter_snip(p, xs, ys, k[:10]),
        "force": lambda p, b, k: saliency.force(p, xs, ys, k[:10]),
        "grasp": lambda p, b, k: saliency.grasp(p, xs[0, :8], xs[1, :8], b),
        "synflow": lambda p, b, k: synflow.synflow(p, k[10:]),
        "prospr": lambda p, b, k: saliency.prospr(p, xs[:4], ys[:4], jnp.float32(0.1), b),
        "magnitude": lambda p, b, k: magnitude.magnitude_prune(p, masks, b),
    }


@pytest.mark.parametrize("name", ["snip", "iter_snip", "force", "grasp", "synflow", "prospr", "magnitude"])
def test_every_method_hits_budget_and_breaks_ties_in_torch_order(name, data):
    fn = jax.jit(jax.vmap(_methods(data)[name]))
    pop = make_nets(7, pop=3)
    budgets = jnp.asarray(BUDGETS)
    keep = jnp.asarray(np.concatenate([schedules.table(schedules.iterative_counts, N, BUDGETS),
                                       schedules.table(schedules.synflow_counts, N, BUDGETS)], axis=1))
    out = [np.asarray(m) for m in fn(pop, budgets, keep)]
    for i, b in enumerate(BUDGETS):
        assert count([m[i] for m in out]) == b
    # zero weights: every score ties at 0, so the first B in PyTorch flat order survive
    zero = jax.tree.map(lambda a: jnp.asarray(np.zeros(a.shape, np.float32)), pop)
    out = [np.asarray(m) for m in fn(zero, budgets, keep)]
    for i, b in enumerate(BUDGETS):
        np.testing.assert_array_equal(np_torch_flat([m[i] for m in out]),
                                      (np.arange(N) < b).astype(np.float32), err_msg=f"{name} B={b}")


# ---------------------------------------------------------------------------------------------
# magnitude: GMP, LTH, global magnitude


def test_gmp_schedule():
    steps = magnitude.gmp_event_steps()
    assert len(steps) == 201 and steps[0] == 97 and steps[-1] == 19497  # the reference's 201 events
    assert np.all(np.diff(steps) == 97)
    ks = np.asarray(jax.jit(jax.vmap(magnitude.gmp_event_index))(jnp.arange(19500)))
    np.testing.assert_array_equal(np.nonzero(ks)[0], steps)
    np.testing.assert_array_equal(ks[steps], np.arange(1, 202))
    # the float32 approximation kept for analysis.flops stays within one of the exact counts
    target = jax.jit(jax.vmap(magnitude.gmp_target, (0, None, None)))
    for n, b in [(560, 55), (131840, 15), (33, 1), (33, 32)]:
        t = np.asarray(target(jnp.arange(1, 202), n, jnp.int32(b)))
        exact = schedules.gmp_counts(n, b)
        assert t[-1] == b and np.all(np.diff(t) <= 0) and np.max(np.abs(t - exact)) <= 1


def test_lth_targets():
    lth = jax.jit(magnitude.lth_targets, static_argnums=0)
    for n, b in [(560, 55), (33, 1), (131840, 26), (33, 32)]:
        t = np.asarray(lth(n, jnp.int32(b)))
        exact = schedules.lth_counts(n, b)
        assert t.shape == (4,) and t[-1] == b and np.all(np.diff(t) <= 0)
        assert np.max(np.abs(t - exact)) <= 1
    np.testing.assert_array_equal(schedules.lth_counts(560, 35), [280, 140, 70, 35])  # exact powers


def test_magnitude_prune_keeps_pruned_weights_pruned(net):
    rng = np.random.default_rng(4)
    mask_flat = (rng.random(N) < 0.6).astype(np.float32)
    w_flat = rng.normal(size=N).astype(np.float32)
    w_flat[mask_flat == 0] *= 100.0  # huge but pruned: must not come back
    params = tuple({"w": jnp.asarray(w), "b": l["b"]} for w, l in zip(np_from_torch_flat(w_flat), net))
    masks = mlp.masks_from_weights(np_from_torch_flat(mask_flat))
    live = int(mask_flat.sum())
    prune = jax.jit(magnitude.magnitude_prune)
    for keep in (1, 5, live - 1, live):
        got = np_torch_flat(prune(params, masks, jnp.int32(keep)))
        np.testing.assert_array_equal(got, np_keep_top(np.where(mask_flat > 0, np.abs(w_flat), np.nan), keep))
        assert np.all(got <= mask_flat)


# ---------------------------------------------------------------------------------------------
# RigL


def np_erk(shapes, b):
    shapes = np.asarray(shapes, np.float64)
    n = shapes[:, 0] * shapes[:, 1]
    raw = shapes.sum(1) / n
    dense = np.zeros(len(n), bool)
    while True:
        eps = (b - n[dense].sum()) / (raw[~dense] * n[~dense]).sum()
        top = raw[~dense].max()
        if top * eps <= 1:
            return np.where(dense, 1.0, raw * eps)
        dense |= raw == top


@pytest.mark.parametrize("widths", [(3, 4, 3), (16, 16, 16), (256, 256, 256)])
def test_erk_densities_and_counts(widths):
    shapes = tuple(mlp.layer_shapes(widths))
    n_l = np.array([i * o for i, o in shapes])
    nw = int(n_l.sum())
    budgets = np.unique(np.clip([1, 2, 15, 26, 55, 65, 300, nw // 2, nw - 1, nw], 1, nw)).astype(np.int32)
    both = jax.jit(jax.vmap(lambda b: (rigl.erk_densities(shapes, b), rigl.erk_counts(shapes, b))))
    dens, cnts = (np.asarray(a) for a in both(jnp.asarray(budgets)))
    for b, d, c in zip(budgets, dens, cnts):
        ref = np_erk(shapes, b)
        np.testing.assert_allclose(d, ref, rtol=1e-5, atol=1e-6)
        assert c.sum() == b and np.all(c >= 0) and np.all(c <= n_l)
        assert np.all(np.abs(c - ref * n_l) < 1.0 + 1e-3)
    if widths == (16, 16, 16):  # hand check: divisor 18 + 32 + 32 + 17 = 99
        d55 = dens[list(budgets).index(55)]
        np.testing.assert_allclose(d55, np.array([18 / 32, 32 / 256, 32 / 256, 17 / 16]) * 55 / 99, rtol=1e-6)


def test_erk_random_masks_exact_counts():
    shapes = tuple(mlp.layer_shapes((16, 16, 16)))
    counts = jax.jit(rigl.erk_counts, static_argnums=0)(shapes, 55)
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    masks = jax.jit(jax.vmap(lambda k: rigl.erk_random_masks(k, shapes, counts)))(keys)
    for m, c in zip(masks, np.asarray(counts)):
        np.testing.assert_array_equal(np.asarray(jnp.sum(m, axis=(1, 2))), [c, c, c])
    assert not np.array_equal(np.asarray(masks[1][0]), np.asarray(masks[1][1]))


def test_rigl_drop_fraction():
    f = jax.jit(jax.vmap(lambda t: rigl.rigl_drop_fraction(t, 14625)))(jnp.asarray([0, 7312.5, 14625]))
    np.testing.assert_allclose(np.asarray(f), [0.3, 0.15, 0.0], atol=1e-6)
    steps = schedules.rigl_event_steps()
    assert len(steps) == 146 and steps[0] == 99 and steps[-1] == 14599
    fr = schedules.rigl_drop_fractions()
    assert fr[0] == 0.15 * (1 + math.cos(100 * math.pi / 14625))  # the counter s = i + 1
    np.testing.assert_array_equal(schedules.rigl_drop_counts([10, 40, 40, 9])[0],
                                  [int(c * fr[0]) for c in (10, 40, 40, 9)])


def np_rigl(w_flat_l, m_flat_l, g_flat_l, f, regrow_dropped):
    n_on = int(m_flat_l.sum())
    d = int(math.floor(np.float32(f) * np.float32(n_on)))
    if not regrow_dropped:
        d = min(d, m_flat_l.size - n_on)
    kept = np_keep_top(np.where(m_flat_l > 0, np.abs(w_flat_l), np.nan), n_on - d)
    cand = (kept == 0) if regrow_dropped else (m_flat_l == 0)
    grown = np_keep_top(np.where(cand, np.abs(g_flat_l), np.nan), d)
    assert np.all(grown * kept == 0)
    return kept + grown


@pytest.mark.parametrize("regrow_dropped", [True, False])
def test_rigl_update_vs_numpy(regrow_dropped):
    widths = (16, 16, 16)
    shapes = tuple(mlp.layer_shapes(widths))
    params = make_nets(11, pop=3, widths=widths)
    grads = make_nets(12, pop=3, widths=widths)
    rng = np.random.default_rng(13)  # exact ERK-like counts per layer, uniformly placed
    masks = tuple(jnp.asarray(np.stack([rng.permutation(i * o).reshape(o, i).T < c for _ in range(3)]),
                              jnp.float32) for (i, o), c in zip(shapes, [10, 40, 40, 9]))
    fs = jnp.asarray([0.3, 0.17, 0.05], jnp.float32)
    update = jax.vmap(lambda p, m, g, f: rigl.rigl_update(p, m, g, f, regrow_dropped))
    new = jax.jit(update)(params, masks, grads, fs)
    params, masks, grads, new = (jax.tree.map(np.asarray, t) for t in (params, masks, grads, new))
    changed = 0
    for i in range(3):
        for l in range(4):
            w = params[l]["w"][i].T.ravel()
            m = masks[l][i].T.ravel()
            g = grads[l]["w"][i].T.ravel()
            got = new[l][i].T.ravel()
            np.testing.assert_array_equal(got, np_rigl(w, m, g, float(fs[i]), regrow_dropped))
            assert got.sum() == m.sum()
            changed += int(np.any(got != m))
    assert changed > 0


def test_rigl_update_grows_largest_gradient_inactive_entries():
    # one 2x3 layer (PyTorch (3, 2)); live entries 0, 1, 2 (flat torch order) with |W| 3, 1, 2
    m = np.array([1, 1, 1, 0, 0, 0], np.float32)
    w = np.array([3.0, 1.0, 2.0, 0, 0, 0], np.float32)
    g = np.array([9.0, 0.1, 3.0, 0.5, 4.0, 2.0], np.float32)
    to_io = lambda v: jnp.asarray(v.reshape(3, 2).T)
    params = ({"w": to_io(w), "b": jnp.zeros(3)},)
    # drop int(0.67·3) = 2 (entries 1 and 2); the reference's candidates include the just-dropped
    # entry 2 (|g| = 3), which beats the inactive 5 (|g| = 2)
    update = jax.jit(rigl.rigl_update, static_argnames="regrow_dropped")
    out = update(params, (to_io(m),), (to_io(g),), 0.67)
    np.testing.assert_array_equal(np.asarray(out[0]).T.ravel(), [1, 0, 1, 0, 1, 0])
    out = update(params, (to_io(m),), (to_io(g),), 0.67, regrow_dropped=False)
    np.testing.assert_array_equal(np.asarray(out[0]).T.ravel(), [1, 0, 0, 0, 1, 1])
