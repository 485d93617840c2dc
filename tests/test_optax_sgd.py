"""The optax SGD chain (train.sgd_update) against PyTorch's SGD written out by hand, bit for bit."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import mlp, train


def _by_hand(params, masks, momentum, grads, lr, mu, wd):
    """torch.optim.SGD (momentum, no dampening, weight decay added to the gradient) restricted to
    the mask, as the trainer wrote it before optax: buf ← μ·buf + (g + λ·p)·m; p ← (p − lr·buf)·m."""
    d = jax.tree.map(lambda g, p, m: (g + wd * p) * m, grads, params, masks)
    momentum = jax.tree.map(lambda b, d: mu * b + d, momentum, d)
    params = jax.tree.map(lambda p, b, m: (p - lr * b) * m, params, momentum, masks)
    return params, momentum


@pytest.mark.parametrize("wd", [5e-4, 0.0])
def test_optax_chain_is_bit_identical_to_hand_written_sgd(wd):
    p_models, widths, mu = 6, (4, 3, 5), 0.9
    key = jax.random.PRNGKey(3)
    params = mlp.init_population(jax.random.split(key, p_models), widths, "torch")
    masks = jax.tree.map(lambda x: (jax.random.uniform(jax.random.fold_in(key, x.size), x.shape) < 0.6)
                         .astype(jnp.float32), params)
    params = mlp.apply_masks(params, masks)
    lr = jnp.asarray(np.linspace(0.01, 0.5, p_models), jnp.float32)  # per-model learning rates
    ours = jax.jit(jax.vmap(functools.partial(train.sgd_update, momentum_coef=mu, weight_decay=wd)))
    ref = jax.jit(jax.vmap(functools.partial(_by_hand, mu=mu, wd=wd)))
    state_a = state_b = (params, jax.tree.map(jnp.zeros_like, params))
    for step in range(40):
        leaves, tree = jax.tree.flatten(params)
        ks = jax.random.split(jax.random.fold_in(key, 100 + step), len(leaves))
        grads = jax.tree.unflatten(tree, [jax.random.normal(k, l.shape) * 3.0 for k, l in zip(ks, leaves)])
        state_a = ours(state_a[0], masks, state_a[1], grads, lr)
        state_b = ref(state_b[0], masks, state_b[1], grads, lr)
        for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # masked coordinates stay exactly zero, the first buffer is the first (masked, decayed) gradient
    for p, m in zip(jax.tree.leaves(state_a[0]), jax.tree.leaves(masks)):
        assert np.all(np.asarray(p)[np.asarray(m) == 0] == 0)
    assert not np.array_equal(np.asarray(jax.tree.leaves(state_a[0])[0]), np.asarray(jax.tree.leaves(params)[0]))


def _prospr_meta_by_hand(c, params, xs, ys, lr, momentum=0.9):
    """ProsPr's inner loop as written before optax: buf = detached g first, then μ·buf + g; p − lr·buf."""
    from sparsejax.pruning.topk import weights_of, with_weights
    p = with_weights(params, tuple(w * ci for w, ci in zip(weights_of(params), c)))
    buf = None
    for k in range(xs.shape[0] - 1):
        g = jax.grad(mlp.loss)(p, xs[k], ys[k])
        buf = jax.lax.stop_gradient(g) if buf is None else jax.tree.map(lambda b, gi: momentum * b + gi, buf, g)
        p = jax.tree.map(lambda q, b: q - lr * b, p, buf)
    return mlp.loss(p, xs[-1], ys[-1])


def test_prospr_inner_steps_use_the_chain_bit_identically():
    from sparsejax.pruning import saliency
    from sparsejax.pruning.topk import weights_of
    key = jax.random.PRNGKey(5)
    params = jax.tree.map(lambda l: l[0], mlp.init_population(key[None], (6, 5, 4), "torch"))
    xs = jax.random.normal(jax.random.fold_in(key, 1), (4, 32, 2))
    ys = (jax.random.uniform(jax.random.fold_in(key, 2), (4, 32)) < 0.5).astype(jnp.float32)
    c = tuple(jnp.ones_like(w) for w in weights_of(params))
    ours = jax.jit(jax.grad(saliency.prospr_meta_loss))(c, params, xs, ys, jnp.float32(0.1))
    ref = jax.jit(jax.grad(_prospr_meta_by_hand))(c, params, xs, ys, jnp.float32(0.1))
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(float(jnp.max(jnp.abs(a))) > 0 for a in ours)
