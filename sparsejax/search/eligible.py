"""Eligible unstructured layer masks, EligibleMasks(d_in, d_out) (SPEC §4 phase 2, paper App. K).

A mask is a (d_out, d_in) 0/1 matrix in PyTorch layout (rows = output units). It is *eligible*
when (a) no row is zero, (b) no column is zero, (c) row counts are non-increasing top to bottom
and (d) adjacent rows with equal counts have non-increasing binary value (column 0 is the most
significant bit; equal rows are allowed). (c)+(d) pick one representative per orbit of row
permutations, so hidden units that merely swap places are not trained twice.

Canonical order (the index that names a mask and what "the first k masks" means):
  1. weight count n ascending (when all counts are concatenated);
  2. row-count tuples k_1 >= ... >= k_dout >= 1 with k_1 <= d_in and sum n, lexicographically
     ascending;
  3. within a tuple, the last row varies slowest and the first row fastest; every row runs over
     its k-subsets of column indices in ``itertools.combinations`` order (descending binary
     value); candidates violating (b) or (d) are skipped.

Implementation: per row-count tuple the rows split into runs of equal count; (d) makes a run's
combination indices non-decreasing, so each run is a multiset of subsets. The product over runs
is built with NumPy, (b) is one OR-reduction over row bit codes, and a lexsort on
(last row, ..., first row) gives the canonical order within each tuple. Everything is cached and
returned read-only.
"""
from __future__ import annotations

import functools
import itertools
from math import comb

import numpy as np

# Refuse shapes whose candidate count (an upper bound on the number of eligible masks) is beyond
# this: they would not fit in memory anyway and the search could never train them.
MAX_CANDIDATES = 100_000_000


def _check_shape(d_in: int, d_out: int) -> tuple[int, int]:
    """Validated (d_in, d_out) as Python ints."""
    for name, v in (("d_in", d_in), ("d_out", d_out)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {v!r}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if d_in > 62:
        raise ValueError(f"d_in must be <= 62 (rows are packed in int64 bit codes), got {d_in}")
    return int(d_in), int(d_out)


def weight_count_range(d_in: int, d_out: int) -> range:
    """The weight counts n that have eligible masks: max(d_in, d_out) .. d_in*d_out."""
    d_in, d_out = _check_shape(d_in, d_out)
    return range(max(d_in, d_out), d_in * d_out + 1)


def _check_n(d_in: int, d_out: int, n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"n must be an integer or None, got {n!r}")
    r = weight_count_range(d_in, d_out)
    if int(n) not in r:
        raise ValueError(f"n={n} out of range for a {d_in}->{d_out} layer: need "
                         f"{r.start} <= n <= {r.stop - 1}")
    return int(n)


def _check_size(d_in: int, d_out: int) -> None:
    """Guard against shapes whose enumeration cannot fit: the multisets of nonzero rows bound
    the number of candidates (and of eligible masks) from above."""
    bound = comb((1 << d_in) - 1 + d_out - 1, d_out)
    if bound > MAX_CANDIDATES:
        raise ValueError(f"a {d_in}->{d_out} layer has up to {bound:,} eligible masks; "
                         f"enumeration is limited to {MAX_CANDIDATES:,}")


def row_count_tuples(d_in: int, d_out: int, n: int) -> list[tuple[int, ...]]:
    """All (k_1 >= ... >= k_dout >= 1), k_1 <= d_in, sum n, in lexicographically ascending order."""
    out: list[tuple[int, ...]] = []
    # depth-first over (prefix, remaining sum, cap); children pushed in reverse so that the
    # smallest next part is expanded first (lexicographically ascending output, no recursion)
    stack: list[tuple[tuple[int, ...], int, int]] = [((), n, d_in)]
    while stack:
        prefix, remaining, cap = stack.pop()
        slots = d_out - len(prefix)
        if slots == 0:
            if remaining == 0:
                out.append(prefix)
            continue
        lo = -(-remaining // slots)  # this part is the largest of the rest: >= ceil(average)
        hi = min(cap, remaining - (slots - 1))
        for k in range(hi, lo - 1, -1):
            stack.append((prefix + (k,), remaining - k, k))
    return out


@functools.lru_cache(maxsize=None)
def _subset_codes(d_in: int, k: int) -> np.ndarray:
    """Bit codes (column 0 = most significant bit) of the k-subsets of range(d_in), in
    itertools.combinations order (which is descending code)."""
    codes = [sum(1 << (d_in - 1 - j) for j in c) for c in itertools.combinations(range(d_in), k)]
    arr = np.asarray(codes, np.int64)
    arr.setflags(write=False)
    return arr


@functools.lru_cache(maxsize=None)
def _nondecreasing_tuples(m: int, r: int) -> np.ndarray:
    """All r-tuples 0 <= a_1 <= ... <= a_r < m as an (C(m+r-1, r), r) int32 array."""
    flat = np.fromiter(itertools.chain.from_iterable(
        itertools.combinations_with_replacement(range(m), r)), np.int32)
    arr = flat.reshape(-1, r)
    arr.setflags(write=False)
    return arr


def _tuple_candidates(d_in: int, ks: tuple[int, ...]) -> np.ndarray:
    """Per-row combination indices (M, d_out) of every candidate with row counts `ks` that
    satisfies (d) by construction (runs of equal counts are non-decreasing in index)."""
    idx = np.zeros((1, 0), np.int32)
    for k, run in itertools.groupby(ks):
        r = len(list(run))
        block = _nondecreasing_tuples(comb(d_in, k), r)
        p, m = idx.shape[0], block.shape[0]
        idx = np.concatenate([np.repeat(idx, m, axis=0), np.tile(block, (p, 1))], axis=1)
    return idx


@functools.lru_cache(maxsize=None)
def _block_codes(d_in: int, d_out: int, n: int) -> np.ndarray:
    """Row bit codes (count, d_out) int64 of the eligible masks with n weights, canonical order."""
    full = (1 << d_in) - 1
    parts_codes = []
    for ks in row_count_tuples(d_in, d_out, n):  # already lexicographically ascending
        idx_MxR = _tuple_candidates(d_in, ks)
        codes_MxR = np.empty(idx_MxR.shape, np.int64)
        for r, k in enumerate(ks):
            codes_MxR[:, r] = _subset_codes(d_in, k)[idx_MxR[:, r]]
        keep = np.bitwise_or.reduce(codes_MxR, axis=1) == full  # (b) no zero column
        idx_MxR, codes_MxR = idx_MxR[keep], codes_MxR[keep]
        # canonical order within the tuple: last row slowest (lexsort's last key is primary)
        order = np.lexsort(idx_MxR.T)
        parts_codes.append(codes_MxR[order])
    codes = (np.concatenate(parts_codes, axis=0) if parts_codes
             else np.zeros((0, d_out), np.int64))
    codes.setflags(write=False)
    return codes


def codes_to_masks(codes_KxR: np.ndarray, d_in: int) -> np.ndarray:
    """(K, d_out) row bit codes -> (K, d_out, d_in) uint8 0/1 masks (column 0 = MSB)."""
    shifts = np.arange(d_in - 1, -1, -1, dtype=np.int64)
    return ((np.asarray(codes_KxR, np.int64)[..., None] >> shifts) & 1).astype(np.uint8)


def masks_to_codes(masks_KxRxC: np.ndarray) -> np.ndarray:
    """(K, d_out, d_in) 0/1 masks -> (K, d_out) int64 row bit codes (column 0 = MSB)."""
    m = np.asarray(masks_KxRxC) != 0
    d_in = m.shape[-1]
    weights = np.left_shift(np.int64(1), np.arange(d_in - 1, -1, -1, dtype=np.int64))
    return (m.astype(np.int64) * weights).sum(axis=-1)


@functools.lru_cache(maxsize=None)
def _eligible_block(d_in: int, d_out: int, n: int) -> np.ndarray:
    masks = codes_to_masks(_block_codes(d_in, d_out, n), d_in)
    masks.setflags(write=False)
    return masks


@functools.lru_cache(maxsize=None)
def _eligible_all(d_in: int, d_out: int) -> np.ndarray:
    blocks = [_eligible_block(d_in, d_out, n) for n in weight_count_range(d_in, d_out)]
    masks = np.concatenate(blocks, axis=0)
    masks.setflags(write=False)
    return masks


def eligible_masks(d_in: int, d_out: int, n: int | None = None) -> np.ndarray:
    """Every eligible (d_out, d_in) mask with n weights, or for all n ascending when n is None.

    Returns a cached read-only (count, d_out, d_in) uint8 array in canonical order (module
    docstring); copy it before writing.
    """
    d_in, d_out = _check_shape(d_in, d_out)
    _check_size(d_in, d_out)
    if n is None:
        return _eligible_all(d_in, d_out)
    return _eligible_block(d_in, d_out, _check_n(d_in, d_out, n))


def eligible_codes(d_in: int, d_out: int, n: int | None = None) -> np.ndarray:
    """Same masks as :func:`eligible_masks` as (count, d_out) int64 row bit codes (read-only)."""
    d_in, d_out = _check_shape(d_in, d_out)
    _check_size(d_in, d_out)
    if n is None:
        return _eligible_all_codes(d_in, d_out)
    return _block_codes(d_in, d_out, _check_n(d_in, d_out, n))


@functools.lru_cache(maxsize=None)
def _eligible_all_codes(d_in: int, d_out: int) -> np.ndarray:
    codes = np.concatenate([_block_codes(d_in, d_out, n) for n in weight_count_range(d_in, d_out)])
    codes.setflags(write=False)
    return codes


def eligible_counts(d_in: int, d_out: int) -> dict[int, int]:
    """{n: number of eligible masks with n weights} for every n in max(d_in,d_out)..d_in*d_out."""
    d_in, d_out = _check_shape(d_in, d_out)
    _check_size(d_in, d_out)
    return {n: int(_block_codes(d_in, d_out, n).shape[0]) for n in weight_count_range(d_in, d_out)}
