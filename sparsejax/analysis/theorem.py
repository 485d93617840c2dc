"""Theorem L.1 (paper Appendix L): random pruning with fixed per-layer counts disconnects wide MLPs.

Setting: L linear layers W^1 (d_in → w), W^2..W^{L−1} (w → w), W^L (w → d_out); layer ℓ keeps
exactly n_ℓ nonzero weights chosen uniformly at random. For L ≥ 4 and w > n_ℓ + n_{ℓ+1}
(ℓ = 2..L−2), P(no input→output path) → 1 as w → ∞.

The proof looks at two consecutive square layers ℓ, ℓ+1: they are disconnected when the k units
that W^ℓ feeds and the r units that W^{ℓ+1} reads are disjoint, which has probability
C(w−k, r)/C(w, r) = Π_{j<k} (1 − r/(w−j)) ≥ (1 − (n_ℓ + n_{ℓ+1} − 1)/w)^k, with k ≤ n_ℓ. Hence

    P(no path) ≥ P(layers ℓ, ℓ+1 disconnected) ≥ ((w − n_ℓ + 1 − n_{ℓ+1}) / w)^{n_ℓ}.

The paper prints the exponent n_ℓ − 1 (:func:`paper_bound`); that is not a lower bound in
general: for n_ℓ = n_{ℓ+1} = 1 it gives 1, while the two single weights meet with probability
1/w. :func:`bound` uses the exponent n_ℓ; both tend to 1. :func:`pair_probability` is the exact
probability that the pair is disconnected, :func:`monte_carlo` estimates P(no path) of the whole
network and :func:`exact_brute_force` enumerates tiny cases.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import NamedTuple, Sequence

import numpy as np


def layer_shapes(width: int, n_layers: int, d_in: int = 2, d_out: int = 1) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every layer of the theorem's MLP."""
    if n_layers < 2:
        raise ValueError(f"need at least 2 layers, got {n_layers}")
    dims = [d_in] + [int(width)] * (n_layers - 1) + [d_out]
    return list(zip(dims[:-1], dims[1:]))


def _check_counts(width: int, counts: Sequence[int], d_in: int, d_out: int) -> list[tuple[int, int]]:
    shapes = layer_shapes(width, len(counts), d_in, d_out)
    for l, (n, (i, o)) in enumerate(zip(counts, shapes)):
        if not 0 <= int(n) <= i * o:
            raise ValueError(f"counts[{l}] = {n} does not fit a {i}x{o} layer at width {width}")
    return shapes


def _pairs(counts: Sequence[int]) -> list[tuple[int, int]]:
    """(n_ℓ, n_{ℓ+1}) for ℓ = 2..L−2 (1-based): the pairs of square layers the proof uses."""
    if len(counts) < 4:
        raise ValueError(f"Theorem L.1 needs L >= 4 layers, got {len(counts)}")
    return [(int(counts[l]), int(counts[l + 1])) for l in range(1, len(counts) - 2)]


def _bound(width: int, counts: Sequence[int], shift: int) -> float:
    best = 0.0
    for n_a, n_b in _pairs(counts):
        base = (width - n_a + 1 - n_b) / width
        if width > n_a + n_b and base > 0:
            best = max(best, base ** (n_a - shift))
    return best


def bound(width: int, counts: Sequence[int]) -> float:
    """Lower bound on P(no input→output path): max over ℓ = 2..L−2 of
    ((w − n_ℓ + 1 − n_{ℓ+1})/w)^{n_ℓ} (0 where w ≤ n_ℓ + n_{ℓ+1}). See the module docstring."""
    return _bound(int(width), counts, 0)


def paper_bound(width: int, counts: Sequence[int]) -> float:
    """The paper's printed expression, exponent n_ℓ − 1 (not a valid bound in general)."""
    return _bound(int(width), counts, 1)


def _rows_hit_distribution(width: int, n: int) -> list[Fraction]:
    """P(exactly k of the w rows of a w×w matrix with n uniform entries are nonzero), k = 0..min(w, n)
    (more rows than entries is impossible). |A_k| (masks on k fixed rows, all nonzero) by
    inclusion–exclusion."""
    total = math.comb(width * width, n)
    out = []
    for k in range(min(width, n) + 1):
        a_k = sum((-1) ** i * math.comb(k, i) * math.comb((k - i) * width, n) for i in range(k + 1))
        out.append(Fraction(math.comb(width, k) * a_k, total))
    return out


def pair_probability(width: int, n_a: int, n_b: int) -> float:
    """Exact P(two consecutive w×w layers with n_a and n_b uniform entries share no unit): the
    units W^ℓ feeds are disjoint from the units W^{ℓ+1} reads (rows/columns are exchangeable)."""
    w = int(width)
    p_k, p_r = _rows_hit_distribution(w, int(n_a)), _rows_hit_distribution(w, int(n_b))
    total = Fraction(0)
    for k, pk in enumerate(p_k):
        if pk == 0:
            continue
        for r, pr in enumerate(p_r):
            if pr and r <= w - k:
                total += pk * pr * Fraction(math.comb(w - k, r), math.comb(w, r))
    return float(total)


def pair_lower_bound(width: int, counts: Sequence[int]) -> float:
    """max over the square pairs of :func:`pair_probability`: an exact lower bound on P(no path)."""
    return max(pair_probability(width, n_a, n_b) for n_a, n_b in _pairs(counts))


# ----------------------------------------------------------------------------- sampling


class MonteCarlo(NamedTuple):
    p: float        # estimated P(no input→output path)
    stderr: float   # binomial standard error
    trials: int


def _distinct_indices(rng: np.random.Generator, trials: int, n: int, size: int) -> np.ndarray:
    """(trials, n) indices, each row n distinct values uniform over [0, size) (a uniform subset)."""
    if n == 0:
        return np.zeros((trials, 0), np.int64)
    if 4 * n >= size:
        return np.argsort(rng.random((trials, size)), axis=1)[:, :n]
    idx = rng.integers(0, size, (trials, n))
    while True:  # redraw whole rows with a repeat: rejection keeps each row a uniform subset
        srt = np.sort(idx, axis=1)
        bad = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
        if not bad.any():
            return idx
        idx[bad] = rng.integers(0, size, (int(bad.sum()), n))


def no_path_samples(width: int, counts: Sequence[int], trials: int, seed: int = 0,
                    d_in: int = 2, d_out: int = 1) -> np.ndarray:
    """(trials,) bool: for each random pruning with exact per-layer counts, whether no output
    unit is reachable from the inputs."""
    shapes = _check_counts(int(width), counts, d_in, d_out)
    rng = np.random.default_rng(seed)
    reach_TxU = np.ones((trials, d_in), bool)
    rows_T = np.arange(trials)[:, None]
    for n, (fan_in, fan_out) in zip(counts, shapes):
        idx_TxN = _distinct_indices(rng, trials, int(n), fan_in * fan_out)
        src, dst = idx_TxN // fan_out, idx_TxN % fan_out
        live = reach_TxU[rows_T, src]
        nxt = np.zeros((trials, fan_out), bool)
        nxt[np.broadcast_to(rows_T, idx_TxN.shape)[live], dst[live]] = True
        reach_TxU = nxt
    return ~reach_TxU.any(axis=1)


def monte_carlo(width: int, counts: Sequence[int], trials: int = 2000, seed: int = 0,
                d_in: int = 2, d_out: int = 1) -> MonteCarlo:
    """Monte Carlo estimate of P(no input→output path) under random pruning with exact counts."""
    hits = no_path_samples(width, counts, int(trials), seed, d_in, d_out)
    p = float(hits.mean())
    return MonteCarlo(p, math.sqrt(max(p * (1 - p), 0.0) / trials), int(trials))


def exact_brute_force(width: int, counts: Sequence[int], d_in: int = 2, d_out: int = 1,
                      limit: int = 2_000_000) -> float:
    """Exact P(no path) by enumerating every combination of per-layer masks (tiny cases only)."""
    shapes = _check_counts(int(width), counts, d_in, d_out)
    per_layer = [list(itertools.combinations(range(i * o), int(n))) for n, (i, o) in zip(counts, shapes)]
    total = math.prod(len(c) for c in per_layer)
    if total > limit:
        raise ValueError(f"{total} mask combinations exceed the limit {limit}")
    no_path = 0
    for combo in itertools.product(*per_layer):
        reach = set(range(d_in))
        for chosen, (_, fan_out) in zip(combo, shapes):
            reach = {e % fan_out for e in chosen if e // fan_out in reach}
        no_path += not reach
    return no_path / total


def curve(widths: Sequence[int], counts: Sequence[int], trials: int = 2000, seed: int = 0,
          d_in: int = 2, d_out: int = 1) -> dict[str, np.ndarray]:
    """Everything the Theorem L.1 figure draws, per width: Monte Carlo estimate and error, exact
    pair probability, the corrected bound and the paper's expression."""
    out: dict[str, list] = {"width": [], "mc": [], "mc_stderr": [], "pair": [], "bound": [], "paper_bound": []}
    for w in widths:
        mc = monte_carlo(w, counts, trials, seed + int(w), d_in, d_out)
        out["width"].append(int(w))
        out["mc"].append(mc.p)
        out["mc_stderr"].append(mc.stderr)
        out["pair"].append(pair_lower_bound(w, counts))
        out["bound"].append(bound(w, counts))
        out["paper_bound"].append(paper_bound(w, counts))
    return {k: np.asarray(v) for k, v in out.items()}
