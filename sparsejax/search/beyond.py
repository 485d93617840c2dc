"""Search spaces beyond the paper's phase 2 (issue #15): several configurations, sampled levels,
several inits and hyperparameters per promising mask.

The paper trains one configuration per target (the sparsest structured one above ρ), one init
per mask, and for (7,3,3) only the first 3 W2 masks of each W2 count. Here:

* :func:`structures_near`: every (d1, d2, d3) whose structured nnz is at most the base's + k;
* :func:`sample_level`: a uniform sample of the mask indices of one nnz level of a
  :class:`~sparsejax.search.product.MaskSpace`, without replacement, deterministic from a seed,
  and *nested*: the first k of a sample of k' > k are the sample of k, so a bigger budget extends
  a search instead of replacing it (the stored runs are reused);
* :func:`mask_configs`: the run configs of sampled masks × lrs × schedules × seeds (the ``seed``
  field changes the run id and so the init and data order).
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from sparsejax import mlp
from sparsejax.search.product import MaskSpace


def structures_near(base: Sequence[int], slack: int, width: int = 16, min_units: int = 1) -> list[tuple[int, int, int]]:
    """All (d1, d2, d3) with every d in [min_units, width] and structured nnz <= that of `base`
    + `slack`, ascending structured nnz (then lexicographic)."""
    bound = mlp.structured_nnz(tuple(base)) + int(slack)
    out = [(a, b, c) for a in range(min_units, width + 1) for b in range(min_units, width + 1)
           for c in range(min_units, width + 1) if mlp.structured_nnz((a, b, c)) <= bound]
    return sorted(out, key=lambda t: (mlp.structured_nnz(t), t))


def _seed_words(*parts: Any) -> list[int]:
    """A numpy seed sequence entropy from arbitrary parts (stable across processes)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def sample_level(space: MaskSpace, nnz: int, k: int, seed: int) -> np.ndarray:
    """Up to `k` distinct global mask indices of the level `nnz` of `space`, uniformly without
    replacement, in draw order; the whole level (ascending) when k >= its size.

    Draws are a stream of uniform integers over the level from a generator seeded by (seed,
    configuration, subset options, nnz); the first occurrence of each index is kept. So the
    sample is deterministic and nested in k. Costs O(k) memory (never the level's size)."""
    lv = space.nnz_levels()
    hit = np.flatnonzero(lv.nnz == int(nnz))
    if len(hit) == 0:
        raise ValueError(f"nnz: {space!r} has no level {nnz}; levels: {lv.nnz.tolist()}")
    count, start = int(lv.count[hit[0]]), int(lv.start[hit[0]])
    k = int(k)
    if k < 0:
        raise ValueError(f"k: must be >= 0, got {k}")
    if k >= count:
        return np.arange(start, start + count, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(_seed_words(int(seed), space.config, space.max_weight_sum,
                                                          space.first_k_w2, int(nnz))))
    seen: dict[int, None] = {}
    while len(seen) < k:
        for v in rng.integers(0, count, size=max(64, 2 * (k - len(seen))), dtype=np.int64).tolist():
            if v not in seen:
                seen[v] = None
                if len(seen) == k:
                    break
    return start + np.fromiter(seen, np.int64, count=k)


def mask_configs(structure: Sequence[int], indices: Sequence[int], lrs: Sequence[float],
                 schedules: Sequence[str], seeds: Sequence[int], width: int = 16, epochs: int = 50,
                 mask_space: dict | None = None, **fixed: Any) -> list[dict]:
    """Phase-2 run configs: every index × lr × schedule × seed (seed slowest, then index)."""
    return [dict(method="search", widths=(width,) * 3, structure=tuple(int(d) for d in structure),
                 mask_index=int(i), mask_space=mask_space, lr=float(lr), schedule=sch, seed=int(sd),
                 epochs=int(epochs), **fixed)
            for sd in seeds for i in indices for lr in lrs for sch in schedules]
