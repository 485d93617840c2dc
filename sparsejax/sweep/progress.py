"""One live progress line per job: runs done/total, model-steps/s without compiles, whole-job ETA.

A *job* is everything one launcher trains: all phases, all populations, every sweep. The
launcher opens a :class:`Job` (``with Job(...) as job``), optionally announces the work of
later phases with :meth:`Job.expect` (phase 2 of a search is an upper bound: it may stop
early), and wraps each phase in :meth:`Job.stage`. :func:`sparsejax.sweep.runner.run_sweep`
finds the open job with :func:`current` and reports into it; without one it opens its own
job for its plan. So the ETA covers the whole job, not the population in flight.

Measurements (why they are what they are):

* The trainer calls ``progress(steps_done, total_steps, seconds)`` after every chunk, where
  ``seconds`` counts from the start of the current training pass. LTH runs five passes per
  population and restarts that clock each round while ``steps_done`` keeps growing, so a
  chunk's duration is ``seconds - previous seconds`` within a pass and ``seconds`` itself
  after a restart (a smaller value): rounds never reset the job's clock.
* A chunk during which the trainer traced its step function (``train.TRACE_COUNT``) held a
  compile. Throughput (model-steps/s) is measured over the other chunks only.
* The ETA is the remaining model-steps divided by the job's *effective* rate: model-steps
  trained over the wall time since training started, minus the compile overhead (a compile
  chunk's time beyond what its steps take at the measured throughput). Evaluation, pruning
  at init and store writes stay in, so the ETA is a wall-clock estimate; compiles still to
  come are not foreseen.

Output goes to ``stream`` (stderr): on a terminal one line rewritten in place (a bar); when
piped, plain lines at most every ``interval`` seconds, plus one at the end of every stage.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import sys
import time
from typing import Callable, Iterator, TextIO

_CURRENT: list["Job"] = []
BAR_WIDTH = 24


def current() -> "Job | None":
    """The innermost open job, or None."""
    return _CURRENT[-1] if _CURRENT else None


def hms(seconds: float) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    return str(datetime.timedelta(seconds=int(round(seconds))))


def _trace_count() -> int:
    from sparsejax import train  # the trainer counts its traces; imported lazily (jax)
    return int(train.TRACE_COUNT["chunk"])


@dataclasses.dataclass
class _Expected:
    """Work announced for a stage that no sweep has claimed yet."""
    runs: int = 0
    steps: int = 0
    exact: bool = True


class Job:
    """Progress of one job. All counts are of real runs (padding excluded), in model-steps.

    ``clock`` and ``trace_count`` are injectable so tests can drive the arithmetic; ``tty``
    defaults to ``stream.isatty()``.
    """

    def __init__(self, label: str = "job", stream: TextIO | None = None, interval: float = 5.0,
                 tty: bool | None = None, clock: Callable[[], float] = time.monotonic,
                 trace_count: Callable[[], int] = _trace_count, enabled: bool = True) -> None:
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.interval = float(interval)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else bool(tty)
        self.clock, self.trace_count, self.enabled = clock, trace_count, enabled
        self.expected: dict[str, _Expected] = {}
        self.stage_name: str | None = None
        # claimed work (sweeps that started) and what of it is finished
        self.claimed_runs = 0
        self.claimed_steps = 0
        self.done_runs = 0          # finished runs, including those found in the store
        self.done_steps = 0         # their model-steps (trained or found)
        self.partial_steps = 0      # model-steps of the population in flight
        self.trained_steps = 0      # model-steps actually trained by this job (finished populations)
        # timing
        self.t_start: float | None = None
        self.pure_steps = 0         # model-steps in chunks without a compile
        self.pure_seconds = 0.0
        self.compile_steps = 0      # model-steps in chunks that compiled
        self.compile_seconds = 0.0
        self.compiles = 0
        self._last_print = -math.inf
        self._dirty_tty = False
        # the population in flight
        self._pop_runs = 0
        self._prev_done = 0
        self._prev_seconds = 0.0
        self._prev_traces = 0

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "Job":
        _CURRENT.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self.end_line()
        if _CURRENT and _CURRENT[-1] is self:
            _CURRENT.pop()

    # ------------------------------------------------------------------ planning
    def expect(self, stage: str, runs: int, steps: int, exact: bool = True) -> None:
        """Announce ``runs`` (``steps`` model-steps) that stage ``stage`` will hand to sweeps;
        ``exact=False`` marks an upper bound (the ETA then reads "ETA <=")."""
        e = self.expected.setdefault(stage, _Expected())
        e.runs += int(runs)
        e.steps += int(steps)
        e.exact = e.exact and exact

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator["Job"]:
        """Sweeps inside are charged against ``expect(name, ...)``; what the stage did not use
        (phase 2 stopped early) is dropped from the totals when it ends."""
        outer, self.stage_name = self.stage_name, name
        try:
            yield self
        finally:
            self.expected.pop(name, None)
            self.stage_name = outer
            self.show(force=True)

    def claim(self, runs: int, steps: int, done_runs: int, done_steps: int) -> None:
        """A sweep starts: ``runs`` in its plan (``steps`` model-steps), of which ``done_runs``
        (``done_steps``) are already in the store."""
        e = self.expected.get(self.stage_name) if self.stage_name is not None else None
        if e is not None:
            e.runs, e.steps = max(0, e.runs - int(runs)), max(0, e.steps - int(steps))
        self.claimed_runs += int(runs)
        self.claimed_steps += int(steps)
        self.done_runs += int(done_runs)
        self.done_steps += int(done_steps)
        self.show(force=True)

    # ------------------------------------------------------------------ totals
    @property
    def total_runs(self) -> int:
        return self.claimed_runs + sum(e.runs for e in self.expected.values())

    @property
    def total_steps(self) -> int:
        return self.claimed_steps + sum(e.steps for e in self.expected.values())

    @property
    def exact(self) -> bool:
        return all(e.exact for e in self.expected.values() if e.runs)

    def remaining_steps(self) -> int:
        return max(0, self.total_steps - self.done_steps - self.partial_steps)

    # ------------------------------------------------------------------ training
    def population(self, runs: int) -> Callable[[int, int, float], None]:
        """Start a population of ``runs`` real runs; returns the trainer's chunk callback."""
        if self.t_start is None:
            self.t_start = self.clock()
        self._pop_runs = int(runs)
        self._prev_done, self._prev_seconds = 0, 0.0
        self._prev_traces = self.trace_count()
        self.partial_steps = 0
        return self.chunk

    def chunk(self, done: int, total: int, seconds: float) -> None:
        """The trainer finished a chunk: ``done`` of ``total`` steps, ``seconds`` into the pass."""
        steps = max(0, int(done) - self._prev_done)
        dt = float(seconds) - self._prev_seconds if seconds >= self._prev_seconds else float(seconds)
        traces = self.trace_count()
        model_steps = steps * self._pop_runs
        if traces != self._prev_traces:
            self.compiles += 1
            self.compile_steps += model_steps
            self.compile_seconds += max(dt, 0.0)
        else:
            self.pure_steps += model_steps
            self.pure_seconds += max(dt, 0.0)
        self._prev_done, self._prev_seconds, self._prev_traces = int(done), float(seconds), traces
        self.partial_steps += model_steps
        self.show()

    def population_done(self, runs: int, steps: int) -> None:
        """The population in flight is written: ``runs`` runs of ``steps`` model-steps."""
        self.partial_steps = 0
        self.done_runs += int(runs)
        self.done_steps += int(steps)
        self.trained_steps += int(steps)
        self.show()

    def skipped(self, runs: int, steps: int) -> None:
        """Runs of a claimed plan found finished meanwhile (another process)."""
        self.done_runs += int(runs)
        self.done_steps += int(steps)

    # ------------------------------------------------------------------ rates
    def throughput(self) -> float:
        """Model-steps/s over chunks without a compile (0.0 before any)."""
        return self.pure_steps / self.pure_seconds if self.pure_seconds > 0 else 0.0

    def compile_overhead(self) -> float:
        """Seconds compile chunks took beyond their steps at the measured throughput."""
        rate = self.throughput()
        if rate <= 0:
            return self.compile_seconds
        return max(0.0, self.compile_seconds - self.compile_steps / rate)

    def eta(self) -> float:
        """Seconds until the whole job is done (inf while unknown)."""
        left = self.remaining_steps()
        if left == 0:
            return 0.0
        if self.t_start is None or self.throughput() <= 0:
            return math.inf
        trained = self.trained_steps + self.partial_steps
        wall = self.clock() - self.t_start - self.compile_overhead()
        if trained <= 0 or wall <= 0:
            return math.inf
        return left * wall / trained

    # ------------------------------------------------------------------ output
    def line(self) -> str:
        """The progress line (no bar)."""
        total = self.total_runs
        head = f"{self.label}: " + (f"[{self.stage_name}] " if self.stage_name else "")
        parts = []
        parts.append(f"runs {self.done_runs:,}/{total:,}{'' if self.exact else ' at most'}")
        rate = self.throughput()
        if rate > 0:
            parts.append(f"{rate:,.0f} model-steps/s")
        elif self.compiles and self.pure_seconds == 0:
            parts.append("compiling")
        eta = self.eta()
        parts.append(f"ETA {'<= ' if not self.exact else ''}{hms(eta)}")
        return head + ", ".join(parts)

    def _bar(self) -> str:
        total = max(self.total_steps, 1)
        frac = min(1.0, (self.done_steps + self.partial_steps) / total)
        full = int(round(frac * BAR_WIDTH))
        return f"[{'#' * full}{'.' * (BAR_WIDTH - full)}] {frac:5.1%} "

    def show(self, force: bool = False) -> None:
        """Print the line if ``interval`` passed since the last one (or ``force``)."""
        if not self.enabled:
            return
        now = self.clock()
        if self.tty:
            if not force and now - self._last_print < min(self.interval, 0.5):
                return
            self.stream.write("\r\x1b[K" + self._bar() + self.line())
            self._dirty_tty = True
        else:
            if not force and now - self._last_print < self.interval:
                return
            self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._last_print = now

    def end_line(self) -> None:
        """Finish a live terminal line (before other output, and at the end)."""
        if self.tty and self._dirty_tty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty_tty = False

    def echo(self, message: str, stream: TextIO | None = None) -> None:
        """Print ``message`` (stdout by default) without garbling a live terminal line."""
        self.end_line()
        print(message, file=sys.stdout if stream is None else stream, flush=True)
