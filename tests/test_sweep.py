"""The sweep engine: plans, shards, populations, the resumable runner and launcher flags.

Training runs are tiny (dense width 2, one epoch, population 2, chunks of 130 steps) and share
one compiled program, so after the first compile every population takes a fraction of a second.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
from absl import flags as absl_flags

from sparsejax import mlp
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import identity
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import runner
from sparsejax.sweep.plan import Plan, grid, groups, shard
from sparsejax.sweep.store import Store, StoreError, merge

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "sweep_worker.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO}
POP, CHUNK = 2, 130

# the "tiny" preset of tests/sweep_worker.py: 12 runs of one program
TINY = grid(method="dense", widths=[(2, 2, 2)], lr=[0.05, 0.1, 0.2],
            schedule=["constant", "cosine"], seed=[0, 1], epochs=1)
WORKER_ARGS = ["--preset=tiny", f"--population_size={POP}", f"--chunk_steps={CHUNK}"]
NUMBERS = ("accuracy", "loss", "weight_nnz", "model_nnz", "diverged", "status")


def _sweep(configs, path, **kw) -> tuple[dict, list[str]]:
    """run_sweep over ``configs`` into ``path``; returns the summary and the log lines."""
    lines: list[str] = []
    kw = {"population_size": POP, "chunk_steps": CHUNK, **kw}
    summary = runner.run_sweep(Plan(configs), str(path), log=lines.append, **kw)
    return summary, lines


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep of TINY: (store path, summary, log lines)."""
    path = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    summary, lines = _sweep(TINY, path)
    return path, summary, lines


def _store_count(path) -> int:
    """Stored runs, 0 while the file is missing or still being created by another process."""
    try:
        with Store(path, create=False, timeout=5) as st:
            return st.count()
    except (StoreError, sqlite3.Error):
        return 0


def _rows(path) -> tuple[int, int]:
    """(row count, distinct run ids) straight from SQLite."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs").fetchone()


def _assert_same_records(path_a, path_b, ids) -> None:
    """Every run of ``ids`` is in both stores with equal numbers, masks and parameters."""
    with Store(path_a, create=False) as a, Store(path_b, create=False) as b:
        for rid in ids:
            ra, rb = a.get(rid), b.get(rid)
            assert ra is not None and rb is not None, rid
            assert ra["config"] == rb["config"]
            for key in NUMBERS:
                assert ra[key] == rb[key], (rid, key, ra[key], rb[key])
            for blob in ("params", "masks"):
                assert ra[blob].keys() == rb[blob].keys()
                for name in ra[blob]:
                    np.testing.assert_array_equal(ra[blob][name], rb[blob][name])


def _files(folder) -> dict[str, str]:
    """{name: sha256} of every file in ``folder`` (to prove nothing was created or changed)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh:
            out[name] = hashlib.sha256(fh.read()).hexdigest()
    return out


# ----------------------------------------------------------------------------- grid and plan

def test_grid_later_axes_vary_fastest():
    g = grid(a=[1, 2], b=["x", "y", "z"], c="fixed")
    assert [(d["a"], d["b"]) for d in g] == [(1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z")]
    assert all(d["c"] == "fixed" for d in g)
    assert grid(widths=[(3, 3, 3)], lr=np.asarray([0.1, 0.2]))[1] == {"widths": (3, 3, 3), "lr": 0.2}
    with pytest.raises(ValueError, match=r"^b: grid axis has no values"):
        grid(a=[1], b=[])


def test_plan_resolves_validates_and_deduplicates():
    plan = Plan(TINY + TINY[:5] + [{**TINY[0], "momentum": 0.9}])  # 0.9 is the default
    assert len(plan) == 12 and plan.duplicates == 6
    assert plan.ids == tuple(identity.run_id(c) for c in plan.configs)
    assert len(set(plan.ids)) == 12
    assert all(c["batch_size"] == 128 for c in plan)  # resolved: every field spelled out
    assert plan_lib.cost(plan) == 12 * 390
    assert plan.without(plan.ids[:5]).ids == plan.ids[5:]


def test_cost_multiplier_counts_lth_rounds():
    cfg = {"method": "lth", "epochs": 2, "batch_size": 128, "dataset": "cubist_spiral"}
    assert plan_lib.steps_multiplier(cfg) == 5
    assert plan_lib.run_cost(cfg) == 2 * 390 * 5
    assert plan_lib.run_cost({**cfg, "method": "gmp"}) == 2 * 390


def _mixed_plan() -> Plan:
    """Several programs with different costs, interleaved in the input order."""
    configs = (grid(method=["dense"], widths=[(2, 2, 2), (3, 3, 3)], lr=[0.05, 0.1],
                    seed=[0, 1, 2], epochs=[1, 3])
               + grid(method="random", widths=[(3, 3, 3)], budget=[5, 9, 12], seed=[0, 1], epochs=2)
               + grid(method="structured", widths=[(3, 3, 3)], structure=[(1, 2, 3), (3, 3, 3)],
                      lr=[0.1, 0.2], epochs=1)
               + grid(method="search", widths=[(3, 3, 3)], structure=[(3, 3, 3)],
                      mask_index=list(range(7)), epochs=1))
    return Plan(configs[::2] + configs[1::2])


@pytest.mark.parametrize("num_shards", [1, 2, 3, 5, 8, 64])
def test_shards_partition_the_plan(num_shards):
    plan = _mixed_plan()
    parts = [shard(plan, num_shards, i) for i in range(num_shards)]
    ids = [set(p.ids) for p in parts]
    assert sum(len(s) for s in ids) == len(plan)                # disjoint ...
    assert set().union(*ids) == set(plan.ids)                   # ... and covering
    assert [p.ids for p in parts] == [shard(plan, num_shards, i).ids for i in range(num_shards)]
    costs = [plan_lib.cost(p) for p in parts]
    biggest = max(plan_lib.run_cost(c) for c in plan)
    assert max(costs) <= plan_lib.cost(plan) / num_shards + biggest  # balanced by model-steps
    for bad in ((0, 0), (2, 2), (2, -1)):
        with pytest.raises(ValueError, match=r"^(num_shards|shard_index): "):
            shard(plan, *bad)


@pytest.mark.parametrize("size", [1, 3, 4, 100])
def test_groups_are_single_program_populations(size):
    plan = _mixed_plan()
    pops = groups(plan, size)
    assert all(1 <= len(p) <= size for p in pops)
    for pop in pops:
        assert len({plan_lib.runs.program_key(c) for c in pop}) == 1
    flat = [identity.run_id(c) for p in pops for c in p]
    assert sorted(flat) == sorted(plan.ids) and len(flat) == len(set(flat))
    keys = [plan_lib.runs.program_key(p[0]) for p in pops]
    n_programs = len(set(plan.program_keys()))
    # each program's populations are consecutive: one compile per program (and size)
    assert sum(1 for a, b in zip(keys, keys[1:]) if a != b) == n_programs - 1
    assert [[identity.run_id(c) for c in p] for p in groups(plan, size)] == \
        [[identity.run_id(c) for c in p] for p in pops]
    with pytest.raises(ValueError, match=r"^population_size: "):
        groups(plan, 0)


# ----------------------------------------------------------------------------- validation

def _init_files(folder) -> dict[str, str]:
    """A good width-2 init file, one with a missing array and one with a wrongly shaped array."""
    os.makedirs(folder, exist_ok=True)
    good = os.path.join(folder, "good.npz")
    mlp.save_npz(good, mlp.init(jax.random.PRNGKey(0), (2, 2, 2)))
    state = dict(np.load(good))
    weights = sorted(k for k in state if k.endswith(".weight"))
    missing = os.path.join(folder, "missing.npz")
    np.savez(missing, **{k: v for k, v in state.items() if k != weights[-1]})
    shaped = os.path.join(folder, "shaped.npz")
    np.savez(shaped, **{**state, weights[1]: np.zeros((2, 5), np.float32)})
    return {"good": good, "missing": missing, "shaped": shaped}


BAD_CONFIGS = [
    ("method", {"method": "bogus"}),
    ("schedule", {"schedule": "bogus"}),
    ("widths", {"widths": (2, 0, 2)}),
    ("budget", {"method": "random", "budget": 0}),
    ("budget", {"method": "random", "budget": 14}),   # (2,2,2) has 14 weights
    ("budget", {"method": "random", "budget": 99}),
    ("lr", {"lr": 0.0}),
    ("lr", {"lr": -0.1}),
    ("epochs", {"epochs": 0}),
    ("init", {"init": "missing"}),
    ("init", {"init": "shaped"}),
]


@pytest.mark.parametrize("field,bad", BAD_CONFIGS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_CONFIGS)])
def test_bad_config_names_field_and_writes_nothing(tmp_path, field, bad):
    inits = _init_files(tmp_path / "inits")
    if "init" in bad:
        bad = {**bad, "init": inits[bad["init"]]}
    work = tmp_path / "work"
    work.mkdir()
    configs = TINY[:3] + [{**TINY[0], **bad}] + TINY[3:]  # a bad run anywhere stops the sweep
    with pytest.raises(ValueError, match=rf"^{field}\b") as err:
        runner.run_sweep(Plan(configs), str(work / "s.sqlite"), dry_run=False)
    assert "\n" not in str(err.value) and "config #3" in str(err.value)
    assert os.listdir(work) == []


def test_good_init_file_validates(tmp_path):
    inits = _init_files(tmp_path)
    plan = Plan([{**TINY[0], "init": inits["good"]}])
    assert plan.configs[0]["init_sha256"]


@pytest.mark.parametrize("dry_run", [False, True])
def test_foreign_store_file_is_refused_untouched(tmp_path, dry_run):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE foo (x)")
    conn.close()
    before = _files(tmp_path)
    for path in (junk, other):
        with pytest.raises(ValueError, match=r"^store: .*not a sweep store"):
            runner.run_sweep(Plan(TINY), str(path), dry_run=dry_run)
    with pytest.raises(ValueError, match=r"^store: .*does not exist"):
        runner.run_sweep(Plan(TINY), str(tmp_path / "no" / "s.sqlite"), dry_run=dry_run)
    for kw, field in (({"population_size": 0}, "population_size"), ({"chunk_steps": 0}, "chunk_steps")):
        with pytest.raises(ValueError, match=rf"^{field}: "):
            runner.run_sweep(Plan(TINY), str(tmp_path / "s.sqlite"), dry_run=dry_run, **kw)
    assert _files(tmp_path) == before


# ----------------------------------------------------------------------------- dry run

def test_dry_run_prints_counts_and_creates_nothing(tmp_path, reference, capsys):
    ref_path, _, _ = reference
    missing = tmp_path / "new.sqlite"
    summary = runner.run_sweep(Plan(TINY), str(missing), dry_run=True)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["runs: total=12 done=0 todo=12", "cost: model-steps total=4680 todo=4680"]
    assert len(out) == 3 and out[2].startswith("predicted: ") and summary["predicted_seconds"] > 0
    assert summary["todo"] == 12 and os.listdir(tmp_path) == []

    copy = tmp_path / "copy.sqlite"
    shutil.copy(ref_path, copy)
    before = _files(tmp_path)
    runner.run_sweep(Plan(TINY + grid(method="dense", widths=[(2, 2, 2)], seed=[7], epochs=1)),
                     str(copy), dry_run=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "runs: total=13 done=12 todo=1"
    assert out[1] == "cost: model-steps total=5070 todo=390"
    assert _files(tmp_path) == before


# ----------------------------------------------------------------------------- runner

def test_sweep_logs_one_line_per_population_and_resumes(reference, tmp_path):
    ref_path, summary, lines = reference
    assert summary["trained"] == 12 and summary["populations"] == 6
    progress = [l for l in lines if l.startswith("sweep: population")]
    assert len(progress) == 6
    assert "runs 12/12 done" in progress[-1] and "model-steps/s" in progress[-1] and "ETA" in progress[-1]
    assert "incl. compile" not in progress[-1]  # later populations did not compile
    assert _rows(ref_path) == (12, 12)
    # a second launch finds everything done and trains nothing
    again, lines = _sweep(TINY, ref_path)
    assert again["trained"] == 0 and again["done_before"] == 12
    assert not [l for l in lines if l.startswith("sweep: population")]


def test_resume_after_sigkill_matches_uninterrupted(reference, tmp_path, capsys):
    ref_path, _, _ = reference
    path = tmp_path / "killed.sqlite"
    cmd = [sys.executable, WORKER, f"--store={path}", *WORKER_ARGS]
    proc = subprocess.Popen(cmd + ["--sleep=0.5"], cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 150
        while _store_count(path) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # land anywhere: in training, writing or the pause
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err
    n_killed = _store_count(path)
    assert 0 < n_killed < 12, n_killed
    with Store(path, create=False) as st:
        assert st.integrity_ok()

    runner.run_sweep(Plan(TINY), str(path), dry_run=True)
    assert capsys.readouterr().out.splitlines()[0] == f"runs: total=12 done={n_killed} todo={12 - n_killed}"

    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"done={n_killed} todo={12 - n_killed}" in done.stdout  # finished runs were skipped
    assert _rows(path) == (12, 12)
    plan = Plan(TINY)
    with Store(path, create=False) as st:
        assert st.done_ids() == set(plan.ids)
    _assert_same_records(path, ref_path, plan.ids)


def test_merge_of_overlapping_shard_stores_has_no_duplicates(reference, tmp_path):
    ref_path, _, _ = reference
    plan = Plan(TINY)
    parts = [shard(plan, 3, i) for i in range(3)]
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    _sweep(list(parts[0].configs + parts[1].configs), a)   # shards 0 and 1
    _sweep(list(parts[1].configs + parts[2].configs), b)   # shards 1 and 2: shard 1 twice
    overlap = len(parts[1])
    assert overlap > 0
    dest = tmp_path / "merged.sqlite"
    counts = merge(dest, [a, b, ref_path])
    assert counts == {"sources": 3, "inserted": 12, "duplicates": overlap + 12, "conflicts": 0}
    assert _rows(dest) == (12, 12)
    _assert_same_records(dest, ref_path, plan.ids)


def test_bucket_size():
    assert [runner.bucket_size(n) for n in (1, 2, 3, 5, 16, 17)] == [1, 2, 4, 8, 16, 32]
    assert runner.bucket_size(3, n_devices=3) == 6


def test_pad_configs():
    assert runner.pad_configs([1, 2, 3], 2) == [1, 2, 3, 3]
    assert runner.pad_configs([1, 2], 2) == [1, 2]
    assert runner.pad_configs([1], 1) == [1]
    assert runner.shard_population({"a": np.zeros(3)}, jax.devices()[:1])["a"].shape == (3,)


SHARD_SCRIPT = textwrap.dedent(r"""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from sparsejax import data, mlp, train
    from sparsejax.sweep import runner
    from sparsejax.sweep.plan import Plan, grid

    assert jax.device_count() == 2, jax.devices()
    P, widths = 4, (2, 2, 2)

    @jax.jit
    def build():  # one compile instead of dozens of eager ops
        keys = jax.random.split(jax.random.PRNGKey(0), P)
        params = mlp.init_population(keys, widths)
        wm = jax.vmap(lambda k, b: mlp.random_weight_masks(k, widths, b))(keys, jnp.asarray([9, 11, 13, 14]))
        return params, mlp.masks_from_weights(wm)

    params, masks = build()
    pop = train.make_population(params, masks, jnp.asarray([0.05, 0.1, 0.2, 0.1]),
                                ["constant", "cosine", "step", "constant"], train.model_keys(0, range(P)))
    x, y = data.load("cubist_spiral")
    cfg = train.TrainConfig(widths=widths, epochs=1, chunk_steps=130)
    plain = train.train(pop, x, y, cfg)
    split = train.train(runner.shard_population(pop), x, y, cfg)
    out = {"devices": jax.device_count(),
           "sharded_over": len(split.params[0]["w"].sharding.device_set),
           "moved": float(np.max(np.abs(np.asarray(plain.params[0]["w"]) - np.asarray(pop.params[0]["w"])))),
           "max_diff": max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                           for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(split))),
           "acc_plain": train.evaluate(plain.params, x, y)["accuracy"].tolist(),
           "acc_split": train.evaluate(split.params, x, y)["accuracy"].tolist()}
    try:
        runner.shard_population(jax.tree.map(lambda a: a[:3], pop))
        out["odd_error"] = None
    except ValueError as err:
        out["odd_error"] = str(err)
    # the runner's path: 3 runs padded to 4 and sharded (when runs.run_population has 'place')
    cfgs = list(Plan(grid(method="dense", widths=[(2, 2, 2)], lr=[0.05, 0.1, 0.2], epochs=1)))
    both = runner.train_population(cfgs, chunk_steps=130)
    one = runner.train_population(cfgs, chunk_steps=130, devices=jax.devices()[:1])
    out["records"] = [len(both), len(one)]
    out["record_diff"] = max(abs(a[k] - b[k]) for a, b in zip(both, one) for k in ("accuracy", "loss"))
    out["same_ids"] = [r["run_id"] for r in both] == [r["run_id"] for r in one]
    print("RESULT " + json.dumps(out))
""")


def test_sharded_population_equals_unsharded():
    env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", SHARD_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    assert out["devices"] == 2 and out["sharded_over"] == 2
    assert out["moved"] > 1e-3 and out["max_diff"] <= 1e-5
    np.testing.assert_allclose(out["acc_split"], out["acc_plain"], atol=1e-5)
    assert out["odd_error"] and out["odd_error"].startswith("population_size: ")
    assert out["records"] == [3, 3] and out["same_ids"]
    assert out["record_diff"] <= 1e-5


# ----------------------------------------------------------------------------- flags and CLI

def test_parse_lists():
    assert sweep_flags.parse_ints("budgets", "15, 16,20..22") == [15, 16, 20, 21, 22]
    assert sweep_flags.parse_floats("--lrs", "0.05,0.1") == [0.05, 0.1]
    assert sweep_flags.parse_strs("methods", "gmp,snip", ["gmp", "snip", "lth"]) == ["gmp", "snip"]
    assert sweep_flags.parse_ints("seeds", ["1", "2"]) == [1, 2]  # a DEFINE_list value
    cases = [
        (lambda: sweep_flags.parse_ints("budgets", "15,x"), r"^--budgets: 'x' is not an integer"),
        (lambda: sweep_flags.parse_ints("budgets", "15,,16"), r"^--budgets: empty item"),
        (lambda: sweep_flags.parse_ints("budgets", "9..3"), r"^--budgets: empty range"),
        (lambda: sweep_flags.parse_ints("width", "0,2", min_value=1), r"^--width: every value must be >= 1"),
        (lambda: sweep_flags.parse_floats("lrs", "0.1,nan"), r"^--lrs: 'nan' is not finite"),
        (lambda: sweep_flags.parse_floats("lrs", "0.1,abc"), r"^--lrs: 'abc' is not a number"),
        (lambda: sweep_flags.parse_floats("lrs", "0.1,0", positive=True), r"^--lrs: every value must be > 0"),
        (lambda: sweep_flags.parse_strs("methods", "gmp,foo", ["gmp", "snip"]),
         r"^--methods: unknown 'foo'; allowed: gmp, snip$"),
        (lambda: sweep_flags.parse_strs("methods", None), r"^--methods: required"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()


def _flag_values(*argv: str) -> absl_flags.FlagValues:
    fv = absl_flags.FlagValues()
    sweep_flags.define_sweep_flags(flag_values=fv)
    sweep_flags.define_sweep_flags(flag_values=fv)  # idempotent
    absl_flags.DEFINE_string("lrs", "0.1", "lrs", flag_values=fv)
    absl_flags.DEFINE_integer("epochs", 50, "epochs", flag_values=fv)
    fv(["prog", *argv])
    return fv


def test_sweep_args_and_presets():
    fv = _flag_values("--store=s.sqlite", "--preset=small", "--epochs=3", "--num_shards=4",
                      "--shard_index=3")
    args = sweep_flags.sweep_args(fv)
    assert (args.store, args.num_shards, args.shard_index, args.population_size) == ("s.sqlite", 4, 3, 1024)
    presets = {"small": {"lrs": "0.05,0.2", "epochs": 10, "extra": 1}}
    values = {"lrs": fv.lrs, "epochs": fv.epochs}
    given = lambda name: sweep_flags.explicitly_given(name, fv)  # noqa: E731
    assert sweep_flags.apply_preset(presets, "small", values, given) == {"lrs": "0.05,0.2", "epochs": 3, "extra": 1}
    assert sweep_flags.apply_preset(presets, None, values, given) == values
    with pytest.raises(ValueError, match=r"^--preset: unknown 'big'; allowed: small$"):
        sweep_flags.apply_preset(presets, "big", values, given)
    for argv, pattern in ((["--num_shards=0"], r"^--num_shards: "),
                          (["--num_shards=2", "--shard_index=2"], r"^--shard_index: must be in \[0, 2\)"),
                          (["--population_size=0"], r"^--population_size: "),
                          (["--chunk_steps=0"], r"^--chunk_steps: "),
                          ([], r"^--store: required")):
        with pytest.raises(ValueError, match=pattern):
            sweep_flags.sweep_args(_flag_values(*argv))
    assert sweep_flags.sweep_args(_flag_values("--dry_run")).store is None


def test_main_wrapper_fails_with_one_line(capsys):
    def main(argv):
        raise ValueError("lr: must be > 0\n  got -1")
    with pytest.raises(SystemExit) as exit_info:
        sweep_flags.main_wrapper(main)(["prog"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: lr: must be > 0 got -1\n"
    assert sweep_flags.main_wrapper(lambda argv: 0)(["prog"]) == 0


def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, WORKER, *args], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=120)


def test_cli_errors_are_one_line_status_2_and_write_nothing(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("junk")
    before = _files(tmp_path)
    store = f"--store={tmp_path / 's.sqlite'}"
    cases = [
        ([store, "--preset=tiny", "--lrs=0"], "error: lr: must be > 0"),
        ([store, "--preset=tiny", "--schedules=constant,bogus"], "error: --schedules: unknown 'bogus'"),
        ([store, "--methods=bogus"], "error: method: unknown 'bogus'"),
        ([store, "--num_shards=2", "--shard_index=2"], "error: --shard_index: must be in [0, 2)"),
        ([store, "--num_shards=x"], "error: flag --num_shards=x"),
        ([store, "--preset=huge"], "error: --preset: unknown 'huge'"),
        ([f"--store={junk}", "--preset=tiny"], "error: store: "),
    ]
    for argv, start in cases:
        proc = _cli(tmp_path, *argv)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(start), (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert _files(tmp_path) == before


def test_cli_dry_run(tmp_path):
    proc = _cli(tmp_path, f"--store={tmp_path / 's.sqlite'}", "--preset=tiny", "--dry_run",
                "--num_shards=3", "--shard_index=1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip().splitlines()
    assert out[0] == "runs: total=4 done=0 todo=4" and out[1].startswith("cost: model-steps total=1560")
    assert len(out) == 3 and out[2].startswith("predicted: ") and os.listdir(tmp_path) == []


def test_relieve_memory_maps_clears_compiled_programs_only_above_the_headroom(monkeypatch):
    """A long sweep keeps clear of vm.max_map_count: above the headroom JAX's compiled programs
    are dropped (and recompile on demand with the same numbers), below it nothing happens."""
    import jax
    import jax.numpy as jnp

    from sparsejax.sweep import runner
    f = jax.jit(lambda x: x * 3.0 + 1.0)
    before = f(jnp.arange(4.0))
    lines = []
    monkeypatch.setattr(runner, "_map_counts", lambda: (100, 1000))
    assert not runner.relieve_memory_maps(lines.append) and lines == []
    cleared = []
    monkeypatch.setattr(runner.jax, "clear_caches", lambda: cleared.append(True))
    monkeypatch.setattr(runner, "_map_counts", lambda: (600, 1000))
    assert runner.relieve_memory_maps(lines.append) and cleared == [True]
    assert "600" in lines[0] and "1,000" in lines[0]
    monkeypatch.undo()
    jax.clear_caches()  # the real thing: the program recompiles and gives the same numbers
    assert (f(jnp.arange(4.0)) == before).all()
    counts = runner._map_counts()
    assert counts is None or (counts[0] > 0 and counts[1] > 0)
