"""Magnitude pruning: GMP's cubic schedule, global magnitude pruning and LTH round targets
(SPEC §5, paper B.1–B.2).

Counts are numbers of remaining weights. Rounding: the reference's GMP passes
``int(B + (N − B)(1 − k/199)³)`` to its magnitude pruner (which then loses ties to a strict
threshold and ends at B−2); we take the same floor, clip to [B, N] and keep exactly that many,
so the final event hits B exactly. LTH targets use the same floor (the last round exactly B).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax.pruning.topk import exponential_count, keep_top, restrict, schedule_round, weights_of

Array = jax.Array
Params = tuple
Masks = tuple

GMP_TOTAL_STEPS = 19_500
GMP_EVENTS = 199
LTH_ROUNDS = 5


def gmp_interval(total_steps: int = GMP_TOTAL_STEPS, n_events: int = GMP_EVENTS) -> int:
    """Steps between pruning events: int(T / (n_events + 1)) (97 for the paper's 19,500)."""
    return int(total_steps / (n_events + 1))


def gmp_event_steps(total_steps: int = GMP_TOTAL_STEPS, n_events: int = GMP_EVENTS) -> np.ndarray:
    """Steps at whose start GMP prunes: interval·k for k = 1..n_events (97, 194, …, 19,303)."""
    return gmp_interval(total_steps, n_events) * np.arange(1, n_events + 1, dtype=np.int64)


def gmp_event_index(step, total_steps: int = GMP_TOTAL_STEPS, n_events: int = GMP_EVENTS) -> Array:
    """Event number k (1..n_events) if a pruning event happens at the start of `step`, else 0.
    Traceable; `step` counts from 0."""
    interval = gmp_interval(total_steps, n_events)
    step = jnp.asarray(step, jnp.int32)
    k = step // interval
    is_event = (step % interval == 0) & (k >= 1) & (k <= n_events)
    return jnp.where(is_event, k, 0).astype(jnp.int32)


def gmp_target(k, n_total, budget, n_events: int = GMP_EVENTS) -> Array:
    """Remaining weights after event k: floor(B + (N − B)(1 − k/n_events)³), clipped to [B, N];
    k = 0 gives N and k ≥ n_events gives exactly B. Traceable in k and B."""
    b = jnp.asarray(budget, jnp.int32)
    n = jnp.asarray(n_total, jnp.int32)
    frac = 1.0 - jnp.minimum(jnp.asarray(k, jnp.float32), n_events) / n_events
    x = b.astype(jnp.float32) + (n - b).astype(jnp.float32) * frac ** 3
    target = jnp.clip(schedule_round(x, "floor"), b, n)
    return jnp.where(jnp.asarray(k) >= n_events, b, target).astype(jnp.int32)


def magnitude_prune(params: Params, masks, keep) -> Masks:
    """Global magnitude pruning over all weight matrices: weight masks keeping exactly `keep`
    entries with the largest |W| among those currently on. Entries already off rank below every
    live one (so they never return while `keep` ≤ the current count); ties by PyTorch flat
    index. `masks` may be a full mask pytree or a sequence of weight masks."""
    scores = tuple(restrict(jnp.abs(w), m > 0) for w, m in zip(weights_of(params), weights_of(masks)))
    return keep_top(scores, keep)


def lth_targets(n_total: int, budget, rounds: int = LTH_ROUNDS) -> Array:
    """Remaining weights after each of the rounds−1 pruning points (after rounds 1..4):
    floor(N·(B/N)^(k/(rounds−1))), clipped to [B, N], the last exactly B. int32 array
    (rounds−1,); traceable in B."""
    return jnp.stack([exponential_count(n_total, budget, k, rounds - 1) for k in range(1, rounds)])
