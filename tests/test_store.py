"""Run identity, the SQLite results store, merge/export and the ``experiments.store`` launcher."""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sparsejax.sweep import identity
from sparsejax.sweep.identity import DEFAULTS, canonical, run_id, run_seed
from sparsejax.sweep.store import (Store, StoreError, decode_arrays, encode_arrays, export,
                                   merge)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_record(i: int, chunk: int = 0, **extra) -> dict:
    """A small record with blobs; its config (hence id) depends on (chunk, i)."""
    rng = np.random.default_rng(1000 * chunk + i)
    config = {"method": "snip", "widths": (3, 3, 3), "budget": 20 + i % 5, "lr": 0.05,
              "seed": i, "chunk": chunk}
    params = ({"w": rng.normal(size=(2, 3)).astype(np.float32), "b": np.zeros(3, np.float32)},
              {"w": rng.normal(size=(3, 1)).astype(np.float32), "b": np.ones(1, np.float32)})
    masks = ({"w": rng.random((2, 3)) < 0.5, "b": np.ones(3, bool)},
             {"w": (rng.random((3, 1)) < 0.5).astype(np.float32), "b": np.ones(1, np.float32)})
    rec = {"config": config, "accuracy": 0.5 + i / 1000, "loss": 0.7 - i / 1000,
           "weight_nnz": 20 + i % 5, "model_nnz": 27 + i % 5, "diverged": False,
           "train_seconds": 1.5, "compile_seconds": 0.25,
           "metrics": {"effective_nnz": 18, "active_units": [3, 2, 3]},
           "masks": masks, "params": params}
    rec.update(extra)
    return rec


# ----------------------------------------------------------------------------- identity

def test_id_independent_of_key_order_and_spelled_defaults():
    a = {"method": "gmp", "budget": 40, "lr": 0.2, "widths": (16, 16, 16)}
    b = {"lr": 0.2, "budget": 40, "method": "gmp"}
    full = {**DEFAULTS, **b}
    assert run_id(a) == run_id(b) == run_id(full)
    assert canonical(a) == canonical(full)
    assert '"_schema":1' in canonical(a)
    assert "widths" not in canonical(a) and "epochs" not in canonical(full)


def test_different_lr_different_id():
    base = {"method": "gmp", "budget": 40}
    ids = {run_id({**base, "lr": lr}) for lr in (0.05, 0.1, 0.2)}
    assert len(ids) == 3
    assert run_id({**base, "lr": 0.1}) == run_id(base)  # 0.1 is the default


def test_canonical_normalises_numpy_types():
    plain = {"method": "lth", "widths": [3, 4, 5], "lr": 0.2, "epochs": 10, "budget": 30}
    numpy = {"method": np.str_("lth"), "widths": np.array([3, 4, 5]), "lr": np.float32(0.2),
             "epochs": np.int64(10), "budget": np.int32(30)}
    assert canonical(numpy) == canonical(plain)
    assert '"lr":0.2' in canonical(numpy)  # float32 written by its shortest repr
    assert run_id({"epochs": 50.0, "lr": 1}) == run_id({"lr": 1.0})  # coerced to default types
    assert json.loads(canonical({"weight_decay": 1e-4}))["weight_decay"] == 1e-4


def test_mask_in_config_becomes_compact_string():
    mask = np.eye(3, dtype=np.float32)
    text = json.loads(canonical({"mask": mask}))["mask"]
    assert text == identity.encode_mask(mask) and text.startswith("mask:3x3:")
    np.testing.assert_array_equal(identity.decode_mask(text), mask.astype(bool))
    assert run_id({"mask": mask}) == run_id({"mask": mask.astype(bool)})
    assert run_id({"mask": mask}) != run_id({"mask": 1 - mask})
    per_layer = {"mask": (np.ones((2, 3)), np.zeros((3, 3), np.int8))}
    assert json.loads(canonical(per_layer))["mask"] == ["mask:2x3:fc", "mask:3x3:0000"]


def test_run_seed_is_uint32_from_id():
    rid = run_id({"method": "rigl"})
    assert len(rid) == 16 and int(rid, 16) >= 0
    seed = run_seed(rid)
    assert 0 <= seed < 2**32 and seed == int(rid[:8], 16)
    with pytest.raises(ValueError):
        run_seed("xyz")


def test_reserved_and_non_finite_rejected():
    with pytest.raises(ValueError):
        canonical({"_schema": 2})
    with pytest.raises(ValueError):
        canonical({"lr": float("nan")})


# ----------------------------------------------------------------------------- store

def test_encode_decode_arrays_round_trip():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "m": np.array([[1, 0, 1]], bool),
              "i": np.array([-1, 7], np.int64), "s": np.float32(2.5)}
    blob = encode_arrays(arrays)
    assert blob == encode_arrays(arrays)  # deterministic
    out = decode_arrays(blob)
    assert list(out) == list(arrays)
    for key in arrays:
        np.testing.assert_array_equal(out[key], arrays[key])
        assert out[key].dtype == np.asarray(arrays[key]).dtype
    assert len(encode_arrays({"m": np.ones((64, 64), bool)})) < 200  # bits, compressed


def test_write_read_round_trip_with_blobs(tmp_path):
    rec = make_record(3, effective_flag=True)
    with Store(tmp_path / "s.db") as st:
        assert st.write_records([rec]) == 1
        rid = run_id(rec["config"])
        got = st.get(rid)
        assert st.count() == 1 and rid in st and st.done_ids() == {rid}
    assert got["status"] == "done" and got["accuracy"] == rec["accuracy"]
    assert got["weight_nnz"] == 23 and got["diverged"] is False
    assert got["config"]["widths"] == [3, 3, 3] and got["config"]["chunk"] == 0
    assert got["metrics"] == {"effective_nnz": 18, "active_units": [3, 2, 3], "effective_flag": True}
    np.testing.assert_array_equal(got["params"]["0/w"], rec["params"][0]["w"])
    assert got["params"]["1/b"].dtype == np.float32
    np.testing.assert_array_equal(got["masks"]["1/w"], rec["masks"][1]["w"].astype(bool))
    assert got["masks"]["0/w"].dtype == np.bool_
    assert got["finished_at"]


def test_insert_or_ignore_never_duplicates(tmp_path):
    with Store(tmp_path / "s.db") as st:
        recs = [make_record(i) for i in range(5)]
        assert st.write_records(recs) == 5
        changed = make_record(0, accuracy=0.01)
        assert st.write_records([changed, make_record(5)]) == 1
        assert st.count() == 6
        assert st.get(run_id(recs[0]["config"]))["accuracy"] == recs[0]["accuracy"]
        ids = [run_id(r["config"]) for r in recs]
        assert st.done_ids(ids + ["0" * 16]) == set(ids)
        assert [r["run_id"] for r in st.iter_records()][:5] == ids
        assert "params" not in next(st.iter_records())
        assert "params" in next(st.iter_records(with_blobs=True))


def test_two_store_objects_share_one_file(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as a, Store(path) as b:
        a.write_records([make_record(0)])
        assert b.count() == 1
        b.write_records([make_record(1), make_record(0)])
        assert a.count() == 2 and a.done_ids() == b.done_ids()
        a.set_meta("note", "hello")
        assert b.get_meta("note") == "hello"
        assert b.get_meta("magic") == "sparsejax-sweep-store"
        assert b.get_meta("schema_version") == "2" and b.get_meta("created_at")


def _bytes(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_not_a_store_is_rejected_and_left_untouched(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    plain = tmp_path / "plain.sqlite"
    conn = sqlite3.connect(plain)
    conn.execute("CREATE TABLE other (x INTEGER)")
    conn.execute("INSERT INTO other VALUES (1)")
    conn.commit()
    conn.close()
    no_magic = tmp_path / "no_magic.sqlite"
    conn = sqlite3.connect(no_magic)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()
    for path in (junk, plain, no_magic):
        before = _bytes(path)
        with pytest.raises(StoreError, match="not a sweep store"):
            Store(path)
        with pytest.raises(StoreError):
            Store(path, create=False)
        assert _bytes(path) == before
        assert sorted(os.listdir(tmp_path)) == ["junk.bin", "no_magic.sqlite", "plain.sqlite"]
    newer = tmp_path / "newer.db"
    with Store(newer) as st:
        st._conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(newer)
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_merge_overlapping_stores(tmp_path):
    a, b, dest = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "dest.db"
    with Store(a) as st:
        st.write_records([make_record(i) for i in range(0, 6)])
    with Store(b) as st:
        st.write_records([make_record(i) for i in range(4, 10)])  # 4, 5 overlap
        st.write_records([make_record(20, accuracy=0.99)])
    with Store(dest) as st:
        st.write_records([make_record(20, accuracy=0.11)])  # conflicting numbers
    counts = merge(dest, [a, b])
    assert counts == {"sources": 2, "inserted": 10, "duplicates": 2, "conflicts": 1}
    with Store(dest) as st:
        assert st.count() == 11
        assert st.get(run_id(make_record(20)["config"]))["accuracy"] == 0.11  # existing kept
        assert st.get(run_id(make_record(7)["config"]))["params"]["0/w"].shape == (2, 3)
    assert merge(dest, [a, b])["inserted"] == 0
    with pytest.raises(StoreError):
        merge(tmp_path / "new.db", [a, tmp_path / "nope.db"])
    assert not (tmp_path / "new.db").exists()


def _filled_store(path, n: int = 4) -> list[str]:
    with Store(path) as st:
        recs = [make_record(i) for i in range(n)]
        recs[1]["metrics"] = {"extra": 1.5}
        recs[2]["diverged"] = True
        recs[2]["loss"] = float("nan")
        st.write_records(recs)
    return [run_id(r["config"]) for r in recs]


def test_export_csv_and_jsonl(tmp_path):
    ids = _filled_store(tmp_path / "s.db")
    assert export(tmp_path / "s.db", tmp_path / "t.csv", "csv") == 4
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run_id"] for r in rows] == ids
    cols = list(rows[0])
    assert cols[:2] == ["run_id", "status"]
    for col in ("config.method", "config.lr", "config.chunk", "accuracy", "model_nnz",
                "metrics.effective_nnz", "metrics.active_units", "metrics.extra"):
        assert col in cols
    assert "masks" not in cols and "params" not in cols
    assert rows[0]["config.widths"] == "[3,3,3]" and rows[0]["config.lr"] == "0.05"
    assert rows[1]["metrics.extra"] == "1.5" and rows[1]["metrics.effective_nnz"] == ""
    assert rows[2]["diverged"] == "1" and rows[2]["loss"] == ""

    assert export(tmp_path / "s.db", tmp_path / "t.jsonl", "jsonl") == 4
    with open(tmp_path / "t.jsonl") as fh:
        lines = [json.loads(line) for line in fh]
    assert [ln["run_id"] for ln in lines] == ids
    assert lines[0]["config.widths"] == [3, 3, 3] and lines[0]["metrics.active_units"] == [3, 2, 3]
    assert lines[0]["accuracy"] == 0.5 and lines[1]["metrics.extra"] == 1.5
    assert set(lines[0]) == set(cols)
    with pytest.raises(ValueError):
        export(tmp_path / "s.db", tmp_path / "t.xml", "xml")
    assert not (tmp_path / "t.xml").exists()


# ----------------------------------------------------------------------------- launcher

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.store", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_launcher_export_merge_and_bad_input(tmp_path):
    ids = _filled_store(tmp_path / "s.db")
    out = tmp_path / "out.csv"
    res = _cli("export", f"--store={tmp_path / 's.db'}", "--format=csv", f"--out={out}")
    assert res.returncode == 0, res.stderr
    with open(out, newline="") as fh:
        assert [r["run_id"] for r in csv.DictReader(fh)] == ids
    res = _cli("export", f"--store={tmp_path / 's.db'}", "--format=jsonl")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 4

    bad = tmp_path / "bad.csv"
    res = _cli("export", f"--store={tmp_path / 's.db'}", "--format=xml", f"--out={bad}")
    assert res.returncode != 0 and "--format" in res.stderr and "csv, jsonl" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not bad.exists()

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 10)
    for args, flag in ((["export", f"--store={junk}"], "--store"),
                       (["export", f"--store={tmp_path / 'none.db'}"], "--store"),
                       (["frobnicate", f"--store={tmp_path / 's.db'}"], "command"),
                       (["merge", f"--store={tmp_path / 'm.db'}"], "--inputs"),
                       (["merge", f"--store={tmp_path / 'm.db'}", f"--inputs={junk}"], "--inputs")):
        res = _cli(*args, f"--out={bad}")
        assert res.returncode != 0 and flag in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1
    assert not bad.exists() and not (tmp_path / "m.db").exists()
    assert _bytes(junk) == b"not a database at all" * 10

    res = _cli("merge", f"--store={tmp_path / 'm.db'}", f"--inputs={tmp_path / 's.db'}")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["inserted"] == 4


# ----------------------------------------------------------------------------- crash safety

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from sparsejax.sweep.store import Store
    path, chunk = sys.argv[1], int(sys.argv[2])
    st = Store(path)
    start = st.count() // chunk
    for c in range(start, start + 100000):
        recs = [{"config": {"chunk": c, "i": i}, "accuracy": 0.5, "weight_nnz": i,
                 "params": {"w": np.full((64, 64), i, np.float32)}} for i in range(chunk)]
        st.write_records(recs)
        if c == start:
            print("wrote", flush=True)
""")


def test_kill_9_leaves_only_complete_chunks(tmp_path):
    path, chunk = tmp_path / "crash.db", 50
    for delay in (0.05, 0.2, 0.35):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(chunk)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "wrote"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        with Store(path, create=False) as st:
            assert st.integrity_ok()
            n = st.count()
            assert n > 0 and n % chunk == 0
            per_chunk: dict[int, int] = {}
            for rec in st.iter_records():
                per_chunk[rec["config"]["chunk"]] = per_chunk.get(rec["config"]["chunk"], 0) + 1
            assert set(per_chunk.values()) == {chunk}
            assert sorted(per_chunk) == list(range(n // chunk))
