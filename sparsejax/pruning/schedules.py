"""Count and event schedules of the iterative pruning methods, computed on the host (SPEC §5).

Every count here is the number of weights KEPT at one point of a method's schedule. It is the
reference code's own expression, evaluated as the reference evaluates it (Python floats or NumPy
float64, truncated by ``int()``), so that no count moves by one through float32 error; the
trainer passes these integers to the device as int32 tables (issue #10).

Then our one deliberate change: every count is clipped to [B, N] (the reference's late GMP
events overshoot to B − 1, its strict-threshold pruners end below B; we never go below the
budget) and the last point of every schedule is exactly B.

Plain NumPy/Python, no JAX: anyone can call these to compare with another implementation.
"""
from __future__ import annotations

import numpy as np

GMP_TOTAL_STEPS = 19_500      # 50 epochs × 390 minibatches
GMP_PRUNING_TIMES = 199       # the reference's PRUNINGTIMES: the cubic reaches B at event 199
GMP_INTERVAL_DIVISOR = 200    # interval = int(T / (PRUNINGTIMES + 1.0))
SYNFLOW_ITERS = 100
ITER_STEPS = 10               # Iter SNIP / FORCE
LTH_ROUNDS = 5
RIGL_DELTA_T = 100            # the reference code's update interval (the paper says 200)
RIGL_END_FRACTION = 0.75
RIGL_ALPHA = 0.3


def _check(n_total: int, budget: int) -> tuple[int, int]:
    n, b = int(n_total), int(budget)
    if n < 1 or not 0 <= b <= n:
        raise ValueError(f"need 0 <= budget <= n_total and n_total >= 1, got budget={budget}, n_total={n_total}")
    return n, b


def _floor_at_budget(keep: list[int], n: int, b: int) -> np.ndarray:
    out = np.clip(np.asarray(keep, np.int64), b, n)
    out[-1] = b
    return out


# ------------------------------------------------------------------------------------ GMP


def gmp_interval(total_steps: int = GMP_TOTAL_STEPS, divisor: int = GMP_INTERVAL_DIVISOR) -> int:
    """Steps between GMP events: int(T / 200.0) (97 for T = 19,500; 200 = the reference's
    PRUNINGTIMES + 1); ValueError below 1."""
    interval = int(total_steps / float(divisor))
    if interval < 1:
        raise ValueError(f"GMP needs at least {divisor} training steps, got {total_steps}")
    return interval


def gmp_event_steps(total_steps: int = GMP_TOTAL_STEPS, divisor: int = GMP_INTERVAL_DIVISOR) -> np.ndarray:
    """0-based steps at whose start GMP prunes: t = interval·k for every k >= 1 with t < T.
    For T = 19,500 that is 201 events (97, 194, …, 19,400, 19,497): the reference's loop tests
    ``t % 97 == 0`` on every iteration, so it does not stop after PRUNINGTIMES = 199."""
    interval = gmp_interval(total_steps, divisor)
    return np.arange(interval, int(total_steps), interval, dtype=np.int64)


def gmp_counts(n_total: int, budget: int, total_steps: int = GMP_TOTAL_STEPS,
               divisor: int = GMP_INTERVAL_DIVISOR, cubic_events: int = GMP_PRUNING_TIMES) -> np.ndarray:
    """Weights kept after each GMP event (len(gmp_event_steps(T)) ints; 201 for the paper).

    The reference: frac = t / (199.0 · interval), keep int(B + (N − B)·(1 − frac)³) in Python
    floats. Events 200 and 201 (frac > 1) give B − 1 there; with our floor they keep B, as
    does event 199 (frac = 1 exactly)."""
    n, b = _check(n_total, budget)
    denom = cubic_events * float(gmp_interval(total_steps, divisor))
    keep = [int(b + (n - b) * ((1 - int(t) / denom) ** 3)) for t in gmp_event_steps(total_steps, divisor)]
    return _floor_at_budget(keep, n, b)


# ------------------------------------------------------------------------------------ SynFlow


def synflow_counts(n_total: int, budget: int, n_iter: int = SYNFLOW_ITERS) -> np.ndarray:
    """Weights kept after each SynFlow iteration i = 0..n_iter−1 (n_iter ints).

    The reference prunes int(N − B^r / N^(r − 1)) weights with r = (i + 1.0)/n_iter (nothing
    when that is < 1), so it keeps N minus that: the ceiling of N·(B/N)^r up to float64."""
    n, b = _check(n_total, budget)
    keep = []
    for i in range(int(n_iter)):
        ratio = (i + 1.0) / n_iter
        prune = int(n - (b ** ratio) / (n ** (ratio - 1.0)))
        keep.append(n - prune if prune >= 1 else n)
    return _floor_at_budget(keep, n, b)


# ------------------------------------------------------------------------------------ Iter SNIP / FORCE


def iterative_counts(n_total: int, budget: int, n_steps: int = ITER_STEPS) -> np.ndarray:
    """Weights kept after each Iter SNIP / FORCE step j = 1..n_steps (n_steps ints).

    The reference (its 'exp' mode): perc_j = exp(−j·(−log(B/N))/n_steps) in NumPy float64,
    keep int(N·perc_j)."""
    n, b = _check(n_total, budget)
    factor = b / float(n)
    with np.errstate(divide="ignore"):  # B = 0: log 0 = −inf, exp(−inf) = 0
        log_factor = np.log(factor)
    keep = [int(n * np.exp(0 - ((x + 1) * (0 - log_factor) / n_steps))) for x in range(int(n_steps))]
    return _floor_at_budget(keep, n, b)


# ------------------------------------------------------------------------------------ LTH


def lth_counts(n_total: int, budget: int, rounds: int = LTH_ROUNDS) -> np.ndarray:
    """Weights kept after rounds 1..rounds−1 (rounds − 1 ints; the last round trains at B).

    The reference: int(N · (float(B)/N)^(k/(rounds − 1))) after round k."""
    n, b = _check(n_total, budget)
    times = int(rounds) - 1
    if times < 1:
        raise ValueError(f"LTH needs at least 2 rounds, got {rounds}")
    keep = [int(n * ((float(b) / n) ** (k / times))) for k in range(1, times + 1)]
    return _floor_at_budget(keep, n, b)


# ------------------------------------------------------------------------------------ RigL


def rigl_t_end(total_steps: int, end_fraction: float = RIGL_END_FRACTION) -> int:
    """T_end = int(0.75 · T) (14,625 for the paper)."""
    return int(end_fraction * int(total_steps))


def rigl_event_steps(total_steps: int = GMP_TOTAL_STEPS, delta_t: int = RIGL_DELTA_T,
                     end_fraction: float = RIGL_END_FRACTION) -> np.ndarray:
    """0-based iterations i at which RigL updates the mask (146 for the paper: 99, 199, …, 14,599).

    The reference's scheduler increments its counter s after each backward pass and updates
    when s % ΔT == 0 and s < T_end, so at iteration i = s − 1: on that iteration's minibatch,
    after i SGD steps, and that iteration's SGD step is skipped."""
    t_end = rigl_t_end(total_steps, end_fraction)
    s = np.arange(delta_t, t_end, delta_t, dtype=np.int64)
    return s - 1


def rigl_drop_fractions(total_steps: int = GMP_TOTAL_STEPS, delta_t: int = RIGL_DELTA_T,
                        alpha: float = RIGL_ALPHA, end_fraction: float = RIGL_END_FRACTION) -> np.ndarray:
    """Drop fraction at each update of :func:`rigl_event_steps`, float64: the reference's
    α/2 · (1 + cos(s·π / T_end)) with its counter s = i + 1 (so 0.3/2·(1 + cos(100π/14,625))
    at the first update)."""
    t_end = rigl_t_end(total_steps, end_fraction)
    s = rigl_event_steps(total_steps, delta_t, end_fraction) + 1
    return np.asarray([alpha / 2 * (1 + np.cos((int(si) * np.pi) / t_end)) for si in s], np.float64)


def rigl_drop_counts(layer_counts, total_steps: int = GMP_TOTAL_STEPS, delta_t: int = RIGL_DELTA_T,
                     alpha: float = RIGL_ALPHA, end_fraction: float = RIGL_END_FRACTION) -> np.ndarray:
    """(E, L) int32: weights dropped (and regrown) in each layer at each RigL update, the
    reference's int(n_ones · drop_fraction) in float64 with n_ones the layer's live count
    (constant through training: every update drops and grows the same number). float32
    would differ by one for some n_ones ≥ 865."""
    counts = [int(c) for c in np.asarray(layer_counts).reshape(-1)]
    return np.asarray([[int(c * f) for c in counts] for f in rigl_drop_fractions(total_steps, delta_t, alpha, end_fraction)],
                      np.int32).reshape(-1, len(counts))


# ------------------------------------------------------------------------------------ tables


def table(fn, n_total: int, budgets, *args) -> np.ndarray:
    """(P, K) int32 table of ``fn(n_total, b, *args)`` for every budget b of a population."""
    return np.stack([fn(n_total, int(b), *args) for b in np.asarray(budgets).reshape(-1)]).astype(np.int32)

