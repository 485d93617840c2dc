"""Fault injection on the results store, done for real (issue 12, items 1-5).

SIGKILL of a real sweep subprocess then a deleted ``-wal`` file; a read-only copy; flipped
bytes in a stored accuracy and in a params blob; a full disk (SQLITE_FULL from SQLite itself,
via ``max_page_count``) while a store is created; half-created files; merges with a forged id
and a conflict; a resume on another numeric path. Stores are tiny: synthetic records where
training is not the point, else dense width-2 runs of one epoch (one compiled program).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from sparsejax.sweep import numeric_path as numeric_path_lib
from sparsejax.sweep import runner
from sparsejax.sweep import store as store_lib
from sparsejax.sweep.identity import run_id
from sparsejax.sweep.plan import Plan, grid
from sparsejax.sweep.store import DamagedRecordError, Store, StoreError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "sweep_worker.py")
PINNED = "test-pinned"  # a code version that cannot change between a kill and a resume
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO,
       numeric_path_lib.CODE_VERSION_ENV: PINNED}
POP, CHUNK = 2, 130
WORKER_ARGS = ["--preset=tiny", f"--population_size={POP}", f"--chunk_steps={CHUNK}"]
TINY = grid(method="dense", widths=[(2, 2, 2)], lr=[0.05, 0.1, 0.2],
            schedule=["constant", "cosine"], seed=[0, 1], epochs=1)  # sweep_worker's "tiny"


def make_record(i: int, **extra) -> dict:
    """A small synthetic record with blobs; its id depends on ``i``."""
    rng = np.random.default_rng(i)
    rec = {"config": {"method": "snip", "widths": (3, 3, 3), "budget": 20, "seed": i},
           "accuracy": 0.5 + i / 1000, "loss": 0.7, "weight_nnz": 20, "model_nnz": 27,
           "diverged": False, "metrics": {"effective_nnz": 18},
           "numeric_path": {"backend": "cpu", "kernel": "xla", "code": "x"},
           "masks": ({"w": rng.random((2, 3)) < 0.5, "b": np.ones(3, bool)},),
           "params": ({"w": rng.normal(size=(2, 3)).astype(np.float32), "b": np.zeros(3, np.float32)},)}
    rec.update(extra)
    return rec


def _listing(folder) -> dict[str, str]:
    """{name: sha256} of every file in ``folder``: proves nothing was created or changed."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh:
            out[name] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.store", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _flip(path, needle: bytes, offset: int, mask: int = 0x01) -> None:
    """XOR one byte at ``offset`` inside the single occurrence of ``needle`` in the file."""
    data = bytearray(open(path, "rb").read())
    assert data.count(needle) == 1, "the bytes to damage must occur exactly once"
    data[data.index(needle) + offset] ^= mask
    with open(path, "wb") as fh:
        fh.write(data)


# ----------------------------------------------------------------------------- kill -9, lost WAL

def test_sigkill_then_deleted_wal_keeps_every_committed_population(tmp_path, monkeypatch):
    """A sweep killed with SIGKILL, its -wal and -shm files deleted: every population it
    reported committed is still in the main file, which is a valid store; resuming (here in
    process, to spare a second launch) finishes the sweep."""
    path = tmp_path / "killed.sqlite"
    cmd = [sys.executable, WORKER, f"--store={path}", *WORKER_ARGS]
    proc = subprocess.Popen(cmd + ["--sleep=30"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    reported = 0
    try:
        deadline = time.time() + 240
        for line in proc.stdout:  # the worker prints a population's line after its commit
            if line.startswith("sweep: population"):
                reported = int(line.split("runs ")[1].split("/")[0])
                if reported >= 2 * POP:
                    break
            assert time.time() < deadline, "the worker did not commit two populations in time"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # lands in the 30 s pause after a commit
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL and reported == 2 * POP
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    with Store(path, create=False) as st:
        assert st.integrity_ok() and st.count() == reported
        assert len(st.done_ids()) == reported
        assert store_lib.verify(path)["ok"]
    monkeypatch.setenv(numeric_path_lib.CODE_VERSION_ENV, PINNED)
    summary = runner.run_sweep(Plan(TINY), str(path), population_size=POP, chunk_steps=CHUNK,
                               log=lambda m: None)
    assert summary["done_before"] == reported and summary["trained"] == 12 - reported
    with Store(path, create=False) as st:
        assert st.done_ids() == set(Plan(TINY).ids)
        assert {r["numeric_path"]["code"] for r in st.iter_records()} == {PINNED}


def test_each_committed_write_is_checkpointed_into_the_main_file(tmp_path):
    """While the writer is still open, a copy of the main file alone (no -wal) holds every
    committed chunk."""
    path, copy = tmp_path / "s.sqlite", tmp_path / "copy" / "s.sqlite"
    copy.parent.mkdir()
    with Store(path) as st:
        st.write_records([make_record(i) for i in range(3)])
        st.write_records([make_record(i) for i in range(3, 5)])
        assert os.path.exists(f"{path}-wal")  # the writer is live
        shutil.copy(path, copy)
    with Store(copy, create=False) as st:
        assert st.count() == 5 and st.integrity_ok()


# ----------------------------------------------------------------------------- creation

def test_full_disk_at_creation_leaves_no_store(tmp_path, monkeypatch):
    """SQLite's own SQLITE_FULL (max_page_count=1 on the temporary file) while a store is being
    created: one clear error, nothing left at the path or next to it; a retry then works."""
    real_connect = sqlite3.connect

    def full_disk(database, *args, **kw):
        conn = real_connect(database, *args, **kw)
        if str(database).endswith(".creating"):
            conn.execute("PRAGMA max_page_count=1")
        return conn

    monkeypatch.setattr(sqlite3, "connect", full_disk)
    path = tmp_path / "s.sqlite"
    with pytest.raises(StoreError, match=r"cannot create the store \(database or disk is full\); "
                                         r"nothing was created"):
        Store(path)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"^store: .*disk is full"):
        runner.run_sweep(Plan(TINY[:1]), str(path))
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    with Store(path) as st:
        assert st.write_records([make_record(0)]) == 1
    assert os.listdir(tmp_path) == ["s.sqlite"]


def _header_only(path) -> None:
    """The 4,096-byte file SQLite leaves when a creation dies after the WAL header write."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    assert os.path.getsize(path) == 4096


@pytest.mark.parametrize("kind", ["zero-bytes", "header-only"])
def test_half_created_store_is_reported_and_recreated(tmp_path, kind, capsys):
    path = tmp_path / "s.sqlite"
    if kind == "zero-bytes":
        path.write_bytes(b"")
    else:
        _header_only(path)
    before = _listing(tmp_path)
    with pytest.raises(StoreError, match="holds no records|no tables, so no records"):
        Store(path, create=False)
    res = _cli("export", f"--store={path}")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "no records" in res.stderr and "--store" in res.stderr
    runner.run_sweep(Plan(TINY), str(path), dry_run=True)  # a blank store counts as empty
    assert capsys.readouterr().out.startswith("runs: total=12 done=0 todo=12")
    assert _listing(tmp_path) == before
    with Store(path) as st:  # a writer recreates the schema in it
        assert st.write_records([make_record(1)]) == 1
    with Store(path, create=False) as st:
        assert st.count() == 1 and st.integrity_ok()


# ----------------------------------------------------------------------------- read-only

def test_read_only_copy_is_readable_and_nothing_is_created(tmp_path, capsys):
    """chmod -w on the file and its folder (root ignores it, so the store honours the mode
    bits): dry run, export, verify, get/records/iter and merge inputs all read it with SQLite
    mode=ro&immutable=1 and create no file next to it."""
    src = tmp_path / "src.sqlite"
    recs = [make_record(i, config={"method": "dense", "widths": (2, 2, 2), "seed": i, "epochs": 1})
            for i in range(4)]
    with Store(src) as st:
        st.write_records(recs)
    ro = tmp_path / "ro"
    ro.mkdir()
    path = ro / "s.sqlite"
    shutil.copy(src, path)
    os.chmod(path, 0o444)
    os.chmod(ro, 0o555)
    try:
        before = _listing(ro)
        ids = [run_id(r["config"]) for r in recs]
        with Store(path, create=False) as st:
            assert st.count() == 4 and st.done_ids() == set(ids)
            assert st.get(ids[0])["params"]["0/w"].shape == (2, 3)
            assert len(st.records(ids[:2])) == 2 and len(list(st.iter_records(with_blobs=True))) == 4
            with pytest.raises(StoreError, match="read-only"):
                st.set_meta("note", "x")
        plan = Plan(grid(method="dense", widths=[(2, 2, 2)], seed=[0, 1, 9], epochs=1))
        runner.run_sweep(plan, str(path), dry_run=True)
        assert capsys.readouterr().out.splitlines()[0] == "runs: total=3 done=2 todo=1"
        assert store_lib.export(path, tmp_path / "t.csv") == 4
        assert store_lib.verify(path)["ok"]
        counts = store_lib.merge(tmp_path / "merged.sqlite", [path])
        assert counts["inserted"] == 4 and counts.ok
        res = _cli("export", f"--store={path}", "--format=jsonl")
        assert res.returncode == 0 and len(res.stdout.splitlines()) == 4, res.stderr
        assert _listing(ro) == before
    finally:
        os.chmod(ro, 0o755)
        os.chmod(path, 0o644)


# ----------------------------------------------------------------------------- bit rot

def _rotten_pair(tmp_path) -> tuple:
    """A store of 3 records; copies with a flipped bit in record 1's accuracy and with a
    flipped byte in record 2's params blob. Returns (clean, acc_copy, blob_copy, ids)."""
    recs = [make_record(i) for i in range(3)]
    recs[1]["accuracy"] = 0.123456789012345  # a value whose 8 bytes occur once in the file
    clean = tmp_path / "clean.sqlite"
    with Store(clean) as st:
        st.write_records(recs)
    ids = [run_id(r["config"]) for r in recs]
    acc, blob = tmp_path / "acc.sqlite", tmp_path / "blob.sqlite"
    shutil.copy(clean, acc)
    shutil.copy(clean, blob)
    _flip(acc, struct.pack(">d", recs[1]["accuracy"]), 1, 0x10)  # an exponent bit
    params = store_lib.record_to_row(recs[2])[-1]
    _flip(blob, params, len(params) - 6)  # inside the zlib payload
    return clean, acc, blob, ids


def test_flipped_bytes_are_detected_naming_the_run(tmp_path, capsys):
    clean, acc, blob, ids = _rotten_pair(tmp_path)
    with Store(acc, create=False) as st:
        assert st.get(ids[0]) is not None  # other runs still read
        with pytest.raises(DamagedRecordError, match=rf"run {ids[1]}: stored record is damaged "
                                                      r"\(checksum mismatch in its numbers"):
            st.get(ids[1])
        with pytest.raises(DamagedRecordError, match=ids[1]):
            list(st.iter_records())
        with pytest.raises(DamagedRecordError, match=ids[1]):
            st.done_ids()
    with pytest.raises(ValueError, match=rf"^store: .*run {ids[1]}: stored record is damaged"):
        runner.run_sweep(Plan([make_record(i)["config"] for i in range(3)]), str(acc), dry_run=True)
    with Store(blob, create=False) as st:
        assert st.records([ids[2]])[0]["accuracy"] == 0.502  # numbers alone still verify
        with pytest.raises(DamagedRecordError, match=rf"run {ids[2]}: .*masks or params"):
            st.get(ids[2])
    for damaged, rid in ((acc, ids[1]), (blob, ids[2])):
        report = store_lib.verify(damaged)
        assert not report["ok"] and [r for r, _ in report["damaged"]] == [rid]
        res = _cli("verify", f"--store={damaged}")
        assert res.returncode == 1, res.stderr
        assert res.stdout.startswith("verify: DAMAGED: 3 records, 1 damaged") and rid in res.stderr
    res = _cli("export", f"--store={acc}", f"--out={tmp_path / 'x.csv'}")  # export has no blobs
    assert res.returncode == 1 and ids[1] in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.csv").exists()
    res = _cli("verify", f"--store={clean}")
    assert res.returncode == 0 and res.stdout.startswith("verify: ok: 3 records, 0 damaged")


def test_schema_1_store_is_read_unverified_and_migrated_on_write(tmp_path):
    """A store written before checksums: read as it is (verify says it has none), then the
    first write open adds the columns and checksums every row."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(store_lib._SCHEMA.replace(",\n    numeric_path TEXT,\n    checksum TEXT", ""))
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("magic", store_lib.MAGIC), ("schema_version", "1")])
    cols = [c for c in store_lib.COLUMNS if c != "numeric_path"]
    for i in range(2):
        row = dict(zip(store_lib.COLUMNS, store_lib.record_to_row(make_record(i))))
        conn.execute(f"INSERT INTO runs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                     [row[c] for c in cols])
    conn.commit()
    conn.close()
    report = store_lib.verify(path)
    assert report["ok"] and report["unchecksummed"] == 2
    with Store(path, create=False) as st:
        assert not st.checksummed and st.get(run_id(make_record(0)["config"]))["numeric_path"] is None
    with Store(path) as st:
        assert st.checksummed and st.get_meta("schema_version") == str(store_lib.STORE_SCHEMA_VERSION)
    report = store_lib.verify(path)
    assert report["ok"] and report["unchecksummed"] == 0 and report["records"] == 2


# ----------------------------------------------------------------------------- merge

def _forge(path, rec: dict, fake_id: str) -> None:
    """Insert ``rec`` under ``fake_id`` with a valid checksum (a forged, not a rotten, row)."""
    row = (fake_id, *store_lib.record_to_row(rec)[1:])
    with Store(path) as st:
        st._insert_rows([(*row, store_lib.row_checksum(row))])


def test_merge_rejects_forged_ids_reports_conflicts_and_exits_1(tmp_path):
    dest, src = tmp_path / "dest.sqlite", tmp_path / "src.sqlite"
    with Store(dest) as st:
        st.write_records([make_record(0), make_record(1)])
    with Store(src) as st:
        st.write_records([make_record(1, accuracy=0.99), make_record(2), make_record(3)])
    forged = "0123456789abcdef"
    _forge(src, make_record(4), forged)
    report = store_lib.verify(src)
    assert [r for r, _ in report["damaged"]] == [forged]
    assert "id does not match its config" in report["damaged"][0][1][0]

    copy = tmp_path / "dest-copy.sqlite"
    shutil.copy(dest, copy)
    counts = store_lib.merge(copy, [src])
    assert counts == {"sources": 1, "inserted": 2, "duplicates": 0, "conflicts": 1}
    assert counts.rejected == 1 and not counts.ok
    assert any(forged in p and "rejected" in p for p in counts.problems)
    assert any("conflict in accuracy" in p and "0.501 kept, 0.99 dropped" in p for p in counts.problems)

    res = _cli("merge", f"--store={dest}", f"--inputs={src}")
    assert res.returncode == 1, res.stderr
    assert json.loads(res.stdout) == {"sources": 1, "inserted": 2, "duplicates": 0, "conflicts": 1,
                                      "rejected": 1}
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("merge: 1 conflicting runs") and "1 rows rejected" in last
    with Store(dest, create=False) as st:
        assert forged not in st and st.count() == 4
        assert st.get(run_id(make_record(1)["config"]))["accuracy"] == 0.501  # the first copy
    res = _cli("merge", f"--store={tmp_path / 'clean.sqlite'}", f"--inputs={dest}")
    assert res.returncode == 0 and json.loads(res.stdout)["inserted"] == 4


# ----------------------------------------------------------------------------- numeric path

def test_numeric_path_mismatch_is_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    path = tmp_path / "s.sqlite"
    monkeypatch.setenv(numeric_path_lib.CODE_VERSION_ENV, "code-A")
    runner.run_sweep(Plan(TINY[:2]), str(path), population_size=POP, chunk_steps=CHUNK, log=lambda m: None)
    with Store(path, create=False) as st:
        meta = st.numeric_path()
        recs = list(st.iter_records())
    assert meta["code"] == "code-A" and meta["backend"] == "cpu" and meta["compaction"] == numeric_path_lib.COMPACTION_RULE
    assert meta["kernel"] == numeric_path_lib.kernel_rule()
    kernel = numeric_path_lib.record_path((2, 2, 2))["kernel"]
    assert {r["numeric_path"]["kernel"] for r in recs} == {kernel} and kernel in ("fused", "xla")
    assert all("differs_from_store" not in r["numeric_path"] for r in recs)

    before = _listing(tmp_path)
    monkeypatch.setenv(numeric_path_lib.CODE_VERSION_ENV, "code-B")
    with pytest.raises(ValueError, match=r"^numeric path: store .* \(code: 'code-A' -> 'code-B'\)"):
        runner.run_sweep(Plan(TINY[:4]), str(path), population_size=POP, chunk_steps=CHUNK)
    runner.run_sweep(Plan(TINY[:4]), str(path), dry_run=True)
    assert "a launch would be refused: numeric path" in capsys.readouterr().out
    env = {**ENV, numeric_path_lib.CODE_VERSION_ENV: "code-B"}
    res = subprocess.run([sys.executable, WORKER, f"--store={path}", *WORKER_ARGS], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: numeric path: ")
    assert "--allow_numeric_path_change" in lines[0]
    assert _listing(tmp_path) == before  # nothing written

    runner.run_sweep(Plan(TINY[:4]), str(path), population_size=POP, chunk_steps=CHUNK,
                     log=lambda m: None, allow_numeric_path_change=True)
    with Store(path, create=False) as st:
        assert st.numeric_path() == meta  # the store keeps its first path
        recs = {r["run_id"]: r for r in st.iter_records()}
        summary = store_lib.numeric_paths(st)
    new = [recs[rid] for rid in Plan(TINY[2:4]).ids]
    assert all(r["numeric_path"]["code"] == "code-B" and r["numeric_path"]["differs_from_store"]
               for r in new)
    assert summary["meta"] == meta and sorted(g["runs"] for g in summary["records"]) == [2, 2]
    out = tmp_path / "t.csv"
    assert store_lib.export(path, out) == 4
    header = out.read_text().splitlines()[0].split(",")
    for col in ("numeric_path.backend", "numeric_path.kernel", "numeric_path.jax",
                "numeric_path.jaxlib", "numeric_path.numpy", "numeric_path.code",
                "numeric_path.differs_from_store"):
        assert col in header


@pytest.mark.parametrize("machine,flags,level", [
    ("x86_64", {"sse4_2", "popcnt", "ssse3", "avx", "avx2", "fma", "bmi2", "avx512f", "avx512bw",
                "avx512cd", "avx512dq", "avx512vl"}, "x86-64-v4"),
    ("x86_64", {"sse4_2", "popcnt", "ssse3", "avx", "avx2", "fma", "bmi2", "avx512f"}, "x86-64-v3"),
    ("x86_64", {"sse4_2", "popcnt", "ssse3", "avx"}, "x86-64-v2"),
    ("AMD64", {"sse2"}, "x86-64"),
    ("aarch64", {"fp", "asimd", "sve", "sve2"}, "aarch64+sve2"),
    ("arm64", {"fp", "asimd"}, "aarch64"),
    ("riscv64", set(), "riscv64"),
])
def test_cpu_isa_level(machine, flags, level):
    assert numeric_path_lib.isa_level(machine, flags) == level


def test_a_store_of_another_cpu_isa_is_refused_and_the_model_name_is_not_compared(tmp_path, monkeypatch):
    """The same config sums in another order on another vector ISA (XLA and the fused kernel
    compile for the host), so the ISA is part of the path; the CPU's name is only recorded."""
    path = str(tmp_path / "s.sqlite")
    isa, model = numeric_path_lib.cpu()
    with Store(path) as st:
        st.claim_numeric_path(numeric_path_lib.store_path())
        assert st.numeric_path()["cpu_isa"] == isa and st.numeric_path()["cpu_model"] == model
    monkeypatch.setattr(numeric_path_lib, "cpu", lambda: (isa, "another model"))
    assert runner.check_numeric_path(path, allow_change=False)[1] is False
    monkeypatch.setattr(numeric_path_lib, "cpu", lambda: ("x86-64-v1" if isa != "x86-64-v1" else "x86-64-v2", model))
    with pytest.raises(ValueError, match=r"cpu_isa: "):
        runner.check_numeric_path(path, allow_change=False)
    assert runner.check_numeric_path(path, allow_change=True)[1] is True
    here = numeric_path_lib.store_path()
    old = {k: v for k, v in here.items() if k not in ("cpu_isa", "cpu_model")}  # written before the key existed
    assert numeric_path_lib.differences(old, here) == [f"cpu_isa: None -> {here['cpu_isa']!r}"]


def test_a_store_of_another_run_config_schema_is_refused_untouched(tmp_path):
    """Issue 11: the store records the run-config schema its ids were hashed with; under
    another schema an id names another computation, so a resume is refused before any write."""
    import sqlite3

    from sparsejax.sweep import identity, numeric_path, runner
    from sparsejax.sweep.store import Store
    path = str(tmp_path / "s.sqlite")
    with Store(path) as st:
        st.claim_numeric_path(numeric_path.store_path())
        assert st.config_schema() == str(identity.SCHEMA_VERSION)
    runner.check_numeric_path(path, allow_change=False)  # this schema: accepted
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='0' WHERE key='config_schema'")
    conn.commit()
    conn.close()
    before = open(path, "rb").read()
    with pytest.raises(ValueError, match="run-config schema 0"):
        runner.check_numeric_path(path, allow_change=True)  # no flag overrides it
    assert open(path, "rb").read() == before
