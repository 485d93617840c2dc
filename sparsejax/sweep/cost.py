"""Predicted wall time of a plan: model-steps per trained shape over measured throughput.

The unit of work is the model-step (one SGD step of one model on a minibatch of 128,
``sparsejax.sweep.plan.run_cost``). How fast a shape trains was measured on this project's
2-core CPU machine with

    PYTHONPATH=. python benchmarks/cost_table.py --steps=200
    PYTHONPATH=. python benchmarks/cost_table.py --steps=40 --repeats=2 --population=256 \
        --shapes=64-64-64,128-128-128

(``benchmarks.throughput.time_shape``: a population of models, the step kernel ``auto`` picks,
median of timed chunks after a compiling warm-up). :data:`MEASURED` holds those numbers and
:data:`MEASURED_ON` says when and on what machine (a machine shared with other jobs is
slower, so a prediction there is a lower bound on the time). Other shapes are interpolated log-linearly in the weight count
(the per-step work) through their running minimum, so a prediction never falls as the shape
grows; below the smallest measured shape its number is used, beyond the widest the rate falls
with the weight count; the prediction is a plain-number estimate —
compiles, evaluation and pruning-at-init work are not in it (a few percent on long sweeps, more
on a demo-sized one, which is why the demo also reports its measured time).
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

from sparsejax import mlp

# (d1, d2, d3) -> model-steps/s with kernel "auto", measured by benchmarks/cost_table.py on the
# 2-core machine with nothing else running (2026-12-03 02:15 UTC, the kernel that trains a whole
# chunk per call): P = 1024, 200 steps, median of 3 up to width 32; P = 256, 40 steps, median of
# 2 at 64; 128 from 2026-12-02 14:10 UTC (it trains with the XLA step: above the fused kernel's
# range, unchanged since).
# Runs sharing a data_seed train faster at the smallest shapes (benchmarks/RESULTS.md); the
# model charges every run as if it had its own data order.
MEASURED: dict[tuple[int, int, int], float] = {
    (3, 3, 3): 2_510_956,
    (3, 2, 2): 2_981_667,
    (6, 3, 2): 2_175_171,
    (4, 4, 4): 2_234_898,
    (7, 3, 3): 1_937_063,
    (16, 16, 16): 203_799,
    (32, 32, 32): 36_657,
    (64, 64, 64): 9_619,
    (128, 128, 128): 2_085,
}
MEASURED_ON = ("2026-12-03, 2-core AMD EPYC (Zen 4: AVX-512, 16 models per vector), jax 0.10.2 CPU, "
               "idle apart from the benchmark (a shared machine is several times slower)")


def _points() -> list[tuple[float, float]]:
    """(weight count, rate) of the measured shapes, the rate made non-increasing in the weight
    count (a running minimum): a bigger network is never predicted to train faster, so a
    prediction is monotone in the shape (measured rates are not quite: a compiled-in shape can
    beat a smaller one that is not)."""
    pts, low = [], math.inf
    for n, r in sorted((float(mlp.weight_count(s)), float(r)) for s, r in MEASURED.items()):
        low = min(low, r)
        pts.append((n, low))
    return pts


def throughput(shape: Iterable[int]) -> float:
    """Model-steps/s of a population of ``shape`` (hidden widths): a log-linear interpolation in
    the weight count between the measured shapes (their running minimum, :func:`_points`)."""
    n = float(mlp.weight_count(tuple(int(d) for d in shape)))
    pts = _points()
    if n <= pts[0][0]:
        return pts[0][1]
    if n >= pts[-1][0]:  # beyond the widest shape measured: per-step work grows with the weights
        return pts[-1][1] * pts[-1][0] / n
    for (n0, r0), (n1, r1) in zip(pts, pts[1:]):
        if n0 <= n <= n1:
            if n == n1:
                return r1
            t = (math.log(n) - math.log(n0)) / (math.log(n1) - math.log(n0))
            return min(r0, max(r1, math.exp(math.log(r0) + t * (math.log(r1) - math.log(r0)))))  # no rounding bump
    raise AssertionError("unreachable")


# Compacted training (sparsejax.compaction): pruning-at-init runs at width >= 32 train at the
# units that carry a kept weight, bucketed to 4, 8, 16, 32, 64, 128. Measured with
# benchmarks/compaction_shapes.py (7 at-init methods x budgets 15/30/65 x 4 seeds, 2026-12-02):
# the bucket of the widest layer is 16 for most width-32 runs and 16-32 at 64, 32 at 128, 32-64
# at 256 (max 128). The planner charges the upper of those (a uniform shape, conservative).
COMPACTED_ESTIMATE: dict[int, int] = {32: 16, 64: 32, 128: 32, 256: 64}


def compacted_shape(shape: Iterable[int]) -> tuple[int, ...]:
    """The shape a compacted pruning-at-init run of hidden ``shape`` is expected to train at."""
    shape = tuple(int(d) for d in shape)
    width = max(shape)
    est = COMPACTED_ESTIMATE.get(width)
    if est is None:
        below = [w for w in COMPACTED_ESTIMATE if w <= width]
        est = COMPACTED_ESTIMATE[max(below)] * width // max(below) if below else width
    return tuple(min(d, est) for d in shape)


def seconds(steps_by_shape: Mapping[tuple[int, ...], int]) -> float:
    """Predicted training seconds of ``{trained shape: model-steps}``."""
    return sum(int(steps) / throughput(shape) for shape, steps in steps_by_shape.items())


def hms(secs: float) -> str:
    """``1 h 02 min`` / ``4 min 10 s`` / ``12 s``: a predicted duration for humans."""
    secs = max(0.0, float(secs))
    if secs >= 3600:
        return f"{int(secs // 3600)} h {int(secs % 3600 // 60):02d} min"
    if secs >= 60:
        return f"{int(secs // 60)} min {int(secs % 60):02d} s"
    return f"{secs:.0f} s"
