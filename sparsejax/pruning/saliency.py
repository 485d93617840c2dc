"""Gradient-saliency pruning at initialisation: SNIP, Iter SNIP, FORCE, GraSP, ProsPr (SPEC §5).

Every function handles ONE network (the caller vmaps over the population) and takes its budget
B as a traced int32 scalar. Only the four weight matrices are scored; biases are never pruned
here (the caller derives bias masks with ``mlp.masks_from_weights``). Results are tuples of 0/1
float32 weight masks in our (in, out) layout, keeping exactly B weights (ties by PyTorch flat
index, see :mod:`sparsejax.pruning.topk`). Minibatches are explicit arguments: the caller draws
them. The iterative methods take their per-step keep counts as an int array computed on the host
(:func:`sparsejax.pruning.schedules.iterative_counts`: the reference's float64 expression).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from sparsejax import mlp, train
from sparsejax.pruning import schedules
from sparsejax.pruning.topk import keep_top, restrict, weights_of, with_weights

Array = jax.Array
Params = tuple
Masks = tuple  # tuple of (I, O) 0/1 float32 weight masks

ITER_STEPS = schedules.ITER_STEPS  # Iter SNIP / FORCE: 10 steps (paper B.6)
GRASP_TEMPERATURE = 200.0  # GraSP reference default
PROSPR_MOMENTUM = 0.9


def weight_grads(params: Params, x_BxI: Array, y_B: Array) -> tuple[Array, ...]:
    """∂L/∂W for the four weight matrices (biases held fixed)."""
    ws = weights_of(params)
    return jax.grad(lambda w: mlp.loss(with_weights(params, w), x_BxI, y_B))(ws)


# ---------------------------------------------------------------------------------------------
# SNIP


def snip_scores(params: Params, x_BxI: Array, y_B: Array) -> tuple[Array, ...]:
    """Connection sensitivity |W ⊙ ∂L/∂W| (= |∂L/∂c| at c = 1 for weights W ⊙ c) per layer."""
    return tuple(jnp.abs(w * g) for w, g in zip(weights_of(params), weight_grads(params, x_BxI, y_B)))


def snip(params: Params, x_BxI: Array, y_B: Array, budget) -> Masks:
    """SNIP: one minibatch, keep the B highest-sensitivity weights globally."""
    return keep_top(snip_scores(params, x_BxI, y_B), budget)


# ---------------------------------------------------------------------------------------------
# Iter SNIP and FORCE


def iterative_saliency_trajectory(params: Params, xs_KxBxI: Array, ys_KxB: Array, keep_K,
                                  revive: bool) -> tuple[Array, ...]:
    """Weight masks after each of the K = xs.shape[0] steps (leaves (K, I, O)).

    Step j (1..K) uses minibatch j−1 and keeps ``keep_K[j−1]`` weights: pass
    ``schedules.iterative_counts(N, B, K)`` (the reference's int(N·perc_j) in float64, clipped
    to [B, N], the last step exactly B). The gradient g is always
    taken on the current pruned network (weights W0 ⊙ mask, biases unmasked, as the reference
    masks weights only).
    - ``revive=False`` (Iter SNIP): score |(W0 ⊙ mask) ⊙ g| among the weights still on; pruned
      weights rank below all of them and stay pruned (the reference sets them to the minimum
      saliency, which can tie).
    - ``revive=True`` (FORCE): score |W0 ⊙ g| over all weights, so pruned weights may return.
    """
    w0 = weights_of(params)
    n_steps = int(xs_KxBxI.shape[0])
    keep_K = jnp.asarray(keep_K, jnp.int32)
    if keep_K.shape != (n_steps,):
        raise ValueError(f"keep_K: need one count per minibatch, shape ({n_steps},), got {keep_K.shape}")
    masks0 = tuple(jnp.ones(w.shape, jnp.float32) for w in w0)

    def step(masks, inp):
        keep, x_BxI, y_B = inp
        w_cur = tuple(w * m.astype(w.dtype) for w, m in zip(w0, masks))
        g = weight_grads(with_weights(params, w_cur), x_BxI, y_B)
        if revive:
            scores = tuple(jnp.abs(w * gw) for w, gw in zip(w0, g))
        else:
            scores = tuple(restrict(jnp.abs(w * gw), m > 0) for w, gw, m in zip(w_cur, g, masks))
        new = keep_top(scores, keep)
        return new, new

    _, traj = lax.scan(step, masks0, (keep_K, xs_KxBxI, ys_KxB))
    return traj


def iter_snip(params: Params, xs_KxBxI: Array, ys_KxB: Array, keep_K) -> Masks:
    """Iter SNIP (K = 10 minibatches in the paper): pruned weights stay pruned; keeps keep_K[-1]."""
    return tuple(m[-1] for m in iterative_saliency_trajectory(params, xs_KxBxI, ys_KxB, keep_K, False))


def force(params: Params, xs_KxBxI: Array, ys_KxB: Array, keep_K) -> Masks:
    """FORCE (K = 10 minibatches in the paper): re-scores |W0 ⊙ g| so pruned weights may return;
    keeps keep_K[-1]."""
    return tuple(m[-1] for m in iterative_saliency_trajectory(params, xs_KxBxI, ys_KxB, keep_K, True))


# ---------------------------------------------------------------------------------------------
# GraSP


def grasp_hg(params: Params, x_class0_HxI: Array, x_class1_HxI: Array,
             temperature: float = GRASP_TEMPERATURE) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    """(g, Hg) over the weights. Two halves, as in the reference (its 2·25 samples are stacked
    class 0 first and split in the middle): the class-0 half (labels 0) and the class-1 half
    (labels 1), each a mean BCE on logits / temperature. g = Σ_halves ∇_W L_half and
    Hg = Σ_halves ∇_W ⟨stop_grad(g), ∇_W L_half⟩ = (Σ_halves H_half) g, computed as a
    forward-over-reverse Hessian-vector product."""
    ws = weights_of(params)

    def half_loss(w, x, label):
        z = mlp.apply(with_weights(params, w), x) / temperature
        return jnp.mean(mlp.bce_with_logits(z, jnp.full(z.shape, label, z.dtype)))

    def grad_sum(w):
        g0 = jax.grad(half_loss)(w, x_class0_HxI, 0.0)
        g1 = jax.grad(half_loss)(w, x_class1_HxI, 1.0)
        return jax.tree.map(jnp.add, g0, g1)

    g = grad_sum(ws)
    _, hg = jax.jvp(grad_sum, (ws,), (lax.stop_gradient(g),))
    return g, hg


def grasp_scores(params: Params, x_class0_HxI: Array, x_class1_HxI: Array,
                 temperature: float = GRASP_TEMPERATURE) -> tuple[Array, ...]:
    """GraSP score −W ⊙ Hg per layer (the reference removes the highest scores)."""
    _, hg = grasp_hg(params, x_class0_HxI, x_class1_HxI, temperature)
    return tuple(-w * h for w, h in zip(weights_of(params), hg))


def grasp(params: Params, x_class0_HxI: Array, x_class1_HxI: Array, budget,
          temperature: float = GRASP_TEMPERATURE) -> Masks:
    """GraSP: keep the B lowest scores −W ⊙ Hg (= keep_top of W ⊙ Hg; ties by flat index)."""
    scores = grasp_scores(params, x_class0_HxI, x_class1_HxI, temperature)
    return keep_top(tuple(-s for s in scores), budget)


# ---------------------------------------------------------------------------------------------
# ProsPr
#
# A documented difference from the reference (issue #10): its bias-masking hook compares a
# layer's index with the layer's row count instead of the number of layers, so at width <= 3
# it never masks the third layer's biases; its Model NNZ right after pruning is then one
# higher than ours there (e.g. 25 vs 24 at width 3, B = 15). We keep the out-degree bias rule
# of every other method, so our width-3 ProsPr points can sit one parameter left of the
# paper's.


def prospr_meta_loss(c: tuple[Array, ...], params: Params, xs_SxBxI: Array, ys_SxB: Array, lr,
                     momentum: float = PROSPR_MOMENTUM, detach_first_buffer: bool = True) -> Array:
    """Meta-loss of weight multipliers c: from weights W ⊙ c (biases as they are) take S−1 SGD
    steps (momentum, first buffer = first gradient, no dampening, no weight decay: the trainer's
    optax chain :func:`sparsejax.train.sgd_chain`) on minibatches 0..S−2 updating weights AND
    biases, then the loss on minibatch S−1.

    ``detach_first_buffer`` (default True, what the reference code does): the first momentum
    buffer is a detached copy of the first gradient (its ``functional_sgd`` mirrors
    ``torch.optim.SGD``: ``buf = torch.clone(grad).detach()``), so the meta-gradient flows
    through every parameter update and every later gradient but not through the first-step
    gradient's own dependence on c. False differentiates through that too (the textbook
    ProsPr meta-gradient)."""
    p = with_weights(params, tuple(w * ci for w, ci in zip(weights_of(params), c)))
    chain = train.sgd_chain(lr, None, momentum, 0.0)  # the trainer's optax SGD, unmasked, no decay
    state = chain.init(p)  # trace starts at 0, so the first buffer is the first gradient
    for k in range(xs_SxBxI.shape[0] - 1):
        g = jax.grad(mlp.loss)(p, xs_SxBxI[k], ys_SxB[k])
        if k == 0 and detach_first_buffer:
            g = lax.stop_gradient(g)
        step, state = chain.update(g, state, p)
        p = jax.tree.map(lambda q, u: q - u, p, step)  # p − lr·buf
    return mlp.loss(p, xs_SxBxI[-1], ys_SxB[-1])


def prospr_scores(params: Params, xs_4xBxI: Array, ys_4xB: Array, lr,
                  momentum: float = PROSPR_MOMENTUM, detach_first_buffer: bool = True) -> tuple[Array, ...]:
    """|∂L_meta/∂c| at c = 1, differentiated through all inner steps (3 with 4 minibatches);
    see :func:`prospr_meta_loss` for ``detach_first_buffer``."""
    c = tuple(jnp.ones_like(w) for w in weights_of(params))
    meta = jax.grad(prospr_meta_loss)(c, params, xs_4xBxI, ys_4xB, lr, momentum, detach_first_buffer)
    return tuple(jnp.abs(m) for m in meta)


def prospr(params: Params, xs_4xBxI: Array, ys_4xB: Array, lr, budget,
           momentum: float = PROSPR_MOMENTUM, detach_first_buffer: bool = True) -> Masks:
    """ProsPr: keep the B weights with the largest meta-gradient magnitude."""
    return keep_top(prospr_scores(params, xs_4xBxI, ys_4xB, lr, momentum, detach_first_buffer), budget)
