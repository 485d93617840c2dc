"""The pruning-sweep job (in-process): the paper's grid sizes, a short real sweep, method
params in the run id, and bad inputs (the job's checks, and one CLI launch)."""
import dataclasses
import os
import subprocess
import sys

import pytest

from sparsejax.jobs import prune_sweep as job
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG_DEFAULTS = {"methods": job.PAPER_METHODS, "widths": "16", "budgets": job.PAPER_BUDGETS,
                 "lrs": "0.05,0.1,0.2", "schedules": job.ALL_SCHEDULES, "epochs": 50, "repeats": 1,
                 "init": "random", "optimal_width": None, "method_params": None, "population_size": 1024}


def _values(preset=None, **overrides):
    return {**FLAG_DEFAULTS, **(job.PRESETS[preset] if preset else {}), **overrides}


def _args(store=None, **kw):
    base = sweep_flags.SweepArgs(store=str(store) if store else None, preset=None, dry_run=False, num_shards=1,
                                 shard_index=0, population_size=8, chunk_steps=390)
    return dataclasses.replace(base, **kw)


@pytest.mark.parametrize("preset,total", [("paper_random", 18954), ("paper_width16", 1863)])
def test_paper_grid_sizes(preset, total):
    assert len(job.configs(_values(preset))) == total


def test_smoke_sweep_writes_every_run(tmp_path, capsys):
    store = str(tmp_path / "p.sqlite")
    values = _values("smoke", methods="dense,gmp,snip,rigl")
    job.run(job.plan(values, _args(store)), _args(store), population_size=8)
    with Store(store, create=False) as st:
        recs = list(st.iter_records())
    assert len(recs) == 1 + 3 * 2
    by_method = {}
    for r in recs:
        by_method.setdefault(r["config"]["method"], []).append(r)
        if r["config"]["method"] != "dense":
            assert r["metrics"]["mask_weight_count"] == r["config"]["budget"]
    assert sorted(by_method) == ["dense", "gmp", "rigl", "snip"]
    capsys.readouterr()
    job.run(job.plan(values, _args(store)), _args(store, dry_run=True))
    assert "runs: total=7 done=7 todo=0" in capsys.readouterr().out


def test_method_params_reach_the_run_id_and_only_their_method():
    """--method_params changes the ids of its method's runs (and only those); defaults spelled
    out explicitly keep the ids of the plain grid."""
    base = _values(methods="gmp,snip", widths="4", budgets="20", lrs="0.1", schedules="cosine")
    def ids(method_params=None):
        p = plan_lib.Plan(job.configs({**base, "method_params": method_params}))
        return {c["method"]: rid for c, rid in zip(p.configs, p.ids)}
    plain, changed = ids(), ids("gmp.cubic_events=99")
    assert changed["snip"] == plain["snip"] and changed["gmp"] != plain["gmp"]
    assert ids("gmp.cubic_events=199") == plain


@pytest.mark.parametrize("override,needle", [
    ({"methods": "magic"}, "--methods"), ({"widths": "0"}, "--widths"), ({"budgets": "0"}, "--budgets"),
    ({"lrs": "0"}, "--lrs"), ({"schedules": "linear"}, "--schedules"), ({"epochs": 0}, "--epochs"),
    ({"init": "/nonexistent.npz"}, "init"), ({"method_params": "gmp.bogus=1"}, "--method_params"),
    ({"method_params": "rigl.delta_t=5"}, "--method_params"),  # rigl is not in this launch
    ({"method_params": "gmp.cubic_events=abc"}, "--method_params"), ({"method_params": "gmp"}, "--method_params"),
])
def test_bad_settings_name_the_flag(override, needle):
    with pytest.raises(ValueError, match=needle):
        job.configs(_values(**{"methods": "gmp,snip", "widths": "4", "epochs": 1, **override}))


def test_an_explicit_budget_with_no_run_left_is_an_error():
    with pytest.raises(ValueError, match="--budgets"):
        job.configs(_values(widths="4", budgets="5000"), explicit=frozenset({"budgets"}))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.prune_sweep", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_bad_input_exits_cleanly(tmp_path):
    proc = _cli("--num_shards=2", "--shard_index=2", f"--store={tmp_path / 's.sqlite'}", "--widths=4")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert lines and "--shard_index" in lines[-1] and "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)


def test_not_a_store_is_refused_untouched(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_bytes(b"these are my notes, not a sweep store" * 10)
    before = bad.read_bytes()
    proc = _cli("--preset=smoke", "--methods=dense", f"--store={bad}")
    assert proc.returncode == 2 and "store" in proc.stderr.strip().splitlines()[-1]
    assert bad.read_bytes() == before and os.listdir(tmp_path) == ["notes.sqlite"]
