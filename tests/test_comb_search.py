"""The combinatorial search end to end on the CPU `smoke` preset, and its bad inputs."""
import os
import subprocess
import sys

import numpy as np
import pytest

from sparsejax.search import combinatorial as comb
from sparsejax.sweep.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "experiments.comb_search", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_smoke_preset_end_to_end(tmp_path):
    store = str(tmp_path / "smoke.sqlite")
    proc = _run("--preset=smoke", f"--store={store}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "phase 1: sparsest configuration exceeding 0.6" in out
    s = comb.SearchSettings(width=3, lrs=(0.1,), schedules=("cosine",), epochs=1, population_size=16)
    plan1 = comb.phase1_plan(s)
    assert len(plan1) == 27
    with Store(store, create=False) as st:
        recs = st.records(plan1.ids)
        assert len(recs) == 27
        n_search = sum(1 for r in st.iter_records() if r["config"]["method"] == "search")
    best = comb.select_phase1(store, plan1, 0.6)
    assert f"{best}" in out
    # the selection is the sparsest config above the target (an independent scan of the records)
    ok = [(comb.mlp.structured_nnz(r["config"]["structure"]), tuple(r["config"]["structure"]))
          for r in recs if r["accuracy"] > 0.6]
    assert best == min(ok)[1]
    assert n_search >= 1  # phase 2 trained at least its first nnz level
    # relaunching resumes: nothing is trained again
    again = _run("--preset=smoke", f"--store={store}", "--dry_run")
    assert again.returncode == 0
    assert "runs: total=27 done=27 todo=0" in again.stdout


def test_a_shard_trains_its_runs_and_decides_nothing(tmp_path):
    """Issue 12 item 6: a shard sees part of phase 1, so it must not select (or reject) any
    configuration; it trains its share and says how to decide on the merged store."""
    store = str(tmp_path / "shard0.sqlite")
    proc = _run("--preset=smoke", f"--store={store}", "--num_shards=2", "--shard_index=0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no configuration exceeds" not in proc.stdout and "sparsest configuration" not in proc.stdout
    assert "winner" not in proc.stdout
    assert "merge" in proc.stdout and "without --num_shards" in proc.stdout
    s = comb.SearchSettings(width=3, lrs=(0.1,), schedules=("cosine",), epochs=1, population_size=16)
    shard = comb.plan_lib.shard(comb.phase1_plan(s), 2, 0)
    with Store(store, create=False) as st:
        methods = [r["config"]["method"] for r in st.iter_records()]
        assert st.done_ids(shard.ids) == set(shard.ids)
    assert methods == ["structured"] * len(shard)  # phase 2 did not start from a shard


@pytest.mark.parametrize("flag,needle", [
    ("--target=1.5", "--target"), ("--target=0", "--target"), ("--lrs=0.1,-1", "--lrs"),
    ("--schedules=linear", "--schedules"), ("--config=3,0,2", "--config"), ("--width=0", "--width"),
    ("--init=/nonexistent.npz", "init"), ("--preset=nope", "--preset"), ("--bogus_flag=1", "bogus_flag"),
])
def test_bad_input_exits_cleanly(tmp_path, flag, needle):
    store = tmp_path / "s.sqlite"
    extra = ["--phase=2", "--config=3,2,2"] if flag.startswith("--init") else []
    proc = _run(flag, f"--store={store}", "--epochs=1", *extra, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert lines and needle in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)


def test_level_batches_fill_populations():
    assert comb.level_batches([2, 3, 10, 1], runs_per_mask=2, population_size=8) == [[0, 1], [2], [3]]
    assert comb.level_batches([1, 1, 1], runs_per_mask=1, population_size=100) == [[0, 1, 2]]
    groups = comb.level_batches(list(range(1, 30)), runs_per_mask=6, population_size=64)
    assert [i for g in groups for i in g] == list(range(29))  # every level once, in order
