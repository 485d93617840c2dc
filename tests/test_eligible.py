"""Eligible layer masks, the phase-2 product space and phase-1 selection (SPEC §4)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from sparsejax.mlp import structured_nnz
from sparsejax.search.eligible import eligible_counts, eligible_masks, row_count_tuples
from sparsejax.search.product import MaskSpace, phase1_configs, select_sparsest

# SPEC §4 table: (d_in, d_out) -> {n: count}
SPEC_COUNTS = {
    (2, 3): {3: 2, 4: 3, 5: 2, 6: 1},
    (3, 3): {3: 1, 4: 9, 5: 18, 6: 16, 7: 9, 8: 3, 9: 1},
    (2, 7): {7: 6, 8: 7, 9: 6, 10: 5, 11: 4, 12: 3, 13: 2, 14: 1},
    (7, 3): {7: 301, 8: 2331, 9: 8183, 10: 17619, 11: 26306, 12: 29008, 13: 24458, 14: 16058,
             15: 8274, 16: 3346, 17: 1057, 18: 259, 19: 49, 20: 7, 21: 1},
    (2, 6): {6: 5, 7: 6, 8: 5, 9: 4, 10: 3, 11: 2, 12: 1},
    (6, 3): {6: 90, 7: 636, 8: 1956, 9: 3590, 10: 4470, 11: 4026, 12: 2711, 13: 1386, 14: 540,
             15: 160, 16: 36, 17: 6, 18: 1},
    (3, 2): {3: 3, 4: 6, 5: 3, 6: 1},
    (2, 2): {2: 1, 3: 2, 4: 1},
    (3, 1): {3: 1},
    (2, 1): {2: 1},
    (7, 1): {7: 1},
}
SPEC_TOTALS = {(7, 3): 137_257, (6, 3): 19_608, (3, 3): 57, (2, 7): 34, (2, 3): 8}


# ---------------------------------------------------------------------------------------------
# independent brute force: every 0/1 matrix, filtered by (a)-(d), sorted by a canonical key


def _binary_value(row: tuple[int, ...]) -> int:
    return int("".join(str(v) for v in row), 2)  # column 0 is the most significant bit


def _is_eligible(rows: tuple[tuple[int, ...], ...]) -> bool:
    counts = [sum(r) for r in rows]
    if min(counts) == 0:  # (a)
        return False
    if any(sum(col) == 0 for col in zip(*rows)):  # (b)
        return False
    for a, b, ca, cb in zip(rows, rows[1:], counts, counts[1:]):
        if ca < cb:  # (c)
            return False
        if ca == cb and _binary_value(a) < _binary_value(b):  # (d)
            return False
    return True


def _canonical_key(rows: tuple[tuple[int, ...], ...]):
    counts = tuple(sum(r) for r in rows)
    support = [tuple(j for j, v in enumerate(r) if v) for r in rows]
    # n, then row-count tuple, then rows from last (slowest) to first (fastest), each by the
    # lexicographic order of its column-index tuple (itertools.combinations order)
    return (sum(counts), counts, tuple(reversed(support)))


def _brute_force(d_in: int, d_out: int) -> np.ndarray:
    all_rows = list(itertools.product((0, 1), repeat=d_in))
    found = [m for m in itertools.product(all_rows, repeat=d_out) if _is_eligible(m)]
    found.sort(key=_canonical_key)
    return np.asarray(found, np.uint8).reshape(-1, d_out, d_in)


@pytest.mark.parametrize("shape", [(2, 3), (3, 3), (3, 2), (2, 2), (2, 4), (4, 2), (1, 3), (3, 1),
                                   (3, 4), (4, 3), (1, 1)])
def test_matches_brute_force_including_order(shape):
    d_in, d_out = shape
    expected = _brute_force(d_in, d_out)
    got = eligible_masks(d_in, d_out)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # per-n blocks are the consecutive slices of the concatenation
    start = 0
    for n, c in eligible_counts(d_in, d_out).items():
        np.testing.assert_array_equal(eligible_masks(d_in, d_out, n), expected[start:start + c])
        start += c
    assert start == len(expected)


def test_handwritten_order_3x3_n4():
    # tuple (2,1,1): the last row varies slowest, so the first mask has rows 2 and 3 = 100
    got = eligible_masks(3, 3, 4)
    assert got.shape == (9, 3, 3)
    np.testing.assert_array_equal(got[0], [[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(got[1], [[1, 0, 1], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(got[2], [[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(got[-1], [[1, 1, 0], [0, 0, 1], [0, 0, 1]])


@pytest.mark.parametrize("shape", sorted(SPEC_COUNTS))
def test_counts_match_spec(shape):
    counts = eligible_counts(*shape)
    assert counts == SPEC_COUNTS[shape]
    if shape in SPEC_TOTALS:
        assert sum(counts.values()) == SPEC_TOTALS[shape]
    assert len(eligible_masks(*shape)) == sum(counts.values())


@pytest.mark.parametrize("shape", [(2, 3), (3, 3), (2, 7), (7, 3), (2, 6), (6, 3), (3, 2), (2, 2)])
def test_properties_of_every_mask(shape):
    d_in, d_out = shape
    m = eligible_masks(d_in, d_out).astype(np.int64)
    assert set(np.unique(m)) <= {0, 1}
    rows = m.sum(axis=2)
    assert (rows >= 1).all()  # (a)
    assert (m.sum(axis=1) >= 1).all()  # (b)
    assert (np.diff(rows, axis=1) <= 0).all()  # (c)
    value = (m * (1 << np.arange(d_in - 1, -1, -1))).sum(axis=2)
    equal = rows[:, :-1] == rows[:, 1:]
    assert (value[:, :-1][equal] >= value[:, 1:][equal]).all()  # (d)
    n = m.sum(axis=(1, 2))
    assert (np.diff(n) >= 0).all()  # ascending n
    assert len(np.unique(value, axis=0)) == len(m)  # no duplicates


def test_canonical_order_7x3_blocks():
    # within each n-block: row-count tuples ascending, then last row slowest, first fastest;
    # checked with rank keys built from itertools.combinations independently
    d_in, d_out = 7, 3
    rank = {k: {c: i for i, c in enumerate(itertools.combinations(range(d_in), k))}
            for k in range(1, d_in + 1)}
    for n in (7, 12, 19):
        m = eligible_masks(d_in, d_out, n)
        counts = m.sum(axis=2)
        tuples = row_count_tuples(d_in, d_out, n)
        tuple_rank = {t: i for i, t in enumerate(tuples)}
        assert tuples == sorted(tuples)
        keys = []
        for mask, ks in zip(m, counts):
            idx = [rank[int(k)][tuple(np.flatnonzero(r))] for r, k in zip(mask, ks)]
            keys.append((tuple_rank[tuple(int(k) for k in ks)], *reversed(idx)))
        assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_cached_and_read_only():
    a = eligible_masks(7, 3)
    assert a is eligible_masks(7, 3)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0, 0] = 1


@pytest.mark.parametrize("args", [(0, 3), (3, 0), (-1, 2), (2.5, 3), (3, 3, 2), (3, 3, 10), (2, 3, 7)])
def test_invalid_inputs(args):
    with pytest.raises(ValueError):
        eligible_masks(*args)


def test_too_large_shape_refused():
    with pytest.raises(ValueError, match="limited"):
        eligible_counts(16, 16)


# ---------------------------------------------------------------------------------------------
# product space

SPACE_SIZES = [
    ((3, 3, 3), {}, 25_992),
    ((7, 3, 3), {}, 266_004_066),
    ((6, 3, 2), {}, 6_627_504),
    ((3, 2, 2), {}, 416),
    ((7, 3, 3), dict(max_weight_sum=32, first_k_w2=3), 63_208),
    ((6, 3, 2), dict(max_weight_sum=30, first_k_w2=6), 23_528),
]


@pytest.mark.parametrize("config,kw,size", SPACE_SIZES)
def test_space_sizes_and_levels(config, kw, size):
    space = MaskSpace(config, **kw)
    assert len(space) == size
    levels = space.nnz_levels()
    assert levels.count.sum() == size
    assert (np.diff(levels.nnz) > 0).all()
    np.testing.assert_array_equal(levels.start, np.concatenate([[0], np.cumsum(levels.count)[:-1]]))
    # nnz at the first and last index of every level
    np.testing.assert_array_equal(space.model_nnz(levels.start), levels.nnz)
    np.testing.assert_array_equal(space.model_nnz(levels.start + levels.count - 1), levels.nnz)
    d1, d2, d3 = config
    # the sparsest mask: minimal weight counts of every layer
    lo = max(2, d1) + max(d1, d2) + max(d2, d3) + d3 + d1 + d2 + d3 + 1
    assert levels.nnz[0] == lo
    if "max_weight_sum" in kw:
        assert levels.nnz[-1] <= kw["max_weight_sum"] + d3 + d1 + d2 + d3 + 1
    else:
        assert levels.nnz[-1] == structured_nnz(config)


def test_paper_subset_nnz_caps():
    assert MaskSpace((7, 3, 3), 32, 3).nnz_levels().nnz[-1] == 49


def _weight_counts(ms):
    return np.stack([m.reshape(len(m), -1).sum(axis=1) for m in ms], axis=1)


def test_full_333_exhaustive_order_and_roundtrip():
    space = MaskSpace((3, 3, 3))
    idx = np.arange(len(space))
    m1, m2, m3 = space.index_to_masks(idx)
    assert m1.shape == (25_992, 3, 2) and m2.shape == (25_992, 3, 3) and m3.shape == (25_992, 3, 3)
    w = _weight_counts((m1, m2, m3))
    nnz = w.sum(axis=1) + 3 + (3 + 3 + 3 + 1)
    np.testing.assert_array_equal(space.model_nnz(idx), nnz)
    assert (np.diff(nnz) >= 0).all()
    # every product mask exactly once
    flat = np.concatenate([m1.reshape(len(idx), -1), m2.reshape(len(idx), -1), m3.reshape(len(idx), -1)], 1)
    assert len(np.unique(flat, axis=0)) == len(space)
    np.testing.assert_array_equal(space.masks_to_index(m1, m2, m3), idx)


def test_documented_order_322():
    # global order: (w1+w2+w3, w1, w2), then W3 index slowest, W1 index fastest
    space = MaskSpace((3, 2, 2))
    lists = [eligible_masks(2, 3), eligible_masks(3, 2), eligible_masks(2, 2)]
    items = []
    for (a, m1), (b, m2), (c, m3) in itertools.product(*[list(enumerate(l)) for l in lists]):
        w1, w2, w3 = int(m1.sum()), int(m2.sum()), int(m3.sum())
        items.append(((w1 + w2 + w3, w1, w2, c, b, a), m1, m2, m3))
    items.sort(key=lambda t: t[0])
    got = space.index_to_masks(np.arange(len(space)))
    for layer in range(3):
        np.testing.assert_array_equal(got[layer], np.stack([t[layer + 1] for t in items]))


def test_random_roundtrip_full_733():
    space = MaskSpace((7, 3, 3))
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.integers(0, len(space), 20_000), [0, len(space) - 1]])
    m1, m2, m3 = space.index_to_masks(idx)
    assert m1.shape == (len(idx), 7, 2) and m2.shape == (len(idx), 3, 7) and m3.shape == (len(idx), 3, 3)
    np.testing.assert_array_equal(space.masks_to_index(m1, m2, m3), idx)
    nnz = _weight_counts((m1, m2, m3)).sum(axis=1) + 3 + 14
    np.testing.assert_array_equal(space.model_nnz(idx), nnz)
    srt = np.sort(idx)
    assert (np.diff(space.model_nnz(srt)) >= 0).all()
    # each layer's mask is eligible for its shape
    for m in (m1, m2, m3):
        m = m.astype(np.int64)
        assert (m.sum(axis=2) >= 1).all() and (m.sum(axis=1) >= 1).all()
        assert (np.diff(m.sum(axis=2), axis=1) <= 0).all()


@pytest.mark.parametrize("config,kw", [((7, 3, 3), dict(max_weight_sum=32, first_k_w2=3)),
                                       ((6, 3, 2), dict(max_weight_sum=30, first_k_w2=6))])
def test_subset_spaces(config, kw):
    space = MaskSpace(config, **kw)
    d1, d2, d3 = config
    idx = np.arange(len(space))
    m1, m2, m3 = space.index_to_masks(idx)
    w = _weight_counts((m1, m2, m3))
    assert (w.sum(axis=1) <= kw["max_weight_sum"]).all()
    nnz = w.sum(axis=1) + d3 + d1 + d2 + d3 + 1
    np.testing.assert_array_equal(space.model_nnz(idx), nnz)
    assert (np.diff(nnz) >= 0).all()
    # the W2 masks used are exactly the first k of each weight count (canonical order)
    k = kw["first_k_w2"]
    for n in np.unique(w[:, 1]):
        used = np.unique(m2[w[:, 1] == n].reshape(-1, d2 * d1), axis=0)
        ref = np.unique(eligible_masks(d1, d2, int(n))[:k].reshape(-1, d2 * d1), axis=0)
        np.testing.assert_array_equal(used, ref)
    np.testing.assert_array_equal(space.masks_to_index(m1, m2, m3), idx)
    # independent size: sum over weight counts of c1 * min(c2, k) * c3 under the cap
    c1, c2, c3 = eligible_counts(2, d1), eligible_counts(d1, d2), eligible_counts(d2, d3)
    size = sum(c1[a] * min(c2[b], k) * c3[c] for a in c1 for b in c2 for c in c3
               if a + b + c <= kw["max_weight_sum"])
    assert size == len(space)


def test_masks_outside_space_raise():
    space = MaskSpace((7, 3, 3), max_weight_sum=32, first_k_w2=3)
    m1, m2, m3 = (m.copy() for m in space.index_to_masks(np.array([0, 5, 100])))
    # W2 mask beyond the first 3 of its weight count
    bad2 = eligible_masks(7, 3, int(m2[0].sum()))[3][None]
    with pytest.raises(ValueError, match="not in"):
        space.masks_to_index(m1[:1], bad2, m3[:1])
    # ineligible (rows in the wrong order)
    bad3 = m3[:1, ::-1].copy()
    if not (bad3 == m3[:1]).all():
        with pytest.raises(ValueError):
            space.masks_to_index(m1[:1], m2[:1], bad3)
    # a zero column
    bad1 = m1[:1].copy()
    bad1[:, :, 1] = 0
    out = space.masks_to_index(np.concatenate([bad1, m1[1:]]), m2, m3, strict=False)
    np.testing.assert_array_equal(out, [-1, 5, 100])
    # above the weight cap (valid in the full space)
    full = MaskSpace((7, 3, 3))
    top = full.index_to_masks(np.array([len(full) - 1]))
    with pytest.raises(ValueError):
        space.masks_to_index(*top)
    with pytest.raises(ValueError):
        space.masks_to_index(m1[:, :, :1], m2, m3)  # wrong shape
    with pytest.raises(ValueError):
        space.index_to_masks(np.array([len(space)]))
    with pytest.raises(ValueError):
        MaskSpace((3, 0, 3))


def test_iter_batches_in_order():
    space = MaskSpace((3, 2, 2))
    seen = []
    for idx, (m1, m2, m3) in space.iter_batches(100, start=16):
        assert len(idx) == len(m1) == len(m2) == len(m3) <= 100
        np.testing.assert_array_equal(space.masks_to_index(m1, m2, m3), idx)
        seen.append(idx)
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(16, len(space)))
    big = MaskSpace((7, 3, 3))
    first = next(big.iter_batches(1000, start=123_456_789))[0]
    np.testing.assert_array_equal(first, np.arange(123_456_789, 123_457_789))


# ---------------------------------------------------------------------------------------------
# phase 1


def test_phase1_configs():
    c = phase1_configs(16)
    assert c.shape == (4096, 3)
    assert tuple(c[0]) == (1, 1, 1) and tuple(c[1]) == (1, 1, 2) and tuple(c[-1]) == (16, 16, 16)
    assert [tuple(r) for r in c] == sorted(itertools.product(range(1, 17), repeat=3))
    with pytest.raises(ValueError):
        phase1_configs(0)


def test_structured_nnz_values():
    assert [structured_nnz(c) for c in [(3, 3, 3), (7, 3, 3), (6, 3, 2), (3, 2, 2)]] == [37, 61, 50, 26]


def _synthetic_accuracies(configs: np.ndarray) -> np.ndarray:
    """(P, 6) accuracies (runs): one run at 0.99 for d >= (3,3,3) elementwise, one at 0.999 for
    d >= (7,3,3); (2,2,8) at 0.96 (passes 95 % but has 45 nnz > 37); (3,3,2) at exactly 0.95;
    everything else below 0.9."""
    rng = np.random.default_rng(1)
    acc = rng.uniform(0.5, 0.9, size=(len(configs), 6))
    for i, c in enumerate(map(tuple, configs)):
        if all(a >= b for a, b in zip(c, (3, 3, 3))):
            acc[i, i % 6] = 0.99
        if all(a >= b for a, b in zip(c, (7, 3, 3))):
            acc[i, (i + 1) % 6] = 0.999
        if c == (2, 2, 8):
            acc[i, 2] = 0.96
        if c == (3, 3, 2):
            acc[i, 4] = 0.95
    return acc


def test_select_sparsest():
    configs = phase1_configs(8)
    rows = [tuple(c) for c in configs]
    acc = _synthetic_accuracies(configs)
    assert structured_nnz((2, 2, 8)) > structured_nnz((3, 3, 3))
    assert select_sparsest(configs, acc, 0.95) == (3, 3, 3)
    assert select_sparsest(configs, acc, 0.995) == (7, 3, 3)
    assert select_sparsest(configs, acc, 0.9999) is None
    # runs as repeated rows instead of a runs axis
    assert select_sparsest(np.repeat(configs, 6, axis=0), acc.reshape(-1), 0.95) == (3, 3, 3)
    # (3,3,2) at exactly the target is excluded (strict); just above, it wins (33 < 37 nnz)
    assert structured_nnz((3, 3, 2)) < structured_nnz((3, 3, 3))
    acc2 = acc.copy()
    acc2[rows.index((3, 3, 2)), 4] = 0.9500001
    assert select_sparsest(configs, acc2, 0.95) == (3, 3, 2)
    # a sparser configuration passing 99.5 % replaces (7,3,3)
    acc3 = acc.copy()
    acc3[rows.index((4, 3, 2)), 0] = 0.9951
    assert select_sparsest(configs, acc3, 0.995) == (4, 3, 2)
    # NaN runs are ignored
    acc4 = acc.copy()
    acc4[:, 5] = np.nan
    assert select_sparsest(configs, acc4, 0.5) == (1, 1, 1)
    assert select_sparsest(configs[:0], acc[:0], 0.5) is None


def test_select_sparsest_tie_break_lexicographic():
    configs = phase1_configs(6)
    nnz = np.array([structured_nnz(c) for c in configs])
    # the first nnz value shared by two or more configurations
    vals, counts = np.unique(nnz, return_counts=True)
    v = vals[counts >= 2][0]
    tied = [tuple(c) for c in configs[nnz == v]]
    assert len(tied) >= 2
    acc = np.where(nnz >= v, 0.97, 0.5)
    # shuffled input order must not matter
    perm = np.random.default_rng(0).permutation(len(configs))
    assert select_sparsest(configs[perm], acc[perm], 0.95) == min(tied)
    with pytest.raises(ValueError):
        select_sparsest(configs, acc[:-1], 0.95)
