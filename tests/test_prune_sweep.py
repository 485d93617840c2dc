"""The pruning-sweep launcher: the paper's grid sizes, a short real sweep, and bad inputs."""
import os
import subprocess
import sys

import pytest

from sparsejax.sweep.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "experiments.prune_sweep", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("preset,total", [("paper_random", 18954), ("paper_width16", 1863)])
def test_paper_grid_sizes(preset, total):
    proc = _run(f"--preset={preset}", "--dry_run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"runs: total={total} done=0 todo={total}" in proc.stdout


def test_smoke_sweep_writes_every_run(tmp_path):
    store = str(tmp_path / "p.sqlite")
    proc = _run("--preset=smoke", "--methods=dense,gmp,snip,rigl", f"--store={store}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Store(store, create=False) as st:
        recs = list(st.iter_records())
    assert len(recs) == 1 + 3 * 2
    by_method = {}
    for r in recs:
        by_method.setdefault(r["config"]["method"], []).append(r)
        if r["config"]["method"] != "dense":
            assert r["metrics"]["mask_weight_count"] == r["config"]["budget"]
    assert sorted(by_method) == ["dense", "gmp", "rigl", "snip"]
    again = _run("--preset=smoke", "--methods=dense,gmp,snip,rigl", f"--store={store}", "--dry_run")
    assert "runs: total=7 done=7 todo=0" in again.stdout


@pytest.mark.parametrize("flag,needle", [
    ("--methods=magic", "--methods"), ("--widths=0", "--widths"), ("--budgets=0", "--budgets"),
    ("--budgets=5000", "--budgets"), ("--lrs=0", "--lrs"), ("--schedules=linear", "--schedules"),
    ("--epochs=0", "--epochs"), ("--num_shards=2 --shard_index=2", "--shard_index"),
    ("--init=/nonexistent.npz", "init"),
])
def test_bad_input_exits_cleanly(tmp_path, flag, needle):
    store = tmp_path / "s.sqlite"
    proc = _run(*flag.split(), f"--store={store}", "--widths=4" if "widths" not in flag else "--epochs=1",
                timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert lines and needle in lines[-1] and "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)


def test_not_a_store_is_refused_untouched(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_bytes(b"these are my notes, not a sweep store" * 10)
    before = bad.read_bytes()
    proc = _run("--preset=smoke", "--methods=dense", f"--store={bad}")
    assert proc.returncode == 2 and "store" in proc.stderr.strip().splitlines()[-1]
    assert bad.read_bytes() == before and os.listdir(tmp_path) == ["notes.sqlite"]
