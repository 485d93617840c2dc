"""Model-level search spaces (SPEC §4): phase-1 configurations and the phase-2 mask product.

Phase 2 trains every product W1 x W2 x W3 of eligible layer masks for a configuration
(d1, d2, d3): layers 2->d1, d1->d2, d2->d3; the classifier d3->1 keeps all d3 inputs (one mask).
The full (7,3,3) product has 266,004,066 masks, so :class:`MaskSpace` never materialises it: it
names every product mask by a global index in a fixed order and decodes/encodes indices with
per-layer lookup tables and prefix sums over blocks.

Global order (deterministic, ascending model nnz):
  1. total weight count w1 + w2 + w3 ascending (model nnz = total + d3 + d1 + d2 + d3 + 1);
  2. within a total, w1 ascending, then w2 ascending (w3 is then determined);
  3. within the (w1, w2, w3) block, a mixed-radix index over the layers' canonical lists of that
     weight count, W1 fastest: local = i1 + c1 * (i2 + c2 * i3).
The Appendix D subsets cap w1 + w2 + w3 and keep only the first k W2 masks (canonical order) of
every W2 weight count; the order above is then restricted to those masks.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Sequence

import numpy as np

from sparsejax.mlp import INPUT_DIM, structured_nnz
from sparsejax.search.eligible import eligible_codes, eligible_masks, masks_to_codes, weight_count_range


class NnzLevels(NamedTuple):
    """Distinct model nnz values of a space (ascending), how many masks each has and the global
    index of the first one (masks with nnz[i] are start[i] .. start[i] + count[i] - 1)."""

    nnz: np.ndarray
    count: np.ndarray
    start: np.ndarray


class Blocks(NamedTuple):
    """One row per (w1, w2, w3) block in global order: its weight counts, size and start index."""

    w1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray
    size: np.ndarray
    start: np.ndarray


class _Layer:
    """Lookup tables for one layer's eligible masks: n-block offsets and a sorted code table."""

    def __init__(self, d_in: int, d_out: int):
        self.d_in, self.d_out = d_in, d_out
        self.ns = np.asarray(list(weight_count_range(d_in, d_out)), np.int64)
        self.masks = eligible_masks(d_in, d_out)  # (total, d_out, d_in) read-only
        counts = [eligible_masks(d_in, d_out, int(n)).shape[0] for n in self.ns]
        self.counts = np.asarray(counts, np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        codes = eligible_codes(d_in, d_out)
        self._packable = d_in * d_out <= 62
        if self._packable:
            keys = self._pack(codes)
            self._order = np.argsort(keys, kind="stable")
            self._sorted_keys = keys[self._order]
        else:
            self._lookup = {row.tobytes(): i for i, row in enumerate(codes)}

    def _pack(self, codes_KxR: np.ndarray) -> np.ndarray:
        shifts = np.arange(self.d_out, dtype=np.int64) * self.d_in
        return (np.asarray(codes_KxR, np.int64) << shifts).sum(axis=-1)

    def count_of(self, n: int) -> int:
        i = n - int(self.ns[0])
        return int(self.counts[i]) if 0 <= i < len(self.ns) else 0

    def lookup(self, masks_KxRxC: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, index within the n-block, found) for every mask; found is False for masks that
        are not eligible."""
        codes = masks_to_codes(masks_KxRxC)
        if self._packable:
            keys = self._pack(codes)
            pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
            found = self._sorted_keys[pos] == keys
            gidx = self._order[pos]
        else:
            hits = [self._lookup.get(row.tobytes(), -1) for row in np.ascontiguousarray(codes)]
            gidx = np.asarray(hits, np.int64).reshape(codes.shape[:-1])
            found = gidx >= 0
            gidx = np.where(found, gidx, 0)
        n = (np.asarray(masks_KxRxC) != 0).sum(axis=(-2, -1)).astype(np.int64)
        local = gidx - self.offsets[np.clip(n - self.ns[0], 0, len(self.ns) - 1)]
        return n, local, found


class MaskSpace:
    """The phase-2 product space of a configuration (d1, d2, d3), optionally restricted as in the
    paper's Appendix D (``max_weight_sum`` caps w1 + w2 + w3; ``first_k_w2`` keeps the first k W2
    masks per W2 weight count). Masks are named by a global index in ascending model nnz order
    (module docstring); nothing is materialised beyond the three layer tables.
    """

    def __init__(self, config: Sequence[int], max_weight_sum: int | None = None,
                 first_k_w2: int | None = None):
        cfg = tuple(int(c) for c in config)
        if len(cfg) != 3 or any(c < 1 for c in cfg) or any(int(c) != c for c in config):
            raise ValueError(f"config must be three integers >= 1, got {tuple(config)}")
        if max_weight_sum is not None and int(max_weight_sum) < 0:
            raise ValueError(f"max_weight_sum must be >= 0 or None, got {max_weight_sum}")
        if first_k_w2 is not None and int(first_k_w2) < 1:
            raise ValueError(f"first_k_w2 must be >= 1 or None, got {first_k_w2}")
        self.config = cfg
        self.max_weight_sum = None if max_weight_sum is None else int(max_weight_sum)
        self.first_k_w2 = None if first_k_w2 is None else int(first_k_w2)
        d1, d2, d3 = cfg
        self.layers = (_Layer(INPUT_DIM, d1), _Layer(d1, d2), _Layer(d2, d3))
        # nnz beyond the three weight matrices: classifier weights plus every bias
        self.nnz_offset = d3 + (d1 + d2 + d3 + 1)
        self._build_blocks()

    # -- block table ---------------------------------------------------------------------------

    def _w2_count(self, n2: int) -> int:
        c = self.layers[1].count_of(n2)
        return c if self.first_k_w2 is None else min(c, self.first_k_w2)

    def _build_blocks(self) -> None:
        l1, l2, l3 = self.layers
        rows = []
        lo = int(l1.ns[0] + l2.ns[0] + l3.ns[0])
        hi = int(l1.ns[-1] + l2.ns[-1] + l3.ns[-1])
        if self.max_weight_sum is not None:
            hi = min(hi, self.max_weight_sum)
        for total in range(lo, hi + 1):
            for n1 in l1.ns:
                for n2 in l2.ns:
                    n3 = total - int(n1) - int(n2)
                    size = l1.count_of(int(n1)) * self._w2_count(int(n2)) * l3.count_of(n3)
                    if size > 0:
                        rows.append((int(n1), int(n2), n3, size))
        arr = np.asarray(rows, np.int64).reshape(-1, 4)
        sizes = arr[:, 3]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._blocks = Blocks(arr[:, 0], arr[:, 1], arr[:, 2], sizes, starts)
        self._size = int(sizes.sum())
        self._c1 = np.asarray([l1.count_of(int(n)) for n in arr[:, 0]], np.int64)
        self._c2 = np.asarray([self._w2_count(int(n)) for n in arr[:, 1]], np.int64)
        # (n1, n2, n3) -> block id, -1 where the block is empty or excluded
        self._block_id = np.full((len(l1.ns), len(l2.ns), len(l3.ns)), -1, np.int64)
        self._block_id[arr[:, 0] - l1.ns[0], arr[:, 1] - l2.ns[0], arr[:, 2] - l3.ns[0]] = \
            np.arange(len(arr))

    def blocks(self) -> Blocks:
        """The (w1, w2, w3) blocks in global order with sizes and start indices."""
        return self._blocks

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (f"MaskSpace(config={self.config}, max_weight_sum={self.max_weight_sum}, "
                f"first_k_w2={self.first_k_w2}, size={self._size:,})")

    def nnz_levels(self) -> NnzLevels:
        """Sorted distinct model nnz with their counts and start offsets."""
        b = self._blocks
        nnz_blocks = b.w1 + b.w2 + b.w3 + self.nnz_offset
        nnz, first = np.unique(nnz_blocks, return_index=True)
        count = np.add.reduceat(b.size, first) if len(first) else np.zeros(0, np.int64)
        return NnzLevels(nnz.astype(np.int64), count.astype(np.int64), b.start[first].astype(np.int64))

    # -- random access -------------------------------------------------------------------------

    def _check_idx(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self._size):
            raise ValueError(f"index out of range [0, {self._size})")
        return idx

    def _decompose(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Block id and per-layer index within the n-block for every global index."""
        blk = np.searchsorted(self._blocks.start, idx, side="right") - 1
        local = idx - self._blocks.start[blk]
        c1, c2 = self._c1[blk], self._c2[blk]
        i1 = local % c1
        rest = local // c1
        return blk, i1, rest % c2, rest // c2

    def weight_counts(self, idx: np.ndarray) -> np.ndarray:
        """(K, 3) weight counts (w1, w2, w3) of the masks at the given global indices."""
        idx = self._check_idx(idx).reshape(-1)
        blk = np.searchsorted(self._blocks.start, idx, side="right") - 1
        b = self._blocks
        return np.stack([b.w1[blk], b.w2[blk], b.w3[blk]], axis=-1)

    def model_nnz(self, idx: np.ndarray) -> np.ndarray:
        """Model nnz (weights + classifier weights + all biases) of the masks at `idx`."""
        idx = self._check_idx(idx)
        return self.weight_counts(idx).sum(axis=-1).reshape(idx.shape) + self.nnz_offset

    def index_to_masks(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks at the global indices `idx` (K,): m1 (K, d1, 2), m2 (K, d2, d1), m3 (K, d3, d2),
        uint8 0/1 in PyTorch (out, in) layout."""
        idx = self._check_idx(idx).reshape(-1)
        blk, i1, i2, i3 = self._decompose(idx)
        b = self._blocks
        out = []
        for layer, n, i in zip(self.layers, (b.w1, b.w2, b.w3), (i1, i2, i3)):
            gidx = layer.offsets[n[blk] - layer.ns[0]] + i
            out.append(layer.masks[gidx])
        return tuple(out)

    def masks_to_index(self, m1: np.ndarray, m2: np.ndarray, m3: np.ndarray,
                       strict: bool = True) -> np.ndarray:
        """Global indices (K,) of the product masks (m1[k], m2[k], m3[k]); the inverse of
        :meth:`index_to_masks`. Raises ValueError for a mask outside the space (or returns -1
        there when ``strict`` is False)."""
        d1, d2, d3 = self.config
        ms = []
        for name, m, shape in (("m1", m1, (d1, INPUT_DIM)), ("m2", m2, (d2, d1)), ("m3", m3, (d3, d2))):
            m = np.asarray(m)
            if m.ndim == 2:
                m = m[None]
            if m.ndim != 3 or m.shape[1:] != shape:
                raise ValueError(f"{name} must have shape (K, {shape[0]}, {shape[1]}), got {m.shape}")
            ms.append(m)
        if not ms[0].shape[0] == ms[1].shape[0] == ms[2].shape[0]:
            raise ValueError(f"m1, m2, m3 disagree on K: {[m.shape[0] for m in ms]}")
        res = [layer.lookup(m) for layer, m in zip(self.layers, ms)]
        (n1, i1, f1), (n2, i2, f2), (n3, i3, f3) = res
        ok = f1 & f2 & f3
        if self.first_k_w2 is not None:
            ok &= i2 < self.first_k_w2
        l1, l2, l3 = self.layers
        j1 = np.clip(n1 - l1.ns[0], 0, len(l1.ns) - 1)
        j2 = np.clip(n2 - l2.ns[0], 0, len(l2.ns) - 1)
        j3 = np.clip(n3 - l3.ns[0], 0, len(l3.ns) - 1)
        blk = self._block_id[j1, j2, j3]
        ok &= blk >= 0  # also excludes totals above max_weight_sum
        blk = np.where(ok, blk, 0)
        idx = self._blocks.start[blk] + i1 + self._c1[blk] * (i2 + self._c2[blk] * i3) \
            if len(self._blocks.start) else np.zeros(ok.shape, np.int64)
        if not ok.all():
            if strict:
                bad = int(np.flatnonzero(~ok)[0])
                raise ValueError(f"mask {bad} is not in {self!r} (weight counts "
                                 f"{int(n1[bad])}, {int(n2[bad])}, {int(n3[bad])}; eligible per layer "
                                 f"{bool(f1[bad])}, {bool(f2[bad])}, {bool(f3[bad])})")
            idx = np.where(ok, idx, -1)
        return idx.astype(np.int64)

    def iter_batches(self, batch_size: int, start: int = 0, stop: int | None = None
                     ) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Yield (indices (B,), (m1, m2, m3)) for consecutive global indices start .. stop-1 in
        order; the last batch may be shorter."""
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        stop = self._size if stop is None else int(stop)
        if not 0 <= int(start) <= stop <= self._size:
            raise ValueError(f"need 0 <= start <= stop <= {self._size}, got start={start}, stop={stop}")
        for s in range(int(start), stop, int(batch_size)):
            idx = np.arange(s, min(s + int(batch_size), stop), dtype=np.int64)
            yield idx, self.index_to_masks(idx)

    def classifier_mask(self) -> np.ndarray:
        """The classifier's only mask: all d3 inputs kept, shape (1, d3) uint8."""
        return np.ones((1, self.config[2]), np.uint8)


# ---------------------------------------------------------------------------------------------
# phase 1


def phase1_configs(D: int) -> np.ndarray:
    """All (d1, d2, d3) in {1..D}^3 as a (D^3, 3) int64 array in lexicographic order."""
    if isinstance(D, bool) or int(D) != D or D < 1:
        raise ValueError(f"D must be an integer >= 1, got {D!r}")
    D = int(D)
    grid = np.indices((D, D, D)).reshape(3, -1).T + 1
    return grid.astype(np.int64)


def select_sparsest(configs: np.ndarray | Sequence[Sequence[int]], accuracies: np.ndarray | Sequence,
                    target: float) -> tuple[int, int, int] | None:
    """The configuration with the fewest structured nnz whose best accuracy exceeds `target`
    (strictly, as Algorithm 1 does), ties broken by lexicographic order; None if none passes.

    `accuracies` is (P,) or (P, R) (R runs per row, e.g. learning rates x schedules); rows of
    `configs` may repeat (one row per run). Each configuration is judged by its maximum over all
    runs; NaN runs are ignored. Accuracies and target must use the same scale.
    """
    cfg = np.asarray(configs, np.int64)
    if cfg.ndim != 2 or cfg.shape[1] != 3:
        raise ValueError(f"configs must have shape (P, 3), got {cfg.shape}")
    acc = np.asarray(accuracies, np.float64)
    if acc.ndim == 1:
        acc = acc[:, None]
    if acc.ndim != 2 or acc.shape[0] != cfg.shape[0]:
        raise ValueError(f"accuracies must have shape (P,) or (P, R) with P={cfg.shape[0]}, got "
                         f"{np.shape(accuracies)}")
    if cfg.shape[0] == 0:
        return None
    best_P = np.max(np.where(np.isnan(acc), -np.inf, acc), axis=1)
    uniq, inv = np.unique(cfg, axis=0, return_inverse=True)  # lexicographically sorted rows
    best_U = np.full(len(uniq), -np.inf)
    np.maximum.at(best_U, inv.reshape(-1), best_P)
    passing = uniq[best_U > target]
    if len(passing) == 0:
        return None
    nnz = np.asarray([structured_nnz(c) for c in passing])
    # np.unique rows are sorted lexicographically, so argmin's first hit is the tie-break
    return tuple(int(v) for v in passing[int(np.argmin(nnz))])
