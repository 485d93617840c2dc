"""The combinatorial search end to end on the CPU `smoke` preset (the library job, in-process),
and its bad inputs (one CLI launch; the rest through the job's own checks)."""
import os
import subprocess
import sys

import pytest

from sparsejax.jobs import comb_search as job
from sparsejax.search import combinatorial as comb
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG_DEFAULTS = {"target": 0.95, "width": 16, "phase": "both", "config": None, "init": "random",
                 "lrs": "0.05,0.1", "phase2_lrs": None, "schedules": "constant,cosine,step", "epochs": 50,
                 "seed": 0, "phase1_max_nnz": None, "max_weight_sum": None, "first_k_w2": None,
                 "max_levels": None, "keep_going": False, "population_size": 1024}


def _smoke(**overrides):
    return job.settings({**FLAG_DEFAULTS, **job.PRESETS["smoke"], **overrides})


def _args(store, **kw):
    return sweep_flags.SweepArgs(store=str(store), preset="smoke", dry_run=False, num_shards=kw.get("num_shards", 1),
                                 shard_index=kw.get("shard_index", 0), population_size=16, chunk_steps=390)


def test_smoke_preset_end_to_end(tmp_path, capsys):
    store = str(tmp_path / "smoke.sqlite")
    res = job.run(_smoke(), _args(store))
    out = capsys.readouterr().out
    assert "phase 1: sparsest configuration exceeding 0.6" in out
    s = comb.SearchSettings(width=3, lrs=(0.1,), schedules=("cosine",), epochs=1, population_size=16)
    plan1 = comb.phase1_plan(s)
    assert len(plan1) == 27
    with Store(store, create=False) as st:
        recs = st.records(plan1.ids)
        assert len(recs) == 27
        n_search = sum(1 for r in st.iter_records() if r["config"]["method"] == "search")
    best = comb.select_phase1(store, plan1, 0.6)
    assert res.configuration == best and f"{best}" in out
    # the selection is the sparsest config above the target (an independent scan of the records)
    ok = [(comb.mlp.structured_nnz(r["config"]["structure"]), tuple(r["config"]["structure"]))
          for r in recs if r["accuracy"] > 0.6]
    assert best == min(ok)[1]
    assert n_search >= 1  # phase 2 trained at least its first nnz level
    # relaunching resumes: nothing is trained again
    job.dry_run(_smoke(), _args(store))
    assert "runs: total=27 done=27 todo=0" in capsys.readouterr().out


def test_a_shard_trains_its_runs_and_decides_nothing(tmp_path, capsys):
    """Issue 12 item 6: a shard sees part of phase 1, so it must not select (or reject) any
    configuration; it trains its share and says how to decide on the merged store."""
    store = str(tmp_path / "shard0.sqlite")
    res = job.run(_smoke(), _args(store, num_shards=2, shard_index=0))
    out = capsys.readouterr().out
    assert not res.decided and res.configuration is None and res.winner is None
    assert "no configuration exceeds" not in out and "sparsest configuration" not in out
    assert "winner" not in out
    assert "merge" in out and "without --num_shards" in out
    s = comb.SearchSettings(width=3, lrs=(0.1,), schedules=("cosine",), epochs=1, population_size=16)
    shard = comb.plan_lib.shard(comb.phase1_plan(s), 2, 0)
    with Store(store, create=False) as st:
        methods = [r["config"]["method"] for r in st.iter_records()]
        assert st.done_ids(shard.ids) == set(shard.ids)
    assert methods == ["structured"] * len(shard)  # phase 2 did not start from a shard


@pytest.mark.parametrize("override,needle", [
    ({"target": 1.5}, "--target"), ({"target": 0}, "--target"), ({"lrs": "0.1,-1"}, "--lrs"),
    ({"schedules": "linear"}, "--schedules"), ({"config": "3,0,2"}, "--config"), ({"width": 0}, "--width"),
    ({"phase": "2", "config": "3,2,2", "init": "/nonexistent.npz"}, "init"), ({"phase": "2"}, "--config"),
    ({"max_levels": 0}, "--max_levels"),
])
def test_bad_settings_name_the_flag(override, needle):
    with pytest.raises(ValueError, match=needle):
        job.settings({**FLAG_DEFAULTS, "epochs": 1, **override})


def test_sharded_phase_2_needs_max_levels(tmp_path):
    with pytest.raises(ValueError, match="--max_levels"):
        job.dry_run(job.settings({**FLAG_DEFAULTS, "epochs": 1}), _args(tmp_path / "s.sqlite", num_shards=2))


@pytest.mark.parametrize("flag,needle", [("--target=1.5", "--target"), ("--preset=nope", "--preset"),
                                         ("--bogus_flag=1", "bogus_flag")])
def test_bad_input_exits_cleanly(tmp_path, flag, needle):
    store = tmp_path / "s.sqlite"
    proc = subprocess.run([sys.executable, "-m", "experiments.comb_search", flag, f"--store={store}", "--epochs=1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
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


def test_dry_run_prices_phase_2(tmp_path, capsys):
    """Issue 17 item 3: a search's dry run prints runs, model-steps and the predicted time."""
    s = job.settings({**FLAG_DEFAULTS, "phase": "2", "config": "3,2,2", "lrs": "0.1", "schedules": "cosine"})
    job.dry_run(s, _args(tmp_path / "s.sqlite"))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    from sparsejax.search.product import MaskSpace
    masks = len(MaskSpace((3, 2, 2)))
    assert f"{masks} masks x 1 lrs x 1 schedules = {masks} runs, {masks * 50 * 390:,} model-steps" in line
    assert "predicted" in line and not os.listdir(tmp_path)
