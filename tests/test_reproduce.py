"""The main job's plans: the demo's dry run, and the paper preset's 485,838 runs (SPEC §6)."""
import os
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


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "experiments.reproduce", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_dry_run_creates_nothing(tmp_path):
    out = tmp_path / "demo"
    proc = _run("--preset=demo", f"--out={out}", "--dry_run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runs: total=256 done=0 todo=256" in proc.stdout  # phase 1: 4^3 configs x 2 lrs x 2 schedules
    assert "runs: total=46 done=0 todo=46" in proc.stdout    # 9 methods x 5 budgets + dense
    assert not out.exists()


@pytest.mark.skipif(not os.path.isdir(INITS), reason="the paper's init files are not beside the repository")
def test_paper_preset_plans_every_group_of_the_study(tmp_path):
    proc = _run("--preset=paper", f"--out={tmp_path / 'paper'}", f"--bench_inits={INITS}", "--dry_run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(l.rsplit(": ", 1) for l in proc.stdout.splitlines() if l.endswith(" runs") and ": " in l)
    for group, n in PAPER_GROUPS.items():
        assert lines[group] == f"{n} runs", group
    assert "total: 485838 runs" in proc.stdout


def test_each_preset_has_its_own_out_folder_and_bad_inputs_fail_first(tmp_path):
    demo = _run("--preset=demo", "--dry_run")
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert demo.stdout.splitlines()[0] == f"preset demo: store {os.path.join('out', 'demo', 'store.sqlite')}, " \
                                          f"outputs in {os.path.join('out', 'demo')}"
    # the paper preset checks its bench inits before planning (which takes minutes)
    paper = _run("--preset=paper", "--dry_run", f"--bench_inits={tmp_path / 'missing'}", timeout=120)
    assert paper.returncode == 2 and paper.stdout == ""
    assert paper.stderr.splitlines() == [f"error: --bench_inits: init file "
                                         f"'{tmp_path / 'missing' / 'bench95_init.npz'}': not a regular file"]
    assert not os.listdir(tmp_path)
