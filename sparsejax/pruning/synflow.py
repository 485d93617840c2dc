"""SynFlow: data-free iterative pruning by synaptic flow (SPEC §5, paper B.7).

The network is "linearised": every weight AND bias replaced by its absolute value (the
reference takes ``abs_`` of the whole state dict and restores signs afterwards; we never change
the caller's parameters, so nothing needs restoring). With an all-ones input (1 × 2),
R = Σ outputs and the score is |∂R/∂W ⊙ W| on the current masked network. Biases are not
masked during pruning (the reference masks weights only). One network, traced budget.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from sparsejax import mlp
from sparsejax.pruning.topk import exponential_count, keep_top, restrict, weights_of, with_weights

Array = jax.Array
Params = tuple
Masks = tuple

SYNFLOW_ITERS = 100


def synflow_scores(params: Params, weight_masks) -> tuple[Array, ...]:
    """|∂R/∂W ⊙ W| of the linearised network whose weights are |W| ⊙ mask, biases |b|."""
    abs_params = jax.tree.map(jnp.abs, params)
    ws = tuple(w * m.astype(w.dtype) for w, m in zip(weights_of(abs_params), weights_of(weight_masks)))
    ones_1xI = jnp.ones((1, ws[0].shape[0]), ws[0].dtype)
    grads = jax.grad(lambda w: jnp.sum(mlp.apply(with_weights(abs_params, w), ones_1xI)))(ws)
    return tuple(jnp.abs(g * w) for g, w in zip(grads, ws))


def synflow(params: Params, budget, n_iter: int = SYNFLOW_ITERS) -> Masks:
    """SynFlow masks: at iteration i (0..n_iter−1) keep ceil(N·(B/N)^((i+1)/n_iter)) weights
    by score (the reference prunes int((1 − s)·N), so it keeps the ceiling; clipped to [B, N]),
    applying the mask at once so the masked network feeds the next iteration; pruned weights
    rank below every live one and stay pruned; the final mask has exactly B."""
    ws = weights_of(params)
    n_total = sum(int(w.size) for w in ws)
    masks0 = tuple(jnp.ones(w.shape, jnp.float32) for w in ws)

    def body(i, masks):
        scores = tuple(restrict(s, m > 0) for s, m in zip(synflow_scores(params, masks), masks))
        return keep_top(scores, exponential_count(n_total, budget, i + 1, n_iter, "ceil"))

    return lax.fori_loop(0, n_iter, body, masks0)
