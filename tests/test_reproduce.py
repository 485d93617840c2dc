"""The main job (sparsejax.jobs.reproduce, in-process): the demo's dry run (phase 2 included), the
demo's code path end to end at toy scale, and the paper preset's 485,838 runs (SPEC §6) planned
by counting, not hashing; one CLI launch for the default folders and bad input."""
import dataclasses
import os
import re
import stat
import subprocess
import sys

import pytest

from sparsejax import runs as runs_lib
from sparsejax.jobs import reproduce
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import identity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INITS = os.path.join(REPO, "..", "shared", "bench-inits")

PAPER_GROUPS = {
    "random init: overparameterisation": 18954, "random init: phase 1": 24576,
    "random init: phase 2 (3,3,3)": 155952, "random init: phase 2 (7,3,3) subset": 189624,
    "BENCH-95 init: pruning": 9720, "BENCH-95 init: phase 1": 558, "BENCH-95 init: phase 2 (3,2,2)": 2496,
    "BENCH-995 init: pruning": 11340, "BENCH-995 init: phase 1": 2034,
    "BENCH-995 init: phase 2 (6,3,2) subset": 70584,
}
STEPS = 50 * 390  # model-steps of one 50-epoch run


ARGS = sweep_flags.SweepArgs(store=None, preset=None, dry_run=False, num_shards=1, shard_index=0,
                             population_size=1024, chunk_steps=390)


def _job(name, capsys, **kw):
    """Run preset ``name`` in-process; its stdout."""
    args = dataclasses.replace(ARGS, dry_run=kw.pop("dry_run", False))
    reproduce.run(name, args, **kw)
    return capsys.readouterr().out


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "experiments.reproduce", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_dry_run_counts_every_phase_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "demo"
    text = _job("demo", capsys, out=str(out), dry_run=True)
    assert "runs: total=256 done=0 todo=256" in text  # phase 1: 4^3 configs x 2 lrs x 2 schedules
    assert "[2/3] phase 2: at most 256 runs" in text  # the phase-2 budget is in the plan
    assert "runs: total=46 done=0 todo=46" in text    # 9 methods x 5 budgets + dense
    total = re.search(r"^total: ([\d,]+) runs \(at most\), ([\d,]+) model-steps; predicted (.+?) of training",
                      text, re.M)
    assert total, text
    assert int(total.group(1).replace(",", "")) == 256 + 256 + 46
    lth_extra = 5 * 4 * STEPS  # LTH trains 5 rounds: 4 extra trainings for each of its 5 budgets
    assert int(total.group(2).replace(",", "")) == (256 + 256 + 46) * STEPS + lth_extra
    assert not out.exists()


@pytest.mark.skipif(not os.path.isdir(INITS), reason="the paper's init files are not beside the repository")
def test_paper_dry_run_prints_every_group_and_the_total_with_hours(tmp_path, capsys):
    text = _job("paper", capsys, out=str(tmp_path / "paper"), bench_inits=INITS, dry_run=True)
    found = dict(re.findall(r"^(.+?): ([\d,]+) runs, [\d,]+ model-steps, ~.+ predicted$", text, re.M))
    assert {g: int(n.replace(",", "")) for g, n in found.items()} == PAPER_GROUPS
    assert re.search(r"^total: 485,838 runs, [\d,]+ model-steps; predicted [\d,.]+ hours on this machine's "
                     r"measured throughput", text, re.M), text
    assert not (tmp_path / "paper").exists()


@pytest.mark.skipif(not os.path.isdir(INITS), reason="the paper's init files are not beside the repository")
def test_paper_planning_counts_runs_without_hashing_each(monkeypatch):
    """Planning 485,838 runs validates and hashes only a sample per group (10 groups x <= 16
    configs, +2 per phase-2 space), never each run: work counted, not time."""
    calls = {"run_id": 0, "validate": 0}

    def counting(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped
    monkeypatch.setattr(identity, "run_id", counting("run_id", identity.run_id))
    monkeypatch.setattr(runs_lib, "validate", counting("validate", runs_lib.validate))
    total = reproduce.plan_paper(reproduce.PRESETS["paper"], INITS, echo=lambda _: None)
    assert total.runs == sum(PAPER_GROUPS.values()) == 485838
    assert total.model_steps > total.runs * STEPS  # LTH's five rounds come on top
    ids, validations = calls["run_id"], calls["validate"]
    assert 0 < ids <= 10 * 16 + 4 * 2 and 0 < validations <= 10 * 16 + 4 * 2, (ids, validations)


def test_each_preset_has_its_own_out_folder_and_bad_inputs_fail_first(tmp_path):
    demo = _run("--preset=demo", "--dry_run")
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert demo.stdout.splitlines()[0] == f"preset demo: store {os.path.join('out', 'demo', 'store.sqlite')}, " \
                                          f"outputs in {os.path.join('out', 'demo')}"
    # the paper preset checks its bench inits before planning
    paper = _run("--preset=paper", "--dry_run", f"--bench_inits={tmp_path / 'missing'}", timeout=120)
    assert paper.returncode == 2 and paper.stdout == ""
    assert paper.stderr.splitlines() == [f"error: --bench_inits: init file "
                                         f"'{tmp_path / 'missing' / 'bench95_init.npz'}': not a regular file"]
    assert not os.listdir(tmp_path)


def test_demo_code_path_end_to_end_at_toy_scale(tmp_path, capsys):
    """The README's main command in reduced form (--preset=smoke: 1 epoch, {1,2}^3, 3 methods):
    the finding is printed last and opens report.html; outputs are mode 0644."""
    out = tmp_path / "smoke"
    text = _job("smoke", capsys, out=str(out))
    assert "[1/4] phase 1: 8 runs" in text and "[4/4] finding, report and viewer" in text
    tail = text[text.index("The finding (sparsest model above 60 %):"):]
    assert re.search(r"^  search \(phase 1 \+ 2\)", tail, re.M)
    for m in ("gmp", "snip"):
        assert re.search(rf"^  {m} ", tail, re.M), tail
    assert f"report: {out / 'report.html'}" in tail
    page = (out / "report.html").read_text()
    assert page.index('class="finding"') < page.index("Headline numbers")
    assert "The paper preset" in page  # what the full study adds and costs
    if "side by side:" in tail:
        assert (out / "compare.html").exists() and 'href="compare.html"' in page
        assert page.count("data-panel") == 0  # the viewer is its own page, linked, not inlined
    for name in ("report.html", "store.sqlite"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_cost_model_uses_measured_numbers_and_interpolates_between_them():
    from sparsejax import mlp
    from sparsejax.sweep import cost
    floor = {s: min(r for t, r in cost.MEASURED.items() if mlp.weight_count(t) <= mlp.weight_count(s))
             for s in cost.MEASURED}  # the running minimum over the weight count
    for shape in cost.MEASURED:
        assert cost.throughput(shape) == floor[shape]
    (a, ra), (b, rb) = sorted(cost.MEASURED.items(), key=lambda kv: mlp.weight_count(kv[0]))[-2:]
    mid = cost.throughput((96, 96, 96))  # between the two widest measured shapes
    assert min(ra, rb) <= mid <= max(ra, rb)
    widest = max(cost.MEASURED, key=mlp.weight_count)
    big = (256, 256, 256)  # beyond the widest: slower in proportion to the weights
    assert cost.throughput(big) == pytest.approx(
        cost.MEASURED[widest] * mlp.weight_count(widest) / mlp.weight_count(big))
    assert cost.seconds({(3, 3, 3): int(cost.MEASURED[(3, 3, 3)]) * 10}) == pytest.approx(10)
    # monotone: more model-steps or a bigger shape never predicts less time
    shapes = sorted({(d1, d2, d3) for d1 in (1, 2, 3, 5, 7, 16, 40, 100, 256) for d2 in (1, 3, 16, 64)
                     for d3 in (1, 2, 16, 200)}, key=mlp.weight_count)
    times = [cost.seconds({s: 10**6}) for s in shapes]
    assert all(a <= b for a, b in zip(times, times[1:]))
    assert all(cost.seconds({(3, 3, 3): n}) < cost.seconds({(3, 3, 3): n + 1000}) for n in (0, 10**4, 10**9))
    assert cost.hms(3725) == "1 h 02 min" and cost.hms(250) == "4 min 10 s" and cost.hms(12) == "12 s"
