"""The results store: one SQLite file (WAL mode) holding one row per finished run.

Why SQLite: a sweep of ~500k runs writes records in chunks from long jobs that may be killed at
any moment and resumed, sometimes by two processes at once. Each ``write_records`` call is one
transaction in WAL mode, so after a ``kill -9`` a chunk is either wholly present or absent, and
``INSERT OR IGNORE`` on the primary key ``run_id`` means a run is never stored twice.

A store file carries a ``meta`` table with a magic marker and a schema version; opening any
other file raises ``StoreError`` before anything is written to it.

Blobs (masks, params) use a small self-describing format (``encode_arrays``): a JSON header of
names, dtypes and shapes, then the zlib-compressed raw little-endian bytes; bool arrays (masks)
are stored as packed bits. It costs a few dozen bytes per record instead of the ~2 KB of zip
headers an ``.npz`` of eight tiny arrays would add.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import sqlite3
import struct
import tempfile
import zlib
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from sparsejax.sweep import identity

MAGIC = "sparsejax-sweep-store"
STORE_SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"
BLOB_MAGIC = b"SJA1"
FORMATS = ("csv", "jsonl")

METRIC_COLUMNS = ("accuracy", "loss", "weight_nnz", "model_nnz", "diverged",
                  "train_seconds", "compile_seconds", "finished_at")
# Columns compared when the same run id arrives twice (timings and dates legitimately differ).
COMPARED_COLUMNS = ("status", "accuracy", "loss", "weight_nnz", "model_nnz", "diverged", "metrics")
COLUMNS = ("run_id", "status", "config", *METRIC_COLUMNS, "metrics", "masks", "params")
RECORD_KEYS = frozenset(COLUMNS)
_IN_CHUNK = 500  # ids per "IN (...)" query, well below SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'done',
    config TEXT NOT NULL,
    accuracy REAL,
    loss REAL,
    weight_nnz INTEGER,
    model_nnz INTEGER,
    diverged INTEGER,
    train_seconds REAL,
    compile_seconds REAL,
    finished_at TEXT,
    metrics TEXT,
    masks BLOB,
    params BLOB
);
"""


class StoreError(Exception):
    """A path that is not (or cannot become) a sweep store."""


# ----------------------------------------------------------------------------- blobs

def flatten_arrays(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts/lists/tuples of arrays as ``{"0/w": array, ...}`` ("/"-joined paths)."""
    if isinstance(tree, np.ndarray):
        return {prefix: tree}
    if isinstance(tree, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(tree)]
    elif isinstance(tree, (dict, Mapping)):
        items = [(str(k), v) for k, v in tree.items()]
    else:
        return {prefix: np.asarray(tree)}
    out: dict[str, np.ndarray] = {}
    for key, value in items:
        out.update(flatten_arrays(value, f"{prefix}/{key}" if prefix else key))
    return out


def unflatten_layers(flat: Mapping[str, Any], what: str = "params") -> tuple[dict, ...]:
    """The store's flat blob ``{"0/w": ..., "0/b": ..., "1/w": ...}`` as a tuple of layers
    ``({"w": ..., "b": ...}, ...)`` (the inverse of :func:`flatten_arrays` for networks);
    ValueError naming `what` when a name or the numbering is malformed."""
    layers: dict[int, dict] = {}
    for key, value in flat.items():
        head, _, leaf = str(key).partition("/")
        if not head.isdigit() or leaf not in ("w", "b"):
            raise ValueError(f"{what}: unexpected array name {key!r} (expected '<layer>/w' or '<layer>/b')")
        layers.setdefault(int(head), {})[leaf] = value
    if not layers or sorted(layers) != list(range(len(layers))):
        raise ValueError(f"{what}: layers must be numbered 0..L-1, got {sorted(layers)}")
    return tuple(layers[i] for i in range(len(layers)))


def encode_arrays(arrays: Mapping[str, Any] | Sequence[Any]) -> bytes:
    """Named arrays (or a nested tree of them) as compact deterministic bytes.

    Layout: ``b"SJA1"``, a little-endian uint32 header length, a JSON header
    ``[[name, dtype, shape], ...]``, then zlib of the concatenated raw little-endian data
    (bool arrays as packed bits).
    """
    return _encode_flat(flatten_arrays(arrays))


def _encode_flat(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``encode_arrays`` for an already flat ``{name: ndarray}``."""
    header, chunks = [], []
    for name, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"array {name!r}: dtype {arr.dtype} cannot be stored")
        if arr.dtype == np.bool_:
            chunks.append(np.packbits(arr.ravel()).tobytes())
        else:
            chunks.append(np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes())
        header.append([name, arr.dtype.newbyteorder("<").str if arr.dtype.kind != "b" else "bool",
                       list(arr.shape)])
    head = json.dumps(header, separators=(",", ":")).encode()
    return BLOB_MAGIC + struct.pack("<I", len(head)) + head + zlib.compress(b"".join(chunks), 6)


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """The ``{name: array}`` written by ``encode_arrays`` (bools come back as bool arrays)."""
    blob = bytes(blob)
    if blob[:4] != BLOB_MAGIC:
        raise ValueError("not an array blob written by encode_arrays")
    (head_len,) = struct.unpack("<I", blob[4:8])
    header = json.loads(blob[8:8 + head_len])
    data = zlib.decompress(blob[8 + head_len:])
    out, pos = {}, 0
    for name, dtype, shape in header:
        size = math.prod(shape)
        if dtype == "bool":
            nbytes = (size + 7) // 8
            bits = np.unpackbits(np.frombuffer(data, np.uint8, nbytes, pos))
            arr = bits[:size].astype(bool).reshape(shape)
        else:
            dt = np.dtype(dtype)
            nbytes = size * dt.itemsize
            arr = np.frombuffer(data, dt, size, pos).reshape(shape).astype(dt.newbyteorder("="))
        out[name] = arr
        pos += nbytes
    if pos != len(data):
        raise ValueError("array blob: payload length does not match its header")
    return out


def _masks_blob(masks: Any) -> bytes:
    """Masks as bool arrays (ValueError if an entry is not 0/1), then ``encode_arrays``."""
    flat = flatten_arrays(masks)
    out = {}
    for name, arr in flat.items():
        if arr.dtype != np.bool_ and not ((arr == 0) | (arr == 1)).all():
            raise ValueError(f"mask {name!r} has entries other than 0 and 1")
        out[name] = arr if arr.dtype == np.bool_ else arr != 0
    return _encode_flat(out)


def _params_blob(params: Any) -> bytes:
    """Parameters as float32 arrays, then ``encode_arrays``."""
    return _encode_flat({n: a.astype(np.float32, copy=False)
                         for n, a in flatten_arrays(params).items()})


# ----------------------------------------------------------------------------- rows

def _json(value: Any) -> str | None:
    """Plain JSON text of normalised data (NaN kept: metrics may be non-finite)."""
    if value is None:
        return None
    return json.dumps(identity.normalise(value), sort_keys=True, separators=(",", ":"))


def _number(value: Any, kind: type) -> Any:
    """A numpy/Python number as ``kind`` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        value = np.asarray(value).item()
    return kind(value)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record_to_row(record: Mapping[str, Any]) -> tuple:
    """One record dict as a ``runs`` row in ``COLUMNS`` order.

    ``config`` is required; ``run_id`` defaults to ``identity.run_id(config)``; keys that are not
    columns are folded into ``metrics``; ``masks``/``params`` may be arrays trees or bytes.
    """
    if "config" not in record:
        raise ValueError("record needs a 'config'")
    extra = {k: v for k, v in record.items() if k not in RECORD_KEYS}
    metrics = dict(record.get("metrics") or {})
    clash = set(extra) & set(metrics)
    if clash:
        raise ValueError(f"record keys {sorted(clash)} appear both at top level and in metrics")
    metrics.update(extra)
    masks, params = record.get("masks"), record.get("params")
    return (
        str(record.get("run_id") or identity.run_id(record["config"])),
        str(record.get("status") or "done"),
        _json(record["config"]),
        _number(record.get("accuracy"), float),
        _number(record.get("loss"), float),
        _number(record.get("weight_nnz"), int),
        _number(record.get("model_nnz"), int),
        _number(record.get("diverged"), lambda v: int(bool(v))),
        _number(record.get("train_seconds"), float),
        _number(record.get("compile_seconds"), float),
        str(record.get("finished_at") or _now()),
        _json(metrics) if metrics else None,
        masks if isinstance(masks, (bytes, type(None))) else _masks_blob(masks),
        params if isinstance(params, (bytes, type(None))) else _params_blob(params),
    )


def row_to_record(row: Sequence[Any], columns: Sequence[str], decode_blobs: bool = True) -> dict:
    """A ``runs`` row (any column subset) as a record dict with JSON and blobs decoded."""
    rec = dict(zip(columns, row))
    for key in ("config", "metrics"):
        if key in rec:
            rec[key] = json.loads(rec[key]) if rec[key] is not None else ({} if key == "metrics" else None)
    if rec.get("diverged") is not None:
        rec["diverged"] = bool(rec["diverged"])
    if decode_blobs:
        for key in ("masks", "params"):
            if rec.get(key) is not None:
                rec[key] = decode_arrays(rec[key])
    return rec


# ----------------------------------------------------------------------------- store

def _check_file(path: str, create: bool) -> bool:
    """Whether ``path`` holds a database to validate (True) or is new/empty (False).

    Reads only the first 16 bytes, so a foreign file is rejected before SQLite touches it.
    """
    if not os.path.exists(path):
        if not create:
            raise StoreError(f"{path}: no such store file")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise StoreError(f"{path}: directory {parent} does not exist")
        return False
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a directory, not a sweep store")
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_HEADER))
    if not head:
        if not create:
            raise StoreError(f"{path}: empty file, not a sweep store")
        return False
    if head != SQLITE_HEADER:
        raise StoreError(f"{path}: not a sweep store (not an SQLite database)")
    return True


class Store:
    """A sweep results store at ``path`` (SQLite, WAL); see the module docstring.

    ``Store(path, create=True)`` opens or creates; ``create=False`` requires an existing store.
    Any existing file that is not a sweep store raises ``StoreError`` and is left untouched.
    Several ``Store`` objects (in one or many processes) may share a file: writers wait up to
    ``timeout`` seconds for one another.
    """

    def __init__(self, path: str | os.PathLike, create: bool = True, timeout: float = 60.0,
                 synchronous: str = "NORMAL") -> None:
        self.path = os.fspath(path)
        existing = _check_file(self.path, create)
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot open ({err})") from None
        try:
            if existing:
                self._validate()
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            if not existing or not self._has_tables():
                self._create()
        except BaseException:
            self._conn.close()
            raise

    # -- opening

    def _has_tables(self) -> bool:
        names = {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        return {"meta", "runs"} <= names

    def _validate(self) -> None:
        """Raise StoreError unless this is a sweep store of a schema version we read."""
        try:
            names = {r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: not a sweep store ({err})") from None
        if not {"meta", "runs"} <= names:
            raise StoreError(f"{self.path}: an SQLite file but not a sweep store "
                             "(no 'meta' and 'runs' tables)")
        meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        if meta.get("magic") != MAGIC:
            raise StoreError(f"{self.path}: not a sweep store (meta has no magic marker)")
        if meta.get("schema_version") != str(STORE_SCHEMA_VERSION):
            raise StoreError(f"{self.path}: store schema version {meta.get('schema_version')}, "
                             f"this code reads version {STORE_SCHEMA_VERSION}")

    def _create(self) -> None:
        """Create the tables and meta rows (idempotent; safe if two processes race)."""
        with self._transaction():  # statement by statement: executescript would COMMIT
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            for key, value in (("magic", MAGIC), ("schema_version", str(STORE_SCHEMA_VERSION)),
                               ("created_at", _now())):
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))

    def _transaction(self) -> "_Tx":
        return _Tx(self._conn)

    # -- meta

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value (the magic marker and schema version are read-only)."""
        if key in ("magic", "schema_version"):
            raise ValueError(f"meta key {key!r} is managed by the store")
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A meta value, or ``default``."""
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    # -- writing

    def write_records(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Insert records in ONE transaction (a chunk); existing run ids are ignored.

        Returns how many rows were new. Encoding happens before the write lock is taken.
        """
        rows = [record_to_row(r) for r in records]
        if not rows:
            return 0
        marks = ",".join("?" * len(COLUMNS))
        with self._transaction():
            before = self._conn.total_changes
            self._conn.executemany(
                f"INSERT OR IGNORE INTO runs ({','.join(COLUMNS)}) VALUES ({marks})", rows)
            return self._conn.total_changes - before

    # -- reading

    def done_ids(self, ids: Iterable[str] | None = None) -> set[str]:
        """Ids of finished runs: all of them, or those among ``ids``."""
        query = "SELECT run_id FROM runs WHERE status='done'"
        if ids is None:
            return {r[0] for r in self._conn.execute(query)}
        ids, out = list(ids), set()
        for i in range(0, len(ids), _IN_CHUNK):
            part = ids[i:i + _IN_CHUNK]
            sql = f"{query} AND run_id IN ({','.join('?' * len(part))})"
            out.update(r[0] for r in self._conn.execute(sql, part))
        return out

    def records(self, ids: Iterable[str], with_blobs: bool = False) -> list[dict]:
        """Records of those of ``ids`` that are stored (blobs decoded only if ``with_blobs``)."""
        cols = COLUMNS if with_blobs else COLUMNS[:-2]
        ids, out = list(ids), []
        for i in range(0, len(ids), _IN_CHUNK):
            part = ids[i:i + _IN_CHUNK]
            sql = f"SELECT {','.join(cols)} FROM runs WHERE run_id IN ({','.join('?' * len(part))})"
            out.extend(row_to_record(row, cols) for row in self._conn.execute(sql, part))
        return out

    def get(self, run_id: str) -> dict | None:
        """The full record of ``run_id`` (config/metrics parsed, blobs decoded), or None."""
        row = self._conn.execute(f"SELECT {','.join(COLUMNS)} FROM runs WHERE run_id=?",
                                 (run_id,)).fetchone()
        return row_to_record(row, COLUMNS) if row else None

    def iter_records(self, with_blobs: bool = False, batch: int = 1000) -> Iterator[dict]:
        """Every record in insertion order; blobs (decoded) only if ``with_blobs``."""
        cols = COLUMNS if with_blobs else COLUMNS[:-2]
        cur = self._conn.execute(f"SELECT {','.join(cols)} FROM runs ORDER BY rowid")
        while rows := cur.fetchmany(batch):
            for row in rows:
                yield row_to_record(row, cols)

    def count(self) -> int:
        """Number of stored runs."""
        return self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def integrity_ok(self) -> bool:
        """SQLite's own consistency check of the file."""
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # -- lifetime

    def close(self) -> None:
        """Close the connection (the last one to close checkpoints the WAL)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, run_id: object) -> bool:
        return self._conn.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is not None


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one atomic write."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


# ----------------------------------------------------------------------------- merge

def merge(dest_path: str | os.PathLike, src_paths: Sequence[str | os.PathLike]) -> dict[str, int]:
    """Copy every run of ``src_paths`` into ``dest_path`` (created if missing), never twice.

    A run id already present is kept as it is; it counts as a ``duplicate`` if the compared
    columns (status, numbers, metrics) agree and as a ``conflict`` otherwise. All sources are
    validated before ``dest_path`` is created or written. Each source is one transaction.
    Returns ``{"sources", "inserted", "duplicates", "conflicts"}``.
    """
    srcs = [os.fspath(p) for p in src_paths]
    for src in srcs:
        Store(src, create=False).close()
        if os.path.exists(dest_path) and os.path.samefile(src, dest_path):
            raise ValueError(f"cannot merge {src} into itself")
    counts = {"sources": len(srcs), "inserted": 0, "duplicates": 0, "conflicts": 0}
    with Store(dest_path) as dest:
        for src in srcs:
            for key, n in _merge_one(dest, src).items():
                counts[key] += n
    return counts


def _merge_one(dest: Store, src: str) -> dict[str, int]:
    """Merge one validated source store into ``dest`` by ATTACH, in one transaction."""
    conn = dest._conn
    conn.execute("ATTACH DATABASE ? AS src", (src,))
    try:
        differ = " OR ".join(f"s.{c} IS NOT d.{c}" for c in COMPARED_COLUMNS)
        with dest._transaction():
            overlap, conflicts = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM({differ}), 0) FROM src.runs s "
                "JOIN main.runs d ON s.run_id = d.run_id").fetchone()
            before = conn.total_changes
            cols = ",".join(COLUMNS)
            conn.execute(f"INSERT OR IGNORE INTO main.runs ({cols}) SELECT {cols} FROM src.runs "
                         "ORDER BY rowid")
            inserted = conn.total_changes - before
    finally:
        conn.execute("DETACH DATABASE src")
    return {"inserted": inserted, "duplicates": overlap - conflicts, "conflicts": conflicts}


# ----------------------------------------------------------------------------- export

def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested dicts as dotted keys (``config.a.b``); other values kept as they are."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value


def flat_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A record (without blobs) as one flat row: config.*, the metric columns, metrics.*."""
    row: dict[str, Any] = {"run_id": rec["run_id"], "status": rec["status"]}
    for key, value in (rec.get("config") or {}).items():
        _flatten(f"config.{key}", value, row)
    for key in METRIC_COLUMNS:
        row[key] = int(rec[key]) if key == "diverged" and rec[key] is not None else rec[key]
    for key, value in (rec.get("metrics") or {}).items():
        _flatten(f"metrics.{key}", value, row)
    return row


def _columns(store: Store) -> list[str]:
    """The union of flat columns over all runs, in a stable order."""
    config_keys, metric_keys = set(), set()
    for rec in store.iter_records():
        for key in flat_record(rec):
            if key.startswith("config."):
                config_keys.add(key)
            elif key.startswith("metrics."):
                metric_keys.add(key)
    return ["run_id", "status", *sorted(config_keys), *METRIC_COLUMNS, *sorted(metric_keys)]


def _csv_cell(value: Any) -> Any:
    """A CSV cell: empty for None, JSON for lists/dicts/bools, the value otherwise."""
    if value is None:
        return ""
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value, separators=(",", ":"))
    return value


def _json_safe(value: Any) -> Any:
    """Strict JSON: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def write_table(store: Store, fh: IO[str], fmt: str = "csv") -> int:
    """Write the flat table of ``store`` to the text stream ``fh``; returns the row count."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: allowed {', '.join(FORMATS)}")
    columns = _columns(store)
    writer = csv.writer(fh, lineterminator="\n") if fmt == "csv" else None
    if writer:
        writer.writerow(columns)
    n = 0
    for rec in store.iter_records():
        flat = flat_record(rec)
        values = [flat.get(c) for c in columns]
        if writer:
            writer.writerow([_csv_cell(v) for v in values])
        else:
            line = json.dumps(_json_safe(dict(zip(columns, values))), allow_nan=False)
            fh.write(line + "\n")
        n += 1
    return n


def atomic_write_text(out_path: str | os.PathLike, write: Any) -> Any:
    """Call ``write(fh)`` on a temp file next to ``out_path``, then ``os.replace`` it in.

    A failure or kill leaves no partial ``out_path`` behind.
    """
    out_path = os.fspath(out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(out_path), dir=folder)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            result = write(fh)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return result


def export(path: str | os.PathLike, out_file: str | os.PathLike | IO[str], fmt: str = "csv") -> int:
    """Export the store at ``path`` as a flat csv/jsonl table (no blobs); returns row count.

    ``out_file`` is a path (written atomically) or an open text stream. The store and the
    format are checked before any output file is created.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: allowed {', '.join(FORMATS)}")
    with Store(path, create=False) as store:
        if isinstance(out_file, (str, os.PathLike)):
            return atomic_write_text(out_file, lambda fh: write_table(store, fh, fmt))
        return write_table(store, out_file, fmt)
