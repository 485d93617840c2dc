"""Tests for sparsejax.connectivity: brute-force paths, gradient route, folding, hand counts."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import connectivity as cx
from sparsejax import data, mlp

# The public functions are jitted already; the tests reuse two shapes to keep compile time low.
WIDTHS = (3, 4, 3)
apply_jit = jax.jit(mlp.apply)


def random_masked_network(rng: np.random.Generator, widths: tuple[int, ...], density: float,
                          zero_frac: float = 0.1) -> tuple[tuple, tuple]:
    """Random params (some exact zeros) and random 0/1 masks (weights and biases)."""
    params, masks = [], []
    for i, o in mlp.layer_shapes(widths):
        w = rng.uniform(-1, 1, (i, o)).astype(np.float32)
        w[rng.random((i, o)) < zero_frac] = 0.0
        b = rng.uniform(-1, 1, (o,)).astype(np.float32)
        params.append({"w": jnp.asarray(w), "b": jnp.asarray(b)})
        masks.append({"w": jnp.asarray((rng.random((i, o)) < density).astype(np.float32)),
                      "b": jnp.asarray((rng.random((o,)) < 0.8).astype(np.float32))})
    return tuple(params), tuple(masks)


def brute_force(params: tuple, masks: tuple) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """f, g (per unit layer) and E (per layer) by enumerating all paths with itertools."""
    s = [(np.asarray(p["w"]) != 0) & (np.asarray(m["w"]) != 0) for p, m in zip(params, masks)]
    dims = [s[0].shape[0]] + [x.shape[1] for x in s]
    num = len(s)

    def connected(units: tuple[int, ...], start: int) -> bool:
        return all(s[start + k][units[k], units[k + 1]] for k in range(len(units) - 1))

    f = [np.zeros(d, bool) for d in dims]
    g = [np.zeros(d, bool) for d in dims]
    f[0][:] = True
    g[num][:] = True
    for l in range(1, num + 1):  # f: some path from an input to unit j of layer l
        for prefix in itertools.product(*[range(d) for d in dims[: l + 1]]):
            if connected(prefix, 0):
                f[l][prefix[-1]] = True
    for l in range(num):  # g: some path from unit i of layer l to the output
        for suffix in itertools.product(*[range(d) for d in dims[l:]]):
            if connected(suffix, l):
                g[l][suffix[0]] = True
    e = [np.zeros_like(x) for x in s]
    for path in itertools.product(*[range(d) for d in dims]):
        if connected(path, 0):
            for l in range(num):
                e[l][path[l], path[l + 1]] = True
    return f, g, e


@pytest.mark.parametrize("widths", [WIDTHS, (2, 2, 2)])
def test_effective_masks_match_brute_force_and_gradient(widths):
    rng = np.random.default_rng(sum(widths))
    eff, grad, reach = cx.effective_weight_masks, cx.effective_masks_by_gradient, cx.reachability
    n_nonempty = n_collapsed = 0
    for trial in range(120):
        density = [0.25, 0.4, 0.6, 0.9][trial % 4]
        params, masks = random_masked_network(rng, widths, density)
        f_bf, g_bf, e_bf = brute_force(params, masks)
        e_fn = [np.asarray(x) for x in eff(params, masks)]
        e_gr = [np.asarray(x) for x in grad(params, masks)]
        f_fn, g_fn = reach(params, masks)
        for l in range(len(e_bf)):
            np.testing.assert_array_equal(e_fn[l], e_bf[l])
            np.testing.assert_array_equal(e_gr[l], e_bf[l])
        for l in range(len(f_bf)):
            np.testing.assert_array_equal(np.asarray(f_fn[l]), f_bf[l])
            np.testing.assert_array_equal(np.asarray(g_fn[l]), g_bf[l])
        st = cx.connectivity_stats(params, masks)
        collapsed = not any(x.any() for x in e_bf)
        assert bool(st["layer_collapse"]) == collapsed
        n_collapsed += collapsed
        n_nonempty += not collapsed
        active = [int((f_bf[l] & g_bf[l]).sum()) for l in range(1, len(widths) + 1)]
        assert list(np.asarray(st["active_units"])) == active
        assert int(st["effective_weight_nnz"]) == sum(int(x.sum()) for x in e_bf)
        # n_paths equals a direct count of full paths
        dims = mlp.layer_dims(widths)
        s = [(np.asarray(p["w"]) != 0) & (np.asarray(m["w"]) != 0) for p, m in zip(params, masks)]
        n_paths = sum(all(s[k][p[k], p[k + 1]] for k in range(len(s)))
                      for p in itertools.product(*[range(d) for d in dims]))
        assert float(st["n_paths"]) == n_paths
    assert n_nonempty > 10 and n_collapsed > 5  # both regimes were exercised


def test_masks_none_uses_nonzero_weights():
    rng = np.random.default_rng(0)
    params, masks = random_masked_network(rng, WIDTHS, 0.5)
    masked = mlp.apply_masks(params, masks)
    a = cx.connectivity_stats(masked)
    b = cx.connectivity_stats(params, masks)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def hand_network() -> tuple[tuple, tuple]:
    """Widths (3, 4, 3); edges listed as (in, out) of our I×O layout.

    L1: x0→a0, x1→a0, x1→a1            (a2 has no input, bias 0.7: a constant unit)
    L2: a0→b0, a1→b1, a2→b0, a2→b2, a1→b2 (value 0.3 but mask 0)   (b2 fed only by a2, bias masked)
    L3: b0→c0, b2→c0, b1→c1, b3→c2 (value 0.8 but mask 0)   (b3 isolated, bias masked; c2 isolated)
    L4: c0→out, c1→out (mask 1 but value 0)
    """
    w1 = np.zeros((2, 3), np.float32); m1 = np.zeros((2, 3), np.float32)
    for (i, j), v in {(0, 0): 1.0, (1, 0): -2.0, (1, 1): 0.5}.items():
        w1[i, j], m1[i, j] = v, 1
    b1 = np.array([0.1, 0.2, 0.7], np.float32); mb1 = np.ones(3, np.float32)
    w2 = np.zeros((3, 4), np.float32); m2 = np.zeros((3, 4), np.float32)
    for (i, j), v in {(0, 0): 1.5, (1, 1): 0.4, (2, 0): 2.0, (2, 2): 3.0}.items():
        w2[i, j], m2[i, j] = v, 1
    w2[1, 2] = 0.3  # nonzero value, masked out
    b2 = np.array([0.25, -0.5, 0.9, 0.4], np.float32); mb2 = np.array([1, 1, 0, 0], np.float32)
    w3 = np.zeros((4, 3), np.float32); m3 = np.zeros((4, 3), np.float32)
    w3[3, 2] = 0.8  # nonzero value, masked out
    for (i, j), v in {(0, 0): 0.5, (2, 0): -1.0, (1, 1): 2.0}.items():
        w3[i, j], m3[i, j] = v, 1
    b3 = np.array([0.05, 0.3, 0.6], np.float32); mb3 = np.ones(3, np.float32)
    w4 = np.array([[2.0], [0.0], [0.0]], np.float32); m4 = np.array([[1], [1], [0]], np.float32)
    b4 = np.array([-0.125], np.float32); mb4 = np.ones(1, np.float32)
    params = tuple({"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in ((w1, b1), (w2, b2), (w3, b3), (w4, b4)))
    masks = tuple({"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in ((m1, mb1), (m2, mb2), (m3, mb3), (m4, mb4)))
    return params, masks


def test_hand_built_counts():
    params, masks = hand_network()
    st = {k: np.asarray(v) for k, v in cx.connectivity_stats(params, masks).items()}
    # direct: weights 3 + 4 + 3 + 1 (c1→out has value 0, a1→b2 and b3→c2 are masked) = 11;
    # biases 3 + 2 (b2, b3 masked) + 3 + 1 = 9
    assert st["direct_weight_nnz"] == 11 and st["direct_bias_nnz"] == 9 and st["direct_model_nnz"] == 20
    # f: a=(1,1,0) b=(1,1,0,0) c=(1,1,0); g: c=(1,0,0) b=(1,0,1,0) a=(1,0,1)
    # E: x0→a0, x1→a0, a0→b0, b0→c0, c0→out = 5
    assert st["effective_weight_nnz"] == 5
    # effective biases (s ∧ g): a0, a2 | b0 (b2 masked) | c0 | out = 5
    assert st["effective_bias_nnz"] == 5 and st["effective_model_nnz"] == 10
    # folded: the same 5 weights, biases of a0, b0, c0 and the output = 4
    assert st["folded_weight_nnz"] == 5 and st["folded_bias_nnz"] == 4 and st["folded_model_nnz"] == 9
    np.testing.assert_array_equal(st["active_units"], [1, 1, 1])
    np.testing.assert_array_equal(st["input_dead_units"], [1, 2, 1])    # a2 | b2, b3 | c2
    np.testing.assert_array_equal(st["output_dead_units"], [1, 2, 2])   # a1 | b1, b3 | c1, c2
    np.testing.assert_array_equal(st["constant_units"], [1, 0, 0])      # a2 (b2's bias is masked)
    assert st["n_input_dead"] == 4 and st["n_output_dead"] == 5
    assert st["n_input_dead_only"] == 2 and st["n_output_dead_only"] == 3 and st["n_both_dead"] == 2
    assert st["n_constant"] == 1 and not st["layer_collapse"]
    assert st["n_paths"] == 2  # x0→a0→b0→c0→out, x1→a0→b0→c0→out

    folded, fmasks = cx.fold_constant_units(params, masks)
    # a2 = relu(0.7) = 0.7; b0 bias 0.25 + 0.7·2.0 = 1.65; b2 = relu(0 + 0.7·3.0) = 2.1;
    # c0 bias 0.05 + 2.1·(−1.0) = −2.05; output bias unchanged −0.125
    np.testing.assert_allclose(np.asarray(folded[0]["b"]), [0.1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(folded[1]["b"]), [1.65, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(folded[2]["b"]), [-2.05, 0, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(folded[3]["b"]), [-0.125], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(fmasks[1]["w"]), [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(fmasks[2]["b"]), [1, 0, 0])
    x = jnp.asarray(data.grid(64))
    np.testing.assert_allclose(np.asarray(apply_jit(folded, x)),
                               np.asarray(apply_jit(mlp.apply_masks(params, masks), x)), atol=1e-5)


def network_with_constants(seed: int, widths: tuple[int, ...] = WIDTHS) -> tuple[tuple, tuple]:
    """Random sparse network with planted constant units, a chain of them, and an active path."""
    rng = np.random.default_rng(seed)
    params, masks = random_masked_network(rng, widths, 0.35, zero_frac=0.0)
    params = [dict(p) for p in params]
    masks = [{k: np.array(v) for k, v in m.items()} for m in masks]
    # an active path x0→h1_1→h2_1→h3_1→out
    for l, (i, j) in enumerate([(0, 1), (1, 1), (1, 1), (1, 0)]):
        masks[l]["w"][i, j] = 1
    # layer-1 unit 0: no inputs, positive bias → constant; feeds h2_0 only, which feeds h3_1
    masks[0]["w"][:, 0] = 0
    masks[0]["b"][0] = 1
    params[0]["b"] = params[0]["b"].at[0].set(0.8)
    masks[1]["w"][:, 0] = 0
    masks[1]["w"][0, 0] = 1
    masks[1]["b"][0] = 0  # chain unit with a zero bias of its own
    params[1]["w"] = params[1]["w"].at[0, 0].set(1.3)
    masks[2]["w"][0, 1] = 1
    params[2]["w"] = params[2]["w"].at[0, 1].set(0.5).at[2, 1].set(0.7)
    # layer-2 unit 2: no inputs, own positive bias, feeds the active h3_1
    masks[1]["w"][:, 2] = 0
    masks[1]["b"][2] = 1
    params[1]["b"] = params[1]["b"].at[2].set(0.6)
    masks[2]["w"][2, 1] = 1
    params = tuple(params)
    masks = tuple({k: jnp.asarray(v) for k, v in m.items()} for m in masks)
    return params, masks


@pytest.mark.parametrize("seed", range(4))
def test_folding_preserves_function(seed):
    params, masks = network_with_constants(seed)
    st = cx.connectivity_stats(params, masks)
    assert int(st["n_constant"]) >= 2 and int(st["n_input_dead_only"]) >= 3
    folded, fmasks = cx.fold_constant_units(params, masks)
    x = jnp.asarray(data.grid())
    before = apply_jit(mlp.apply_masks(params, masks), x)
    after = apply_jit(mlp.apply_masks(folded, fmasks), x)
    np.testing.assert_allclose(np.asarray(after), np.asarray(before), atol=1e-5)
    # keeping only E without folding loses the constants and changes the function (teeth)
    naive_out = apply_jit(mlp.apply_masks(params, cx.effective_masks(params, masks)), x)
    assert float(jnp.max(jnp.abs(naive_out - before))) > 1e-3
    # the folded network is clean: only active units, no constants, weights = E; folding is idempotent
    st2 = cx.connectivity_stats(folded, fmasks)
    assert int(st2["n_constant"]) == 0 and int(st2["n_output_dead"]) == int(st2["n_both_dead"])
    assert int(st2["n_input_dead"]) == int(st2["n_both_dead"])
    np.testing.assert_array_equal(np.asarray(st2["active_units"]), np.asarray(st["active_units"]))
    for k in ("direct_weight_nnz", "effective_weight_nnz", "folded_weight_nnz"):
        assert int(st2[k]) == int(st["effective_weight_nnz"])
    assert int(st2["direct_model_nnz"]) == int(st["folded_model_nnz"]) == int(st2["folded_model_nnz"])
    refolded, _ = cx.fold_constant_units(folded, fmasks)
    for a, b in zip(jax.tree.leaves(refolded), jax.tree.leaves(folded)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_folding_random_sparse(seed):
    rng = np.random.default_rng(100 + seed)
    params, masks = random_masked_network(rng, WIDTHS, [0.3, 0.45, 0.6][seed % 3])
    folded, fmasks = cx.fold_constant_units(params, masks)
    x = jnp.asarray(data.grid())
    np.testing.assert_allclose(np.asarray(apply_jit(mlp.apply_masks(folded, fmasks), x)),
                               np.asarray(apply_jit(mlp.apply_masks(params, masks), x)), atol=1e-5)


def test_layer_collapse():
    params, _ = random_masked_network(np.random.default_rng(3), WIDTHS, 1.0, zero_frac=0.0)
    masks = mlp.dense_masks(WIDTHS)
    st = cx.connectivity_stats(params, masks)
    assert not bool(st["layer_collapse"]) and float(st["n_paths"]) == 2 * 3 * 4 * 3
    np.testing.assert_array_equal(np.asarray(st["active_units"]), [3, 4, 3])
    # cut the whole second layer: no path; every unit is input-dead or output-dead
    cut = list(masks)
    cut[1] = {"w": jnp.zeros((3, 4)), "b": jnp.ones(4)}
    cut = tuple(cut)
    st = cx.connectivity_stats(params, cut)
    assert bool(st["layer_collapse"]) and int(st["effective_weight_nnz"]) == 0
    np.testing.assert_array_equal(np.asarray(st["active_units"]), [0, 0, 0])
    assert int(st["n_input_dead_only"]) == 7 and int(st["n_output_dead_only"]) == 3
    assert float(st["n_paths"]) == 0
    # a collapsed network is a constant; folding puts it into the output bias
    folded, fmasks = cx.fold_constant_units(params, cut)
    assert int(mlp.weight_nnz(folded)) == 0 and int(st["folded_model_nnz"]) <= 1
    x = jnp.asarray(data.grid(64))
    out = apply_jit(mlp.apply_masks(params, cut), x)
    np.testing.assert_allclose(np.asarray(apply_jit(folded, x)), np.asarray(out), atol=1e-5)
    np.testing.assert_allclose(float(folded[-1]["b"][0]), float(out[0]), atol=1e-5)
    # collapse in the middle of otherwise connected layers (edges exist, but not on any path)
    w2 = np.zeros((3, 4), np.float32)
    w2[0, 0] = 1
    cut2 = list(masks)
    cut2[0] = {"w": jnp.asarray(np.eye(2, 3, 1, dtype=np.float32)), "b": jnp.ones(3)}  # x→h1_1, h1_2
    cut2[1] = {"w": jnp.asarray(w2), "b": jnp.ones(4)}  # only h1_0→h2_0
    st = cx.connectivity_stats(params, tuple(cut2))
    assert bool(st["layer_collapse"]) and int(st["direct_weight_nnz"]) > 0


def test_population_equals_loop():
    rng = np.random.default_rng(7)
    nets = [random_masked_network(rng, WIDTHS, d) for d in (0.2, 0.4, 0.6, 0.8, 1.0)]
    nets.append(network_with_constants(1))
    pop_params = jax.tree.map(lambda *xs: jnp.stack(xs), *[n[0] for n in nets])
    pop_masks = jax.tree.map(lambda *xs: jnp.stack(xs), *[n[1] for n in nets])
    pop = cx.connectivity_stats_population(pop_params, pop_masks)
    pop_fold = cx.fold_constant_units_population(pop_params, pop_masks)
    for p, (params, masks) in enumerate(nets):
        single = cx.connectivity_stats(params, masks)
        assert set(single) == set(pop)
        for k in single:
            np.testing.assert_array_equal(np.asarray(pop[k][p]), np.asarray(single[k]), err_msg=k)
        for a, b in zip(jax.tree.leaves(cx.fold_constant_units(params, masks)), jax.tree.leaves(pop_fold)):
            np.testing.assert_allclose(np.asarray(b[p]), np.asarray(a), atol=1e-7)
