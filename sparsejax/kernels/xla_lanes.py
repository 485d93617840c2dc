"""The population SGD step in a models-last ("lanes") layout, written for accelerators.

The default XLA step (``train._train_step`` with kernel ``"xla"``) is ``vmap(grad(loss))``: on a
GPU every layer of every model becomes a tiny batched matrix product (P batches of 128×16·16×16)
with the activations written to memory between the dots. For the small shapes of the study
(widths ≤ 16, fan-ins of 2 or 3) that is mostly launch and memory overhead.

Here the population axis P is the LAST (fastest, lane) axis of every array, and layers are
unrolled over their fan-in, so a layer is a handful of elementwise multiply-adds over (B, P)
slabs that XLA fuses into one kernel, and a weight gradient is a fused multiply-reduce over the
batch axis:

* parameters, masks, momentum: ``w_IxOxP``, ``b_OxP``;
* activations: ``h_IxBxP`` (feature-major: ``h[i]`` is one (B, P) slab);
* the minibatch: indices ``idx_BxP`` from the same keyed Feistel permutation as the XLA step,
  evaluated directly in the (B, P) layout (no per-model vmap), then one gather per input feature.

Forward and backward are written out by hand (ReLU hidden layers, mean BCE-with-logits on one
logit) instead of autodiff, so the backward pass needs only the post-activations. The numbers
equal the XLA step up to float32 summation order (``tests/test_xla_lanes.py``).

The trainer's population state stays models-first (``w_PxIxO``): :func:`sgd_step` transposes in
and out each step. That costs about one extra pass over the parameters per step, small against
the activation traffic (128 examples × width per layer per model), and keeps hooks (GMP, RigL),
evaluation and the store unchanged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from sparsejax import mlp, shuffle

Array = jax.Array
Params = tuple  # tuple of {"w": ..., "b": ...}

# Unroll a layer's contraction over its fan-in up to this many inputs (a chain of fused
# multiply-adds over (B, P) slabs); wider layers use one fused multiply-reduce.
UNROLL_MAX_FAN_IN = 16


def to_lanes(tree: Params) -> Params:
    """Models-first (P, ...) leaves to models-last (..., P)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), tree)


def from_lanes(tree: Params) -> Params:
    """Models-last (..., P) leaves back to models-first (P, ...)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), tree)


def batch_indices_BxP(round_keys_PxR: Array, step_in_epoch: Array, n: int, batch_size: int) -> Array:
    """(B, P) example indices of every model's minibatch: position ``step_in_epoch·B + j`` of
    each model's epoch permutation, the same integers as ``shuffle.batch_indices``."""
    p = round_keys_PxR.shape[0]
    pos_B = step_in_epoch * batch_size + jnp.arange(batch_size)
    pos_BxP = jnp.broadcast_to(pos_B[:, None], (batch_size, p))
    return shuffle.permute(pos_BxP, round_keys_PxR.T, n)  # round key r is a (P,) row: broadcasts


def gather_batch(x_all: Array, y_all: Array, idx_BxP: Array) -> tuple[Array, Array]:
    """Minibatch in lanes layout: x (I, B, P), y (B, P); one gather per input feature."""
    x_IxBxP = jnp.stack([x_all[:, i][idx_BxP] for i in range(x_all.shape[1])])
    return x_IxBxP, y_all[idx_BxP]


def _contract_in(h_IxBxP: Array, w_IxOxP: Array) -> Array:
    """z[o, b, p] = Σ_i h[i, b, p] · w[i, o, p], fan-in unrolled when small."""
    fan_in = w_IxOxP.shape[0]
    if fan_in <= UNROLL_MAX_FAN_IN:
        z = h_IxBxP[0][None] * w_IxOxP[0][:, None, :]
        for i in range(1, fan_in):
            z = z + h_IxBxP[i][None] * w_IxOxP[i][:, None, :]
        return z
    return jnp.sum(h_IxBxP[:, None] * w_IxOxP[:, :, None, :], axis=0)


def _contract_out(d_OxBxP: Array, w_IxOxP: Array) -> Array:
    """g[i, b, p] = Σ_o d[o, b, p] · w[i, o, p] (the backward of :func:`_contract_in`)."""
    fan_out = w_IxOxP.shape[1]
    if fan_out <= UNROLL_MAX_FAN_IN:
        g = d_OxBxP[0][None] * w_IxOxP[:, 0][:, None, :]
        for o in range(1, fan_out):
            g = g + d_OxBxP[o][None] * w_IxOxP[:, o][:, None, :]
        return g
    return jnp.sum(d_OxBxP[None] * w_IxOxP[:, :, None, :], axis=1)


def loss_and_grads_lanes(params: Params, x_IxBxP: Array, y_BxP: Array) -> tuple[Array, Params]:
    """Per-model mean BCE-with-logits loss (P,) and its gradients, all in lanes layout.

    Hand-written backprop: dz = (σ(z) − y)/B; gW_l[i, o] = Σ_b h_l[i, b]·d[o, b]; gb = Σ_b d;
    d_prev = (Σ_o d[o]·W[i, o]) · 1[h_l > 0]. ReLU'(0) = 0 and σ(0) − y at z = 0, as JAX's
    autodiff of ``mlp.loss``.
    """
    hs = [x_IxBxP]
    n_layers = len(params)
    for l, layer in enumerate(params):
        a = _contract_in(hs[-1], layer["w"]) + layer["b"][:, None, :]
        hs.append(jax.nn.relu(a) if l < n_layers - 1 else a)
    z_BxP = hs[-1][0]
    batch = z_BxP.shape[0]
    loss_P = jnp.mean(mlp.bce_with_logits(z_BxP, y_BxP), axis=0)
    d = ((jax.nn.sigmoid(z_BxP) - y_BxP) / batch)[None]  # (1, B, P)
    grads: list[dict] = [None] * n_layers  # type: ignore[list-item]
    for l in reversed(range(n_layers)):
        h = hs[l]
        g_w = jnp.sum(h[:, None] * d[None], axis=2)  # (I, O, P): fused multiply-reduce over B
        grads[l] = {"w": g_w, "b": jnp.sum(d, axis=1)}
        if l:
            d = _contract_out(d, params[l]["w"]) * (h > 0)
    return loss_P, tuple(grads)


def sgd_lanes(params: Params, masks: Params, momentum: Params, grads: Params, lr_P: Array,
              momentum_coef: float, weight_decay: float) -> tuple[Params, Params]:
    """``train.sgd_update`` in lanes layout (lr broadcast along the last axis)."""
    d = jax.tree.map(lambda g, p, m: (g + weight_decay * p) * m, grads, params, masks)
    momentum = jax.tree.map(lambda b, d: momentum_coef * b + d, momentum, d)
    params = jax.tree.map(lambda p, b, m: (p - lr_P * b) * m, params, momentum, masks)
    return params, momentum


def sgd_step(params: Params, masks: Params, momentum: Params, x_all: Array, y_all: Array,
             round_keys_PxR: Array, step_in_epoch: Array, lr_P: Array, batch_size: int,
             momentum_coef: float, weight_decay: float) -> tuple[Params, Params, Array]:
    """One masked SGD step of every model; state in and out models-first (``w_PxIxO``).

    ``round_keys_PxR`` are each model's Feistel round keys of the current epoch
    (``shuffle.epoch_round_keys``), ``step_in_epoch`` the shared step within the epoch.
    Returns (params, momentum, loss_P): ``loss_P`` each model's minibatch loss before the step.
    """
    idx_BxP = batch_indices_BxP(round_keys_PxR, step_in_epoch, x_all.shape[0], batch_size)
    x_IxBxP, y_BxP = gather_batch(x_all, y_all, idx_BxP)
    p_l, m_l, b_l = to_lanes(params), to_lanes(masks), to_lanes(momentum)
    loss_P, g_l = loss_and_grads_lanes(p_l, x_IxBxP, y_BxP)
    p_l, b_l = sgd_lanes(p_l, m_l, b_l, g_l, lr_P, momentum_coef, weight_decay)
    return from_lanes(p_l), from_lanes(b_l), loss_P
