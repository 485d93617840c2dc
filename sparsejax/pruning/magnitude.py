"""Magnitude pruning: global magnitude pruning, and GMP's and LTH's schedules (SPEC §5, paper
B.1–B.2).

Counts are numbers of remaining weights. The trainer takes them from
:mod:`sparsejax.pruning.schedules` (host float64, the reference's exact expressions, floored at
B): GMP prunes at 201 events t = 97k (k = 1..201, t < T = 19,500) to
``gmp_counts(N, B)[k − 1]``; LTH prunes after rounds 1–4 to ``lth_counts(N, B)``. The reference
then loses ties to a strict threshold and ends at B − 2 (GMP) or B − 1 (LTH); we keep exactly
the count, so the final mask has exactly B.

:func:`gmp_target` and :func:`lth_targets` are traceable float32 approximations of the same
schedules (±1e-3 guard, ``topk.schedule_round``), kept for the public one-model API and the
tests that show why the host counts are needed; a count can differ by one from the
reference's where its exact value lies within 1e-3 of an integer. The registered methods are
in :mod:`sparsejax.pruning.gmp` and :mod:`sparsejax.pruning.lth`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax.pruning import schedules
from sparsejax.pruning.topk import exponential_count, keep_top, restrict, schedule_round, weights_of

Array = jax.Array
Params = tuple
Masks = tuple

GMP_TOTAL_STEPS = schedules.GMP_TOTAL_STEPS
GMP_EVENTS = schedules.GMP_PRUNING_TIMES  # the cubic reaches B at event 199; events 200, 201 stay there
LTH_ROUNDS = schedules.LTH_ROUNDS


def gmp_interval(total_steps: int = GMP_TOTAL_STEPS) -> int:
    """Steps between pruning events: int(T / 200) (97 for the paper's 19,500); 0 if T < 200."""
    return int(total_steps / (GMP_EVENTS + 1.0))


def gmp_event_steps(total_steps: int = GMP_TOTAL_STEPS) -> np.ndarray:
    """Steps at whose start GMP prunes: 97k for every k >= 1 with 97k < T (201 events:
    97, 194, …, 19,497). See :func:`sparsejax.pruning.schedules.gmp_event_steps`."""
    return schedules.gmp_event_steps(total_steps)


def gmp_event_index(step, total_steps: int = GMP_TOTAL_STEPS) -> Array:
    """Event number k (1-based) if a pruning event happens at the start of 0-based `step`
    (step = interval·k, k >= 1, step < T), else 0. Traceable in `step`."""
    interval = max(gmp_interval(total_steps), 1)
    step = jnp.asarray(step, jnp.int32)
    k = step // interval
    is_event = (step % interval == 0) & (k >= 1) & (step < total_steps) & (gmp_interval(total_steps) >= 1)
    return jnp.where(is_event, k, 0).astype(jnp.int32)


def gmp_target(k, n_total, budget, n_events: int = GMP_EVENTS) -> Array:
    """float32 approximation (see the module docstring) of the remaining weights after event k:
    floor(B + (N − B)(1 − k/n_events)³), clipped to [B, N]; k = 0 gives N and k ≥ n_events
    gives exactly B. Traceable in k and B."""
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
    """float32 approximation (see the module docstring; the trainer uses
    ``schedules.lth_counts``) of the remaining weights after rounds 1..rounds−1:
    floor(N·(B/N)^(k/(rounds−1))), clipped to [B, N], the last exactly B. int32 array
    (rounds−1,); traceable in B."""
    return jnp.stack([exponential_count(n_total, budget, k, rounds - 1) for k in range(1, rounds)])
