"""Exact-budget selection shared by every pruning method (SPEC §5: "we hit the budget exactly").

Scores are per-layer arrays in our (in, out) layout. Every global ranking uses the reference's
PyTorch flat order — layers in order, each (out, in) row-major — so ties are broken the same way
whatever layout we use internally: among equal scores the lower PyTorch flat index wins. NaN
scores rank below everything (below -inf too). The budget may be a traced int32 scalar, so one
compiled program serves every budget; the ranking is a stable sort, never ``lax.top_k`` with a
static k.

The trainer's schedule counts come from :mod:`sparsejax.pruning.schedules` (host float64, the
reference's exact expressions). :func:`schedule_round` and :func:`exponential_count` are
traceable float32 approximations of them, kept for ``analysis.flops``: the reference's rounding
— ``int()`` (floor) for GMP, Iter SNIP and FORCE, "prune int((1−s)·N)" (so keep the ceiling)
for SynFlow — clipped to [B, N], the last step exactly B, with a ±1e-3 guard that keeps values
that are integers in exact arithmetic (e.g. 560·(35/560)^(1/4) = 280) from flipping by one;
it moves real counts by one where the exact value lies within 1e-3 of an integer (issue #10).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


def weights_of(tree) -> tuple[Array, ...]:
    """The weight matrices of a network, a full mask pytree or a plain sequence of matrices."""
    return tuple(layer["w"] if isinstance(layer, dict) else layer for layer in tree)


def with_weights(params, ws: Sequence[Array]) -> tuple:
    """`params` with its weight matrices replaced by `ws` (biases untouched)."""
    return tuple({**layer, "w": w} for layer, w in zip(params, ws))


def flatten_torch_order(tree) -> Array:
    """One flat vector of all weight entries in PyTorch order: layers in order, each (out, in)
    row-major (our (in, out) arrays are transposed first). Accepts a sequence of (I, O) arrays
    or a network / mask pytree (weights only)."""
    return jnp.concatenate([jnp.reshape(jnp.swapaxes(w, -1, -2), (-1,)) for w in weights_of(tree)])


def unflatten_torch_order(flat_N: Array, shapes: Sequence[tuple[int, int]]) -> tuple[Array, ...]:
    """Inverse of :func:`flatten_torch_order`: per-layer (I, O) arrays from a PyTorch-order vector."""
    out, start = [], 0
    for fan_in, fan_out in shapes:
        n = fan_in * fan_out
        out.append(jnp.reshape(flat_N[start:start + n], (fan_out, fan_in)).T)
        start += n
    return tuple(out)


def descending_rank(scores_N: Array) -> Array:
    """Rank (0 = best) of every entry of a 1-D score vector: higher score first, NaN last, equal
    scores by ascending index (stable sort; -0.0 and 0.0 compare equal)."""
    n = scores_N.shape[0]
    idx_N = jnp.arange(n, dtype=jnp.int32)
    _, order_N = lax.sort((-scores_N, idx_N), num_keys=1, is_stable=True)
    return jnp.zeros((n,), jnp.int32).at[order_N].set(idx_N)


def keep_top_flat(scores_N: Array, budget) -> Array:
    """0/1 float32 vector keeping exactly min(max(budget, 0), N) entries with the highest scores."""
    return (descending_rank(scores_N) < jnp.asarray(budget, jnp.int32)).astype(jnp.float32)


def keep_top(scores: Sequence[Array], budget) -> tuple[Array, ...]:
    """Weight masks (0/1 float32, our (I, O) layout) keeping exactly `budget` entries with the
    highest scores over all layers jointly; ties by PyTorch flat index (lower wins), NaN lowest."""
    scores = weights_of(scores)
    shapes = [tuple(s.shape) for s in scores]
    return unflatten_torch_order(keep_top_flat(flatten_torch_order(scores), budget), shapes)


def restrict(score: Array, eligible: Array) -> Array:
    """Scores for a ranking among `eligible` entries only: ineligible entries become NaN (rank
    below everything), eligible NaN scores become -inf (lowest among the eligible). With this,
    keeping k ≤ #eligible entries never picks an ineligible one."""
    return jnp.where(eligible, jnp.where(jnp.isnan(score), -jnp.inf, score), jnp.nan)


ROUNDINGS = ("floor", "ceil", "nearest")
_GUARD = 1e-3


def schedule_round(x: Array, rounding: str = "floor") -> Array:
    """A real count as int32: ``floor`` (Python ``int()`` of a positive value), ``ceil`` or
    ``nearest`` (halves up), with the ±1e-3 float32 guard described in the module docstring."""
    x = jnp.asarray(x, jnp.float32)
    if rounding == "floor":
        return jnp.floor(x + _GUARD).astype(jnp.int32)
    if rounding == "ceil":
        return jnp.ceil(x - _GUARD).astype(jnp.int32)
    if rounding == "nearest":
        return jnp.floor(x + 0.5).astype(jnp.int32)
    raise ValueError(f"unknown rounding {rounding!r}; allowed: {', '.join(ROUNDINGS)}")


def exponential_count(n_total: int, budget, step, n_steps: int, rounding: str = "floor") -> Array:
    """Entries kept after step `step` (1..n_steps) of an exponential schedule from N to B:
    N·(B/N)^(step/n_steps) rounded by `rounding`, clipped to [B, N]; step ≥ n_steps gives
    exactly B. Traceable in `budget` and `step`."""
    b = jnp.asarray(budget, jnp.int32)
    frac = jnp.asarray(step, jnp.float32) / n_steps
    ratio = jnp.maximum(b.astype(jnp.float32), 1e-30) / n_total
    x = n_total * jnp.exp(frac * jnp.log(ratio))
    count = jnp.clip(schedule_round(x, rounding), b, n_total)
    return jnp.where(jnp.asarray(step) >= n_steps, b, count).astype(jnp.int32)
