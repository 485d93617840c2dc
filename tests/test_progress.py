"""The job progress line: throughput without compiles, whole-job ETA, LTH rounds, output modes.

Everything runs on a fake clock and a fake trace counter; expected numbers are hand-computed.
"""
import io
import math

import pytest

from sparsejax.sweep import progress


class Fake:
    """A settable clock and trace counter."""

    def __init__(self) -> None:
        self.t, self.traces = 0.0, 0

    def clock(self) -> float:
        return self.t

    def count(self) -> int:
        return self.traces


def _job(fake: Fake, **kw) -> progress.Job:
    return progress.Job("job", stream=io.StringIO(), tty=False, clock=fake.clock, trace_count=fake.count, **kw)


def test_throughput_excludes_compile_chunks_and_eta_covers_the_whole_job():
    fake = Fake()
    job = _job(fake)
    job.claim(runs=8, steps=8 * 300, done_runs=0, done_steps=0)  # 8 runs of 300 steps
    cb = job.population(4)
    fake.traces, fake.t = 1, 10.0  # first chunk compiled: 100 steps x 4 runs in 10 s
    cb(100, 300, 10.0)
    assert job.throughput() == 0.0 and math.isinf(job.eta())
    fake.t = 12.0
    cb(200, 300, 12.0)              # 400 model-steps in 2 s -> 200/s
    assert job.throughput() == pytest.approx(200.0)
    fake.t = 14.0
    cb(300, 300, 14.0)
    job.population_done(4, 1200)
    assert job.throughput() == pytest.approx(200.0)
    # compile overhead: the 10 s chunk held 400 steps worth 2 s -> 8 s excluded; wall 14 - 8 = 6 s
    # for 1200 steps; 1200 remain -> ETA 6 s (the second population, same program)
    assert job.compile_overhead() == pytest.approx(8.0)
    assert job.eta() == pytest.approx(6.0)
    assert job.done_runs == 4 and job.total_runs == 8
    line = job.line()
    assert "runs 4/8" in line and "200 model-steps/s" in line and "ETA 0:00:06" in line


def test_lth_rounds_do_not_reset_the_clock():
    """LTH restarts `seconds` each round while `done` keeps growing (registry.LTH.fit)."""
    fake = Fake()
    job = _job(fake)
    job.claim(runs=2, steps=2 * 5 * 100, done_runs=0, done_steps=0)
    cb = job.population(2)
    for r in range(5):              # five rounds of two 50-step chunks, 1 s each
        for c in (1, 2):
            fake.t += 1.0
            cb(r * 100 + 50 * c, 500, float(c))
    assert job.pure_seconds == pytest.approx(10.0) and job.pure_steps == 1000
    assert job.throughput() == pytest.approx(100.0)
    assert job.eta() == 0.0 or job.remaining_steps() == 0
    job.population_done(2, 1000)
    assert job.remaining_steps() == 0 and job.eta() == 0.0


def test_expected_stages_count_until_claimed_and_unused_bounds_drop():
    fake = Fake()
    job = _job(fake)
    job.expect("phase 1", 10, 1000)
    job.expect("phase 2", 40, 4000, exact=False)
    assert job.total_runs == 50 and not job.exact
    with job.stage("phase 1"):
        job.claim(10, 1000, done_runs=4, done_steps=400)  # 4 found in the store
        assert job.total_runs == 50 and job.done_runs == 4
    with job.stage("phase 2"):
        job.claim(12, 1200, 0, 0)                          # only the first levels were needed
        assert job.total_runs == 50
    assert job.total_runs == 22 and job.exact and "at most" not in job.line()


def test_sweep_without_expectation_adds_to_totals():
    job = _job(Fake())
    job.claim(5, 500, 5, 500)
    job.claim(3, 300, 0, 0)
    assert (job.total_runs, job.done_runs, job.remaining_steps()) == (8, 5, 300)


def test_piped_output_is_throttled_and_tty_rewrites_one_line():
    fake = Fake()
    out = io.StringIO()
    job = progress.Job("job", stream=out, tty=False, interval=5.0, clock=fake.clock, trace_count=fake.count)
    job.claim(1, 1000, 0, 0)
    cb = job.population(1)
    for i in range(1, 11):          # ten chunks one second apart -> lines at most every 5 s
        fake.t = float(i)
        cb(100 * i, 1000, float(i))
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 4 and all(l.startswith("job: ") for l in lines)
    tty = io.StringIO()
    job = progress.Job("job", stream=tty, tty=True, clock=fake.clock, trace_count=fake.count)
    with job:
        assert progress.current() is job
        job.claim(1, 100, 0, 0)
    assert progress.current() is None
    text = tty.getvalue()
    assert text.startswith("\r\x1b[K[") and text.endswith("\n") and text.count("\n") == 1


def test_hms():
    assert progress.hms(3725) == "1:02:05" and progress.hms(math.inf) == "?"
