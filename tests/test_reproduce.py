"""The main job: the demo's dry run (phase 2 included), the demo's code path end to end at toy
scale, and the paper preset's 485,838 runs (SPEC §6) planned by counting, not hashing."""
import os
import re
import stat
import subprocess
import sys

import pytest

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


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "experiments.reproduce", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_dry_run_counts_every_phase_and_creates_nothing(tmp_path):
    out = tmp_path / "demo"
    proc = _run("--preset=demo", f"--out={out}", "--dry_run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runs: total=256 done=0 todo=256" in proc.stdout  # phase 1: 4^3 configs x 2 lrs x 2 schedules
    assert "[2/3] phase 2: at most 256 runs" in proc.stdout  # the phase-2 budget is in the plan
    assert "runs: total=46 done=0 todo=46" in proc.stdout    # 9 methods x 5 budgets + dense
    total = re.search(r"^total: ([\d,]+) runs \(at most\), ([\d,]+) model-steps; predicted (.+?) of training",
                      proc.stdout, re.M)
    assert total, proc.stdout
    assert int(total.group(1).replace(",", "")) == 256 + 256 + 46
    lth_extra = 5 * 4 * STEPS  # LTH trains 5 rounds: 4 extra trainings for each of its 5 budgets
    assert int(total.group(2).replace(",", "")) == (256 + 256 + 46) * STEPS + lth_extra
    assert not out.exists()


@pytest.mark.skipif(not os.path.isdir(INITS), reason="the paper's init files are not beside the repository")
def test_paper_dry_run_prints_every_group_and_the_total_with_hours(tmp_path):
    proc = _run("--preset=paper", f"--out={tmp_path / 'paper'}", f"--bench_inits={INITS}", "--dry_run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = dict(re.findall(r"^(.+?): ([\d,]+) runs, [\d,]+ model-steps, ~.+ predicted$", proc.stdout, re.M))
    assert {g: int(n.replace(",", "")) for g, n in found.items()} == PAPER_GROUPS
    assert re.search(r"^total: 485,838 runs, [\d,]+ model-steps; predicted [\d,.]+ hours on this machine's "
                     r"measured throughput", proc.stdout, re.M), proc.stdout
    assert not (tmp_path / "paper").exists()


PLANNING_DRIVER = r"""
import sys
from absl import flags
from sparsejax import runs
from sparsejax.sweep import identity
calls = {"run_id": 0, "validate": 0}
def counting(name, fn):
    def wrapped(*a, **k):
        calls[name] += 1
        return fn(*a, **k)
    return wrapped
identity.run_id = counting("run_id", identity.run_id)
runs.validate = counting("validate", runs.validate)
from experiments import reproduce
flags.FLAGS(["reproduce"])
total = reproduce.plan_paper(reproduce.PRESETS["paper"], sys.argv[1], echo=lambda _: None)
print(total.runs, total.model_steps, calls["run_id"], calls["validate"])
"""


@pytest.mark.skipif(not os.path.isdir(INITS), reason="the paper's init files are not beside the repository")
def test_paper_planning_counts_runs_without_hashing_each():
    """Planning 485,838 runs validates and hashes only a sample per group (10 groups x <= 16
    configs, +2 per phase-2 space), never each run: work counted, not time."""
    proc = subprocess.run([sys.executable, "-c", PLANNING_DRIVER, INITS], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, steps, ids, validations = (int(v) for v in proc.stdout.split())
    assert runs == sum(PAPER_GROUPS.values()) == 485838
    assert steps > runs * STEPS  # LTH's five rounds come on top
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


def test_demo_code_path_end_to_end_at_toy_scale(tmp_path):
    """The README's main command in reduced form (--preset=smoke: 1 epoch, {1,2}^3, 3 methods):
    the finding is printed last and opens report.html; outputs are mode 0644."""
    out = tmp_path / "smoke"
    proc = _run("--preset=smoke", f"--out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
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
    for shape, rate in cost.MEASURED.items():
        assert cost.throughput(shape) == rate
    (a, ra), (b, rb) = sorted(cost.MEASURED.items(), key=lambda kv: mlp.weight_count(kv[0]))[-2:]
    mid = cost.throughput((96, 96, 96))  # between the two widest measured shapes
    assert min(ra, rb) <= mid <= max(ra, rb)
    widest = max(cost.MEASURED, key=mlp.weight_count)
    big = (256, 256, 256)  # beyond the widest: slower in proportion to the weights
    assert cost.throughput(big) == pytest.approx(
        cost.MEASURED[widest] * mlp.weight_count(widest) / mlp.weight_count(big))
    assert cost.seconds({(3, 3, 3): int(cost.MEASURED[(3, 3, 3)]) * 10}) == pytest.approx(10)
    assert cost.hms(3725) == "1 h 02 min" and cost.hms(250) == "4 min 10 s" and cost.hms(12) == "12 s"
