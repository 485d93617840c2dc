"""SynFlow: data-free iterative pruning by synaptic flow (SPEC §5, paper B.7).

The network is "linearised": every weight AND bias replaced by its absolute value (the
reference takes ``abs_`` of every weight and bias and restores signs afterwards; we never
change the caller's parameters, so nothing needs restoring). With an all-ones input (1 × 2),
R = Σ outputs and the score is |∂R/∂W ⊙ W| on the current masked network. The reference also
masks the biases by the pruning rule during the iterations (hidden bias i off once unit i has
no outgoing weight); we leave biases unmasked here. That changes no score: a unit without
outgoing weights carries no path to the output, so ∂R/∂W is 0 for every weight into it
whatever its bias, and the scores of all other weights do not see that bias either. One
network; the per-iteration keep counts come from the host. The registered method
:class:`SynFlow` is at the end.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sparsejax import mlp
from sparsejax.pruning import base, registry, schedules
from sparsejax.pruning.topk import keep_top, restrict, weights_of, with_weights

Array = jax.Array
Params = tuple
Masks = tuple

SYNFLOW_ITERS = schedules.SYNFLOW_ITERS


def synflow_scores(params: Params, weight_masks) -> tuple[Array, ...]:
    """|∂R/∂W ⊙ W| of the linearised network whose weights are |W| ⊙ mask, biases |b|."""
    abs_params = jax.tree.map(jnp.abs, params)
    ws = tuple(w * m.astype(w.dtype) for w, m in zip(weights_of(abs_params), weights_of(weight_masks)))
    ones_1xI = jnp.ones((1, ws[0].shape[0]), ws[0].dtype)
    grads = jax.grad(lambda w: jnp.sum(mlp.apply(with_weights(abs_params, w), ones_1xI)))(ws)
    return tuple(jnp.abs(g * w) for g, w in zip(grads, ws))


def synflow(params: Params, keep_I) -> Masks:
    """SynFlow masks: at iteration i (0..len(keep_I)−1) keep ``keep_I[i]`` weights by score —
    pass ``schedules.synflow_counts(N, B)`` (the reference's float64 N − int(N − B^r/N^(r−1)),
    clipped to [B, N], the last exactly B) — applying the mask at once so the masked network
    feeds the next iteration; pruned weights rank below every live one and stay pruned."""
    ws = weights_of(params)
    keep_I = jnp.asarray(keep_I, jnp.int32)
    if keep_I.ndim != 1:
        raise ValueError(f"keep_I: need a 1-D count per iteration, got shape {keep_I.shape}")
    masks0 = tuple(jnp.ones(w.shape, jnp.float32) for w in ws)

    def body(i, masks):
        scores = tuple(restrict(s, m > 0) for s, m in zip(synflow_scores(params, masks), masks))
        return keep_top(scores, keep_I[i])

    return lax.fori_loop(0, keep_I.shape[0], body, masks0)


# ------------------------------------------------------------------------------------ the method


@dataclasses.dataclass(frozen=True)
class SynFlowParams(base.MethodParams):
    iterations: int = SYNFLOW_ITERS  # paper B.7: 100

    def __post_init__(self):
        super().__post_init__()
        base.positive_int(self, "iterations")


@dataclasses.dataclass(frozen=True)
class SynFlow(base.AtInit):
    """The registered method: data-free, the host's float64 keep counts per iteration."""
    name = "synflow"
    label = "SynFlow"
    params_type = SynFlowParams

    def count_table(self, widths, budgets, total_steps=0):
        return schedules.table(schedules.synflow_counts, mlp.weight_count(widths), base.budgets_of(budgets),
                               self.params.iterations)

    def score_one(self, params, budget, key, lr, data, counts_K, widths):
        return synflow(params, counts_K)

    def prune_flops(self, ctx):
        """One gradient pass of one sample per iteration, iteration i on the network left by
        i − 1 (N first) with every bias (SynFlow never masks them while pruning)."""
        keep = schedules.synflow_counts(ctx.n_total, ctx.budget, self.params.iterations)
        all_biases = ctx.dense - ctx.n_total
        return float(sum(ctx.conv.pass_flops(1, int(c) + all_biases)
                         for c in np.concatenate([[ctx.n_total], keep[:-1]])))


registry.register(SynFlow())
