"""Public, explicit-data entry points of every pruning method, for ONE model (issue #10).

Everything the trainer does to a population, per model and with the data given explicitly, so a
method can be compared with another implementation (the reference's PyTorch code, say) on the
same weights and minibatches without reaching into private helpers.

Conventions:
- ``params``: one network, a tuple of ``{"w": (in, out), "b": (out,)}`` float32 layers
  (:func:`sparsejax.mlp.init`, or :func:`sparsejax.mlp.from_torch_state` for a PyTorch state
  dict; PyTorch stores ``w`` transposed).
- Scores are per-layer arrays in the same (in, out) layout; masks are tuples of 0/1 float32
  weight masks. Biases are never scored; :func:`bias_masks` derives them (SPEC §5).
- ``budget`` is a Python int with 0 ≤ B ≤ N: every ``*_prune`` keeps exactly B weights, ties
  by PyTorch flat index (lower wins). The iterative methods use the count schedules below —
  the reference's float64 expressions, floored at B — computed on the host.
- Minibatches: x (128, 2) float32, y (128,) float 0/1; stacks (K, 128, 2) and (K, 128).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import mlp
from sparsejax.pruning import magnitude, rigl, saliency, schedules, synflow
from sparsejax.pruning.schedules import (gmp_counts, gmp_event_steps, iterative_counts, lth_counts,  # noqa: F401
                                         rigl_drop_counts, rigl_drop_fractions, rigl_event_steps,
                                         synflow_counts)
from sparsejax.pruning.topk import keep_top, weights_of, with_weights

Array = jax.Array
Params = tuple
Masks = tuple

__all__ = [
    "snip_scores", "snip_prune", "iter_snip_scores", "iter_snip_prune", "force_scores", "force_prune",
    "grasp_scores", "grasp_prune", "synflow_scores", "synflow_prune", "prospr_scores", "prospr_prune",
    "random_prune", "magnitude_prune", "erk_counts", "rigl_init_masks", "rigl_update", "bias_masks",
    "gmp_counts", "gmp_event_steps", "synflow_counts", "iterative_counts", "lth_counts",
    "rigl_event_steps", "rigl_drop_fractions", "rigl_drop_counts",
]


def _n_and_budget(params, budget) -> tuple[int, int]:
    n = sum(int(np.prod(w.shape)) for w in weights_of(params))
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or not 0 <= int(budget) <= n:
        raise ValueError(f"budget must be an int in [0, {n}] (the network's weight count), got {budget!r}")
    return n, int(budget)


def _f32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def bias_masks(weight_masks: Sequence[Array]) -> list[Array]:
    """Bias masks of the pruning rule: hidden bias i of layer l kept iff unit i has an outgoing
    weight (column i of layer l+1's mask, in PyTorch terms); the output bias always kept."""
    return mlp.bias_masks_out_degree([jnp.asarray(m, jnp.float32) for m in weight_masks])


# ------------------------------------------------------------------------------------ SNIP

_snip_scores = jax.jit(saliency.snip_scores)
_keep_top = jax.jit(keep_top)


def snip_scores(params: Params, x_BxI, y_B) -> tuple[Array, ...]:
    """SNIP connection sensitivity |W ⊙ ∂L/∂W| on one minibatch (the reference: 128 points)."""
    return _snip_scores(_f32(params), jnp.asarray(x_BxI, jnp.float32), jnp.asarray(y_B, jnp.float32))


def snip_prune(params: Params, x_BxI, y_B, budget: int) -> Masks:
    """SNIP masks: the B highest :func:`snip_scores`."""
    _n_and_budget(params, budget)
    return _keep_top(snip_scores(params, x_BxI, y_B), jnp.int32(budget))


# ------------------------------------------------------------------------------------ Iter SNIP / FORCE

_trajectory = jax.jit(saliency.iterative_saliency_trajectory, static_argnums=4)


def _iterative_scores(params, weight_masks, x_BxI, y_B, revive: bool) -> tuple[Array, ...]:
    ws = weights_of(params)
    w_cur = tuple(w * jnp.asarray(m, w.dtype) for w, m in zip(ws, weights_of(weight_masks)))
    g = saliency.weight_grads(with_weights(params, w_cur), x_BxI, y_B)
    return tuple(jnp.abs((w if revive else wc) * gw) for w, wc, gw in zip(ws, w_cur, g))


_iter_scores = jax.jit(_iterative_scores, static_argnums=4)


def iter_snip_scores(params: Params, weight_masks: Sequence[Array], x_BxI, y_B) -> tuple[Array, ...]:
    """One Iter SNIP step's scores: |(W ⊙ mask) ⊙ g| with g = ∂L/∂W of the pruned network on
    this minibatch (biases unmasked). Only the weights still on compete at the next cut."""
    return _iter_scores(_f32(params), _f32(tuple(weight_masks)), jnp.asarray(x_BxI, jnp.float32),
                        jnp.asarray(y_B, jnp.float32), False)


def force_scores(params: Params, weight_masks: Sequence[Array], x_BxI, y_B) -> tuple[Array, ...]:
    """One FORCE step's scores: |W0 ⊙ g| with g taken on the pruned network W0 ⊙ mask, over
    all weights (pruned ones may return)."""
    return _iter_scores(_f32(params), _f32(tuple(weight_masks)), jnp.asarray(x_BxI, jnp.float32),
                        jnp.asarray(y_B, jnp.float32), True)


def _iterative_prune(params, xs_KxBxI, ys_KxB, budget, revive) -> Masks:
    n, b = _n_and_budget(params, budget)
    xs = jnp.asarray(xs_KxBxI, jnp.float32)
    keep = jnp.asarray(iterative_counts(n, b, int(xs.shape[0])), jnp.int32)
    traj = _trajectory(_f32(params), xs, jnp.asarray(ys_KxB, jnp.float32), keep, revive)
    return tuple(m[-1] for m in traj)


def iter_snip_prune(params: Params, xs_KxBxI, ys_KxB, budget: int) -> Masks:
    """Iter SNIP masks: K = xs.shape[0] steps (10 in the paper), step j on minibatch j−1 keeps
    ``iterative_counts(N, B, K)[j−1]``; pruned weights stay pruned."""
    return _iterative_prune(params, xs_KxBxI, ys_KxB, budget, False)


def force_prune(params: Params, xs_KxBxI, ys_KxB, budget: int) -> Masks:
    """FORCE masks: as :func:`iter_snip_prune` with :func:`force_scores` (weights may return)."""
    return _iterative_prune(params, xs_KxBxI, ys_KxB, budget, True)


# ------------------------------------------------------------------------------------ GraSP

_grasp_scores = jax.jit(saliency.grasp_scores, static_argnums=3)


def grasp_scores(params: Params, x_class0_HxI, x_class1_HxI,
                 temperature: float = saliency.GRASP_TEMPERATURE) -> tuple[Array, ...]:
    """GraSP scores −W ⊙ Hg from a class-0 half and a class-1 half (the reference: the first
    25 samples of each class), logits / temperature (200). The LOWEST scores are kept."""
    return _grasp_scores(_f32(params), jnp.asarray(x_class0_HxI, jnp.float32),
                         jnp.asarray(x_class1_HxI, jnp.float32), float(temperature))


def grasp_prune(params: Params, x_class0_HxI, x_class1_HxI, budget: int,
                temperature: float = saliency.GRASP_TEMPERATURE) -> Masks:
    """GraSP masks: keep the B lowest :func:`grasp_scores` (remove the highest)."""
    _n_and_budget(params, budget)
    scores = grasp_scores(params, x_class0_HxI, x_class1_HxI, temperature)
    return _keep_top(tuple(-s for s in scores), jnp.int32(budget))


# ------------------------------------------------------------------------------------ SynFlow

_synflow_scores = jax.jit(synflow.synflow_scores)
_synflow = jax.jit(synflow.synflow)


def synflow_scores(params: Params, weight_masks: Sequence[Array] | None = None) -> tuple[Array, ...]:
    """SynFlow scores |∂R/∂W ⊙ W| of the linearised network (|W| ⊙ mask, |b|), all-ones input,
    R = Σ outputs; `weight_masks` defaults to dense (the first iteration). Data-free."""
    params = _f32(params)
    if weight_masks is None:
        weight_masks = tuple(jnp.ones_like(w) for w in weights_of(params))
    return _synflow_scores(params, _f32(tuple(weight_masks)))


def synflow_prune(params: Params, budget: int, n_iter: int = schedules.SYNFLOW_ITERS) -> Masks:
    """SynFlow masks: `n_iter` (100) iterations, iteration i keeping ``synflow_counts(N, B)[i]``."""
    n, b = _n_and_budget(params, budget)
    return _synflow(_f32(params), jnp.asarray(synflow_counts(n, b, n_iter), jnp.int32))


# ------------------------------------------------------------------------------------ ProsPr

_prospr_scores = jax.jit(saliency.prospr_scores, static_argnums=(4, 5))


def prospr_scores(params: Params, xs_4xBxI, ys_4xB, lr: float, momentum: float = saliency.PROSPR_MOMENTUM,
                  detach_first_buffer: bool = True) -> tuple[Array, ...]:
    """ProsPr scores |∂L_meta/∂c| at c = 1: three SGD steps (lr, momentum 0.9, no weight decay)
    from W ⊙ c on minibatches 0–2, meta-loss on minibatch 3 (see ``saliency.prospr_meta_loss``)."""
    return _prospr_scores(_f32(params), jnp.asarray(xs_4xBxI, jnp.float32), jnp.asarray(ys_4xB, jnp.float32),
                          jnp.float32(lr), float(momentum), bool(detach_first_buffer))


def prospr_prune(params: Params, xs_4xBxI, ys_4xB, lr: float, budget: int) -> Masks:
    """ProsPr masks: the B highest :func:`prospr_scores`. (The reference's bias hook never masks
    third-layer biases at width ≤ 3; :func:`bias_masks` applies the usual rule.)"""
    _n_and_budget(params, budget)
    return _keep_top(prospr_scores(params, xs_4xBxI, ys_4xB, lr), jnp.int32(budget))


# ------------------------------------------------------------------------------------ random, magnitude

_magnitude = jax.jit(magnitude.magnitude_prune)


def random_prune(key: Array, widths: Sequence[int], budget: int) -> Masks:
    """B weights placed uniformly at random over all matrices (a jax.random key)."""
    n = mlp.weight_count(widths)
    if not 0 <= int(budget) <= n:
        raise ValueError(f"budget must be an int in [0, {n}], got {budget!r}")
    return tuple(mlp.random_weight_masks(key, tuple(widths), int(budget)))


def magnitude_prune(params: Params, weight_masks: Sequence[Array] | None, keep: int) -> Masks:
    """Global magnitude pruning (one GMP event, one LTH cut): keep the `keep` largest |W| among
    the weights currently on (`weight_masks`, default all). GMP's event k keeps
    ``gmp_counts(N, B)[k−1]``; LTH's round k keeps ``lth_counts(N, B)[k−1]``."""
    params = _f32(params)
    if weight_masks is None:
        weight_masks = tuple(jnp.ones_like(w) for w in weights_of(params))
    _n_and_budget(params, keep)
    return _magnitude(params, _f32(tuple(weight_masks)), jnp.int32(keep))


# ------------------------------------------------------------------------------------ RigL

_rigl_update = jax.jit(lambda p, m, g, d: rigl.rigl_update(p, m, g, n_drop=d))


def erk_counts(widths: Sequence[int], budget: int) -> np.ndarray:
    """RigL's per-layer ERK weight counts summing to exactly B (largest-remainder rounding)."""
    n = mlp.weight_count(widths)
    if not 0 <= int(budget) <= n:
        raise ValueError(f"budget must be an int in [0, {n}], got {budget!r}")
    return np.asarray(rigl.erk_counts(tuple(mlp.layer_shapes(widths)), int(budget)))


def rigl_init_masks(key: Array, widths: Sequence[int], budget: int) -> Masks:
    """RigL's random initial masks: exactly erk_counts(widths, B)[l] weights in layer l."""
    return rigl.erk_random_masks(key, mlp.layer_shapes(widths), jnp.asarray(erk_counts(widths, budget)))


def rigl_update(params: Params, weight_masks: Sequence[Array], dense_grads: Sequence[Array],
                drop_fraction: float) -> Masks:
    """One RigL drop/grow: per layer drop int(n_on · f) (float64, as the reference) live weights
    with the smallest |W|, grow as many with the largest |dense gradient| among the rest.
    `dense_grads` are ∂L/∂W of the masked network on that iteration's minibatch; the trainer's
    f at its e-th update is ``rigl_drop_fractions(T)[e]``."""
    masks = _f32(tuple(weight_masks))
    n_on = [int(np.sum(np.asarray(m))) for m in masks]
    n_drop = jnp.asarray([int(c * float(drop_fraction)) for c in n_on], jnp.int32)
    return _rigl_update(_f32(params), masks, _f32(tuple(weights_of(dense_grads))), n_drop)
