"""The results store: one SQLite file (WAL mode) holding one row per finished run.

Why SQLite: a sweep of ~500k runs writes records in chunks from long jobs that may be killed at
any moment and resumed, sometimes by two processes at once. Each ``write_records`` call is one
transaction in WAL mode, so after a ``kill -9`` a chunk is either wholly present or absent, and
``INSERT OR IGNORE`` on the primary key ``run_id`` means a run is never stored twice. After each
committed chunk the WAL is checkpointed into the main file, so losing the ``-wal`` file (deleted
by hand, or a copy of the main file only) loses at most a chunk in flight.

A store file carries a ``meta`` table with a magic marker and a schema version; opening any
other file raises ``StoreError`` before anything is written to it. A new store is built in a
temporary file next to it, fsynced and linked into place, so a crash or a full disk never leaves
a half-made store at the path. A file that holds no tables at all (zero bytes, or the 4,096-byte
header SQLite writes first) holds no records: opening it for writing recreates the schema in it;
opening it for reading says so in one line.

Readers (``Store(path, create=False)``) never write: where the file and its folder are writable
the connection is ``query_only`` (so the ``-wal``/``-shm`` files SQLite needs are cleaned up at
close, as for any connection); elsewhere (read-only media, a ``chmod -w`` copy) it is opened
``mode=ro&immutable=1`` when there is no ``-wal`` to read, so nothing is created next to it.

Every row carries ``checksum`` = ``sha256:<scalars>:<blobs>``: sha256 over the canonical bytes
of every non-blob column, and over the two blobs. Reads verify the part they fetch and raise
``DamagedRecordError`` naming the run; :func:`verify` checks a whole store. Schema 1 stores
(without ``checksum`` and ``numeric_path`` columns) are read as they are, unverified, and are
migrated when opened for writing: the columns are added and checksums computed for the rows
found, in one transaction.

Blobs (masks, params) use a small self-describing format (``encode_arrays``): a JSON header of
names, dtypes and shapes, then the zlib-compressed raw little-endian bytes; bool arrays (masks)
are stored as packed bits. It costs a few dozen bytes per record instead of the ~2 KB of zip
headers an ``.npz`` of eight tiny arrays would add.
"""
from __future__ import annotations

import csv
import datetime as _dt
import errno
import hashlib
import json
import math
import os
import sqlite3
import struct
import tempfile
import urllib.parse
import zlib
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from sparsejax import fileio
from sparsejax.sweep import identity
from sparsejax.sweep import numeric_path as numeric_path_lib

MAGIC = "sparsejax-sweep-store"
STORE_SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = ("1", "2")  # 1: no checksum / numeric_path columns (migrated on write)
SQLITE_HEADER = b"SQLite format 3\x00"
BLOB_MAGIC = b"SJA1"
FORMATS = ("csv", "jsonl")

METRIC_COLUMNS = ("accuracy", "loss", "weight_nnz", "model_nnz", "diverged",
                  "train_seconds", "compile_seconds", "finished_at")
# Columns compared when the same run id arrives twice (timings, dates and the numeric path may
# legitimately differ; params are float noise of the same numbers and are not compared).
COMPARED_COLUMNS = ("status", "accuracy", "loss", "weight_nnz", "model_nnz", "diverged", "metrics",
                    "masks")
BLOB_COLUMNS = ("masks", "params")
COLUMNS = ("run_id", "status", "config", *METRIC_COLUMNS, "metrics", "numeric_path", *BLOB_COLUMNS)
SCALAR_COLUMNS = COLUMNS[:-len(BLOB_COLUMNS)]
V1_MISSING = ("numeric_path",)  # columns schema 1 did not have (besides checksum)
CHECKSUM = "checksum"
CURVE_KEY = "loss_curve"  # a record's (epochs,) float32 training loss per epoch, kept in its params blob
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
    params BLOB,
    numeric_path TEXT,
    checksum TEXT
);
"""


class StoreError(Exception):
    """A path that is not (or cannot become) a sweep store, or a store that cannot be read."""


class DamagedRecordError(StoreError):
    """A stored record whose checksum, id or blobs do not verify (bit rot, a bad copy)."""


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
    """The ``{name: array}`` written by ``encode_arrays`` (bools come back as bool arrays);
    ValueError for bytes that are not such a blob (damaged header, payload or length)."""
    try:
        return _decode_arrays(bytes(blob))
    except (zlib.error, struct.error, TypeError, KeyError, IndexError, OverflowError) as err:
        raise ValueError(f"array blob is damaged ({type(err).__name__}: {err})") from None


def _decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
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


def _params_blob(params: Any, curve: Any = None) -> bytes:
    """Parameters (and the loss curve, when given, as ``CURVE_KEY``) as float32 arrays, then
    ``encode_arrays``."""
    flat = flatten_arrays(params) | ({} if curve is None else {CURVE_KEY: np.asarray(curve).reshape(-1)})
    return _encode_flat({n: a.astype(np.float32, copy=False) for n, a in flat.items()})


# ----------------------------------------------------------------------------- rows

def _json(value: Any) -> str | None:
    """Plain JSON text of normalised data (NaN kept: metrics may be non-finite)."""
    if value is None:
        return None
    return json.dumps(identity.normalise(value), sort_keys=True, separators=(",", ":"))


def _number(value: Any, kind: Any) -> Any:
    """A numpy/Python number as ``kind`` (None stays None; a float NaN becomes None, which is
    what SQLite stores for it, so the checksum is computed over what is read back)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        value = np.asarray(value).item()
    out = kind(value)
    return None if isinstance(out, float) and math.isnan(out) else out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record_to_row(record: Mapping[str, Any]) -> tuple:
    """One record dict as a ``runs`` row in ``COLUMNS`` order (without the checksum).

    ``config`` is required; ``run_id`` defaults to ``identity.run_id(config)``; keys that are not
    columns are folded into ``metrics``; ``numeric_path`` is a dict (or None); ``masks``/``params``
    may be arrays trees or bytes; ``loss_curve`` (an array) goes into the params blob.
    """
    if "config" not in record:
        raise ValueError("record needs a 'config'")
    extra = {k: v for k, v in record.items() if k not in RECORD_KEYS and k != CURVE_KEY}
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
        _numeric_path_text(record.get("numeric_path")),
        masks if isinstance(masks, (bytes, type(None))) else _masks_blob(masks),
        params if isinstance(params, (bytes, type(None))) else _params_blob(params, record.get(CURVE_KEY)),
    )


def _numeric_path_text(path: Any) -> str | None:
    """A record's numeric path as stored: canonical JSON of a dict, or None."""
    if path is None or isinstance(path, str):
        return path
    return numeric_path_lib.dumps(path)


def _canonical_bytes(names: Sequence[str], values: Sequence[Any]) -> bytes:
    """Unambiguous bytes of named SQLite values: ``name NUL tag length NUL payload`` each
    (tags: N null, I integer, F float as ``float.hex``, T UTF-8 text, B blob)."""
    parts: list[bytes] = []
    for name, value in zip(names, values):
        if value is None:
            tag, payload = "N", b""
        elif isinstance(value, str):
            tag, payload = "T", value.encode("utf-8")
        elif isinstance(value, float):
            tag, payload = "F", value.hex().encode()
        elif isinstance(value, int):  # bool included
            tag, payload = "I", str(int(value)).encode()
        elif isinstance(value, (bytes, bytearray, memoryview)):
            tag, payload = "B", bytes(value)
        else:
            raise TypeError(f"column {name}: cannot checksum a {type(value).__name__}")
        parts.append(f"{name}\0{tag}{len(payload)}\0".encode())
        parts.append(payload)
    return b"".join(parts)


def scalar_digest(values: Sequence[Any]) -> str:
    """sha256 hex of the ``SCALAR_COLUMNS`` values of a row (in that order)."""
    return hashlib.sha256(_canonical_bytes(SCALAR_COLUMNS, values)).hexdigest()


def blob_digest(values: Sequence[Any]) -> str:
    """sha256 hex of the ``BLOB_COLUMNS`` values of a row (in that order)."""
    return hashlib.sha256(_canonical_bytes(BLOB_COLUMNS, values)).hexdigest()


def row_checksum(row: Sequence[Any]) -> str:
    """``sha256:<scalars>:<blobs>`` of a row in ``COLUMNS`` order."""
    n = len(SCALAR_COLUMNS)
    return f"sha256:{scalar_digest(row[:n])}:{blob_digest(row[n:])}"


def _split_checksum(text: Any) -> tuple[str, str] | None:
    """(scalar digest, blob digest) of a stored checksum, None when malformed."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 3 or parts[0] != "sha256" or not all(len(p) == 64 for p in parts[1:]):
        return None
    return parts[1], parts[2]


def checksum_problem(rec: Mapping[str, Any]) -> str | None:
    """Why the raw row ``rec`` (column -> stored value, incl. ``checksum``) fails its checksum,
    or None when it verifies. Blobs are checked only when both blob columns are present."""
    parts = _split_checksum(rec.get(CHECKSUM))
    if parts is None:
        return "checksum missing or malformed"
    if scalar_digest([rec.get(c) for c in SCALAR_COLUMNS]) != parts[0]:
        return "checksum mismatch in its numbers, config or metrics"
    if all(c in rec for c in BLOB_COLUMNS) and blob_digest([rec[c] for c in BLOB_COLUMNS]) != parts[1]:
        return "checksum mismatch in its masks or params"
    return None


def row_to_record(row: Sequence[Any], columns: Sequence[str], decode_blobs: bool = True) -> dict:
    """A ``runs`` row (any column subset) as a record dict with JSON and blobs decoded
    (the checksum column, if selected, is dropped: verify with :func:`checksum_problem`)."""
    rec = dict(zip(columns, row))
    rec.pop(CHECKSUM, None)
    for key in ("config", "metrics"):
        if key in rec:
            rec[key] = json.loads(rec[key]) if rec[key] is not None else ({} if key == "metrics" else None)
    if "numeric_path" in rec:
        rec["numeric_path"] = numeric_path_lib.loads(rec["numeric_path"])
    if rec.get("diverged") is not None:
        rec["diverged"] = bool(rec["diverged"])
    if decode_blobs:
        for key in ("masks", "params"):
            if rec.get(key) is not None:
                rec[key] = decode_arrays(rec[key])
        if CURVE_KEY in (rec.get("params") or {}):  # absent in records stored before curves
            rec[CURVE_KEY] = rec["params"].pop(CURVE_KEY)
    return rec


# ----------------------------------------------------------------------------- files

def _writable(path: str) -> bool:
    """Whether ``path`` may be written: the OS allows it and its mode has a write bit.

    The mode bits are checked too because root may write anything: a folder or file someone
    marked read-only (``chmod -w``) is treated as read-only media, as it is for other users.
    """
    try:
        return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & 0o222)
    except OSError:
        return False


def _check_file(path: str, create: bool) -> str:
    """``"missing"``, ``"empty"`` (zero bytes) or ``"sqlite"`` for the file at ``path``.

    Reads only the first 16 bytes, so a foreign file is rejected before SQLite touches it.
    """
    if not os.path.exists(path):
        if not create:
            raise StoreError(f"{path}: no such store file")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise StoreError(f"{path}: directory {parent} does not exist")
        return "missing"
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a directory, not a sweep store")
    if not os.path.isfile(path):
        raise StoreError(f"{path}: not a regular file, not a sweep store")
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_HEADER))
    if not head:
        if not create:
            raise StoreError(f"{path}: empty file, not a sweep store (it holds no records; a sweep "
                             "launched with this --store recreates it)")
        return "empty"
    if head != SQLITE_HEADER:
        raise StoreError(f"{path}: not a sweep store (not an SQLite database)")
    return "sqlite"


def _fsync(path: str) -> None:
    """fsync a file or a directory (directories: where the OS allows it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF):  # some filesystems cannot sync a dir
            raise
    finally:
        os.close(fd)


def _remove_quietly(*paths: str) -> None:
    for p in paths:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass


def _create_schema(conn: sqlite3.Connection) -> None:
    """The tables and meta rows in one transaction (idempotent; safe if processes race)."""
    with _Tx(conn):  # statement by statement: executescript would COMMIT
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        for key, value in (("magic", MAGIC), ("schema_version", str(STORE_SCHEMA_VERSION)),
                           ("created_at", _now())):
            conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))


def _create_new(path: str) -> None:
    """Create an empty store at the missing ``path`` atomically.

    The schema is written to a temporary file in the same folder, which is closed (the WAL
    checkpointed away), fsynced and hard-linked to ``path`` (which fails rather than replace a
    store another process created meanwhile; then that one is used). A failure (a full disk:
    SQLITE_FULL) leaves nothing at ``path`` and removes the temporary file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".creating",
                                   dir=folder)
        os.close(fd)
        os.chmod(tmp, fileio.default_mode())  # mkstemp makes 0600; a store is an ordinary file
    except OSError as err:
        raise StoreError(f"{path}: cannot create the store ({err.strerror or err})") from None
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # recorded in the file header
            _create_schema(conn)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        _fsync(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created the store first: use that one
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if not os.path.exists(path):  # no hard links here: rename (tiny race documented)
                os.rename(tmp, path)
        _fsync(folder)
    except (sqlite3.Error, OSError) as err:
        msg = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise StoreError(f"{path}: cannot create the store ({msg}); nothing was created") from None
    finally:
        _remove_quietly(tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal")


# ----------------------------------------------------------------------------- store

class Store:
    """A sweep results store at ``path`` (SQLite, WAL); see the module docstring.

    ``Store(path, create=True)`` opens for writing, creating the store if missing (or recreating
    the schema in a file that holds no tables); ``create=False`` opens an existing store
    read-only (``readonly`` overrides: ``Store(p, create=False, readonly=False)`` writes to an
    existing store only). Any existing file that is not a sweep store raises ``StoreError`` and
    is left untouched. Several ``Store`` objects (in one or many processes) may share a file:
    writers wait up to ``timeout`` seconds for one another.
    """

    def __init__(self, path: str | os.PathLike, create: bool = True, timeout: float = 60.0,
                 synchronous: str = "NORMAL", readonly: bool | None = None) -> None:
        self.path = os.fspath(path)
        self.readonly = (not create) if readonly is None else bool(readonly)
        if self.readonly and create:
            raise ValueError("Store: a read-only store cannot be created (create=False)")
        self._conn: sqlite3.Connection | None = None
        state = _check_file(self.path, create)
        if state == "missing":
            _create_new(self.path)
        try:
            self._conn = self._connect(timeout)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot open ({err})") from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if self.readonly:
                self._validate()
            else:
                blank = not self._table_names()  # half-created: no tables, so no records
                if not blank:
                    self._validate()  # before any write: a foreign file stays untouched
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(f"PRAGMA synchronous={synchronous}")
                if blank:
                    _create_schema(self._conn)
                    self._validate()
                self._migrate()
            self._columns = self._stored_columns()
        except sqlite3.DatabaseError as err:
            self.close()
            raise StoreError(f"{self.path}: cannot use the store ({err})") from None
        except BaseException:
            self.close()
            raise

    # -- opening

    def _connect(self, timeout: float) -> sqlite3.Connection:
        """A connection: read-write, or read-only without creating files where not writable."""
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path))
        if not self.readonly:
            return sqlite3.connect(uri + "?mode=rw", uri=True, timeout=timeout, isolation_level=None)
        folder = os.path.dirname(os.path.abspath(self.path))
        if _writable(folder) and _writable(self.path):
            conn = sqlite3.connect(uri + "?mode=rw", uri=True, timeout=timeout, isolation_level=None)
            conn.execute("PRAGMA query_only=ON")
            return conn
        wal = self.path + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            # committed data may still be in the WAL: read it (SQLite needs its -shm as well)
            try:
                conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=timeout, isolation_level=None)
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.Error as err:
                raise StoreError(f"{self.path}: read-only location with an un-checkpointed "
                                 f"{os.path.basename(wal)} file that SQLite cannot read ({err}); "
                                 "copy the store and its -wal file to a writable folder") from None
        return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, timeout=timeout,
                               isolation_level=None)

    def _table_names(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _validate(self) -> None:
        """Raise StoreError unless this is a sweep store of a schema version we read."""
        try:
            names = self._table_names()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: not a sweep store ({err})") from None
        if not names:
            raise StoreError(f"{self.path}: a store whose creation was interrupted (no tables, so no "
                             "records); a sweep launched with this --store recreates it")
        if not {"meta", "runs"} <= names:
            raise StoreError(f"{self.path}: an SQLite file but not a sweep store "
                             "(no 'meta' and 'runs' tables)")
        meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        if meta.get("magic") != MAGIC:
            raise StoreError(f"{self.path}: not a sweep store (meta has no magic marker)")
        if meta.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            raise StoreError(f"{self.path}: store schema version {meta.get('schema_version')}, "
                             f"this code reads version {STORE_SCHEMA_VERSION}")

    def _stored_columns(self) -> tuple[str, ...]:
        """The columns the ``runs`` table has (schema 1 lacks numeric_path and checksum)."""
        return tuple(r[1] for r in self._conn.execute("PRAGMA table_info(runs)"))

    @property
    def checksummed(self) -> bool:
        """Whether rows carry checksums (schema 2; a schema 1 store read as it is does not)."""
        return CHECKSUM in self._columns

    def _migrate(self) -> None:
        """Schema 1 -> 2: add the numeric_path and checksum columns and checksum every row."""
        if self.get_meta("schema_version") == str(STORE_SCHEMA_VERSION):
            return
        with self._transaction():
            have = set(self._stored_columns())
            for col in (*V1_MISSING, CHECKSUM):
                if col not in have:
                    self._conn.execute(f"ALTER TABLE runs ADD COLUMN {col} TEXT")
            cur = self._conn.execute(f"SELECT rowid, {','.join(COLUMNS)} FROM runs WHERE checksum IS NULL")
            while rows := cur.fetchmany(1000):
                self._conn.executemany("UPDATE runs SET checksum=? WHERE rowid=?",
                                       [(row_checksum(r[1:]), r[0]) for r in rows])
            self._conn.execute("UPDATE meta SET value=? WHERE key='schema_version'",
                               (str(STORE_SCHEMA_VERSION),))

    def _transaction(self) -> "_Tx":
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        return _Tx(self._conn)

    # -- meta

    def set_meta(self, key: str, value: str) -> None:
        """Set a meta value (the magic marker and schema version are read-only)."""
        if key in ("magic", "schema_version", "config_schema"):
            raise ValueError(f"meta key {key!r} is managed by the store")
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A meta value, or ``default``."""
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def numeric_path(self) -> dict | None:
        """The numeric path the store's meta records (see ``numeric_path``), or None."""
        return numeric_path_lib.loads(self.get_meta("numeric_path"))

    def claim_numeric_path(self, path: Mapping[str, Any]) -> dict | None:
        """Record ``path`` as the store's numeric path if it has none and holds no runs (one
        transaction, so racing launchers agree), and the run-config schema version if none is
        recorded; returns the numeric path recorded afterwards."""
        with self._transaction():
            has = self._conn.execute("SELECT value FROM meta WHERE key='numeric_path'").fetchone()
            empty = self._conn.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is None
            if has is None and empty:
                self._conn.execute("INSERT INTO meta VALUES ('numeric_path', ?)",
                                   (numeric_path_lib.dumps(path),))
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('config_schema', ?)",
                               (str(identity.SCHEMA_VERSION),))
        return self.numeric_path()

    def config_schema(self) -> str:
        """The run-config schema version the store's run ids were hashed with (a store from
        before this was recorded holds schema 1, the only one then)."""
        return self.get_meta("config_schema") or "1"

    def check_config_schema(self) -> None:
        """StoreError unless the store's run ids were hashed with this code's run-config schema:
        under another schema an id names another computation, so resuming would mix them."""
        if self.config_schema() != str(identity.SCHEMA_VERSION):
            raise StoreError(f"{self.path}: its run ids were hashed with run-config schema "
                             f"{self.config_schema()}, this code uses schema {identity.SCHEMA_VERSION}; "
                             "the same id would name another computation: use another --store")

    # -- writing

    def write_records(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Insert records in ONE transaction (a chunk); existing run ids are ignored.

        Returns how many rows were new. Encoding and checksums happen before the write lock is
        taken; after the commit the WAL is checkpointed (PASSIVE: it never waits for readers)
        so the main file alone holds every committed chunk.
        """
        rows = [(*row, row_checksum(row)) for row in map(record_to_row, records)]
        if not rows:
            return 0
        return self._insert_rows(rows)

    def _insert_rows(self, rows: Sequence[tuple]) -> int:
        """INSERT OR IGNORE rows of ``(*COLUMNS, checksum)`` in one transaction, checkpoint."""
        return self._insert_or_ignore("runs", (*COLUMNS, CHECKSUM), rows)

    def _insert_or_ignore(self, table: str, columns: Sequence[str], rows: Sequence[tuple],
                          schema: str | None = None) -> int:
        """INSERT OR IGNORE `rows` into `table` in one transaction (creating it with `schema`
        first when given), then checkpoint; returns how many rows were new."""
        marks = ",".join("?" * len(columns))
        with self._transaction():
            if schema is not None:
                self._conn.execute(schema)
            before = self._conn.total_changes
            self._conn.executemany(f"INSERT OR IGNORE INTO {table} ({','.join(columns)}) VALUES ({marks})", rows)
            added = self._conn.total_changes - before
        self.checkpoint()
        return added

    def checkpoint(self) -> None:
        """Copy committed WAL pages into the main file (PASSIVE: never blocks on readers)."""
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # -- reading

    def _select(self, want: Sequence[str]) -> tuple[list[str], list[str]]:
        """(columns to SELECT, of them the record's): ``want`` that exist, plus the checksum."""
        cols = [c for c in want if c in self._columns]
        return (cols + [CHECKSUM] if self.checksummed else cols), cols

    def _verified(self, row: Sequence[Any], cols: Sequence[str]) -> dict:
        """The raw row as {column: value}, after its checksum verified (if the store has them)."""
        raw = dict(zip(cols, row))
        if self.checksummed:
            problem = checksum_problem(raw)
            if problem:
                raise self._damaged(raw.get("run_id"), problem)
        return raw

    def _damaged(self, run_id: Any, problem: str) -> DamagedRecordError:
        return DamagedRecordError(
            f"{self.path}: run {run_id}: stored record is damaged ({problem}); check the whole "
            f"store with: python -m experiments.store verify --store={self.path}")

    def _decode(self, raw: dict, with_blobs: bool) -> dict:
        """A verified raw row as a record (blobs decoded when ``with_blobs``)."""
        for col in V1_MISSING:
            raw.setdefault(col, None)
        try:
            rec = row_to_record(list(raw.values()), list(raw), decode_blobs=with_blobs)
        except ValueError as err:  # JSON or blob that does not parse
            raise self._damaged(raw.get("run_id"), f"cannot decode: {err}") from None
        if not with_blobs:
            for col in BLOB_COLUMNS:
                rec.pop(col, None)
        return rec

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """Rows of a query, with SQLite's errors on a damaged file as StoreError."""
        try:
            cur = self._conn.execute(sql, params)
            while rows := cur.fetchmany(1000):
                yield from rows
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: cannot read the store ({err}); check it with: "
                             f"python -m experiments.store verify --store={self.path}") from None

    def done_ids(self, ids: Iterable[str] | None = None) -> set[str]:
        """Ids of finished runs: all of them, or those among ``ids`` (their rows verified)."""
        select, cols = self._select(SCALAR_COLUMNS)
        query = f"SELECT {','.join(select)} FROM runs WHERE status='done'"
        if ids is None:
            return {self._verified(r, select)["run_id"] for r in self._rows(query)}
        ids, out = list(ids), set()
        for i in range(0, len(ids), _IN_CHUNK):
            part = ids[i:i + _IN_CHUNK]
            sql = f"{query} AND run_id IN ({','.join('?' * len(part))})"
            out.update(self._verified(r, select)["run_id"] for r in self._rows(sql, part))
        return out

    def records(self, ids: Iterable[str], with_blobs: bool = False) -> list[dict]:
        """Records of those of ``ids`` that are stored (blobs decoded only if ``with_blobs``)."""
        select, _ = self._select(COLUMNS if with_blobs else SCALAR_COLUMNS)
        ids, out = list(ids), []
        for i in range(0, len(ids), _IN_CHUNK):
            part = ids[i:i + _IN_CHUNK]
            sql = f"SELECT {','.join(select)} FROM runs WHERE run_id IN ({','.join('?' * len(part))})"
            out.extend(self._decode(self._verified(r, select), with_blobs) for r in self._rows(sql, part))
        return out

    def get(self, run_id: str) -> dict | None:
        """The full record of ``run_id`` (config/metrics parsed, blobs decoded), or None."""
        select, _ = self._select(COLUMNS)
        rows = list(self._rows(f"SELECT {','.join(select)} FROM runs WHERE run_id=?", (run_id,)))
        return self._decode(self._verified(rows[0], select), True) if rows else None

    def iter_records(self, with_blobs: bool = False, batch: int = 1000) -> Iterator[dict]:
        """Every record in insertion order; blobs (decoded) only if ``with_blobs``."""
        select, _ = self._select(COLUMNS if with_blobs else SCALAR_COLUMNS)
        for row in self._rows(f"SELECT {','.join(select)} FROM runs ORDER BY rowid"):
            yield self._decode(self._verified(row, select), with_blobs)

    def raw_rows(self) -> Iterator[dict]:
        """Every stored row as {column: stored value} (incl. checksum), NOT verified."""
        cols = [c for c in (*COLUMNS, CHECKSUM) if c in self._columns]
        for row in self._rows(f"SELECT {','.join(cols)} FROM runs ORDER BY rowid"):
            yield dict(zip(cols, row))

    def count(self) -> int:
        """Number of stored runs."""
        return self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def integrity_ok(self) -> bool:
        """SQLite's own consistency check of the file."""
        return self.integrity_problems() == []

    def integrity_problems(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check`` findings (empty: the file is consistent)."""
        try:
            found = [r[0] for r in self._conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as err:
            return [str(err)]
        return [] if found == ["ok"] else found

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


def numeric_paths(store: Store) -> dict[str, Any]:
    """The numeric paths of a store, for reports and viewers:
    ``{"meta": dict | None, "records": [{"numeric_path": dict | None, "runs": n}, ...]}``
    (records grouped by path, most runs first; None: written before paths were recorded)."""
    groups: list[dict] = []
    if "numeric_path" in store._columns:
        for text, n in store._rows("SELECT numeric_path, COUNT(*) FROM runs GROUP BY numeric_path "
                                   "ORDER BY COUNT(*) DESC, numeric_path"):
            groups.append({"numeric_path": numeric_path_lib.loads(text), "runs": int(n)})
    else:
        n = store.count()
        groups = [{"numeric_path": None, "runs": n}] if n else []
    return {"meta": store.numeric_path(), "records": groups}


# ----------------------------------------------------------------------------- verify

def config_run_id(config: Mapping[str, Any]) -> str:
    """The run id a stored config hashes to (``identity.run_id`` with the run-config defaults
    that ``sparsejax.config`` registers, so fields it added keep earlier ids)."""
    from sparsejax import config as _run_config  # noqa: F401  (registers identity.DEFAULTS)

    return identity.run_id(config)


def record_problems(raw: Mapping[str, Any], checksummed: bool) -> list[str]:
    """Every way the raw row ``raw`` fails: checksum, id vs config, blobs that do not decode."""
    out = []
    if checksummed:
        problem = checksum_problem(raw)
        if problem:
            out.append(problem)
    try:
        rid = config_run_id(json.loads(raw["config"]))
    except (TypeError, ValueError) as err:
        out.append(f"config does not parse ({err})")
    else:
        if rid != raw.get("run_id"):
            out.append(f"id does not match its config (the config hashes to {rid})")
    for col in BLOB_COLUMNS:
        if raw.get(col) is not None:
            try:
                decode_arrays(raw[col])
            except ValueError as err:
                out.append(f"{col} blob does not decode ({err})")
    return out


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Check a store without writing to it: every record's checksum, id and blobs, and
    SQLite's integrity check. Returns ``{"records", "damaged": [(run_id, [problems])],
    "unchecksummed", "integrity": [problems], "ok"}``."""
    with Store(path, create=False) as store:
        integrity = store.integrity_problems()
        damaged, n = [], 0
        try:
            for raw in store.raw_rows():
                n += 1
                problems = record_problems(raw, store.checksummed)
                if problems:
                    damaged.append((raw.get("run_id"), problems))
        except StoreError as err:
            integrity.append(f"reading the rows stopped after {n}: {err}")
        unchecked = 0 if store.checksummed else n
    return {"records": n, "damaged": damaged, "unchecksummed": unchecked, "integrity": integrity,
            "ok": not damaged and not integrity}


# ----------------------------------------------------------------------------- merge

class MergeCounts(dict):
    """``{"sources", "inserted", "duplicates", "conflicts"}`` plus, as attributes, ``rejected``
    (rows not kept because their id does not verify from their config, or that are damaged),
    ``problems`` (one line per conflict or rejected row) and ``ok`` (no conflict, no rejection)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.rejected = 0
        self.problems: list[str] = []

    @property
    def ok(self) -> bool:
        return self.rejected == 0 and self.get("conflicts", 0) == 0


def merge(dest_path: str | os.PathLike, src_paths: Sequence[str | os.PathLike]) -> MergeCounts:
    """Copy every verified run of ``src_paths`` into ``dest_path`` (created if missing), never
    twice.

    Every incoming row is checked first: its checksum (where the source has them), its blobs,
    and that ``identity.run_id(config)`` is its id; a row that fails is never kept (counted in
    ``rejected``, described in ``problems``). A verified run id already present is kept as it
    is: a ``duplicate`` if the compared columns (status, numbers, metrics, masks) agree, a
    ``conflict`` otherwise (also in ``problems``). All sources are validated (opened read-only)
    before ``dest_path`` is created or written. Each source is one transaction. The destination
    takes the first source's numeric path when it records none and holds no runs.
    """
    srcs = [os.fspath(p) for p in src_paths]
    for src in srcs:
        Store(src, create=False).close()
        if os.path.exists(dest_path) and os.path.samefile(src, dest_path):
            raise ValueError(f"cannot merge {src} into itself")
    counts = MergeCounts({"sources": len(srcs), "inserted": 0, "duplicates": 0, "conflicts": 0})
    with Store(dest_path) as dest:
        for src in srcs:
            with Store(src, create=False) as source:
                path = source.numeric_path()
                if path is not None:
                    dest.claim_numeric_path(path)
                _merge_one(dest, source, counts)
    return counts


# metrics keys that say how a run was reached, not what it computed (a run promoted through
# successive-halving rungs equals the same run trained straight through)
PROVENANCE_METRICS = ("halving",)


def _comparable(column: str, value: Any) -> Any:
    """A stored column value as merge compares it: metrics without their provenance keys."""
    if column != "metrics" or value is None:
        return value
    try:
        metrics = json.loads(value)
    except (TypeError, ValueError):
        return value
    if isinstance(metrics, dict):
        metrics = {k: v for k, v in metrics.items() if k not in PROVENANCE_METRICS}
    return json.dumps(metrics, sort_keys=True)


def _merge_one(dest: Store, source: Store, counts: MergeCounts) -> None:
    """Verify and copy the rows of one open ``source`` into ``dest`` in one transaction."""
    compared = [COLUMNS.index(c) for c in COMPARED_COLUMNS]
    marks = ",".join("?" * (len(COLUMNS) + 1))
    insert = f"INSERT INTO runs ({','.join(COLUMNS)},{CHECKSUM}) VALUES ({marks})"
    conn = dest._conn
    with dest._transaction():
        for raw in source.raw_rows():
            problems = record_problems(raw, source.checksummed)
            rid = raw.get("run_id")
            if problems:
                counts.rejected += 1
                counts.problems.append(f"{source.path}: run {rid}: rejected: {'; '.join(problems)}")
                continue
            row = tuple(raw.get(c) for c in COLUMNS)
            have = conn.execute(f"SELECT {','.join(COLUMNS)} FROM runs WHERE run_id=?", (rid,)).fetchone()
            if have is None:
                conn.execute(insert, (*row, row_checksum(row)))
                counts["inserted"] += 1
                continue
            differ = [COLUMNS[i] for i in compared if _comparable(COLUMNS[i], row[i]) != _comparable(COLUMNS[i], have[i])]
            if differ:
                counts["conflicts"] += 1
                values = [f"{c} {have[COLUMNS.index(c)]!r} kept, {row[COLUMNS.index(c)]!r} dropped"
                          for c in differ if c not in ("masks", "metrics")]
                counts.problems.append(f"{source.path}: run {rid}: conflict in {', '.join(differ)}"
                                       + (f" ({'; '.join(values)})" if values else ""))
            else:
                counts["duplicates"] += 1
    dest.checkpoint()


# ----------------------------------------------------------------------------- export

def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested dicts as dotted keys (``config.a.b``); other values kept as they are."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value


def flat_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A record (without blobs) as one flat row: config.*, numeric_path.*, the metric columns,
    metrics.*."""
    row: dict[str, Any] = {"run_id": rec["run_id"], "status": rec["status"]}
    for key, value in (rec.get("config") or {}).items():
        _flatten(f"config.{key}", value, row)
    for key, value in (rec.get("numeric_path") or {}).items():
        row[f"numeric_path.{key}"] = value
    for key in METRIC_COLUMNS:
        row[key] = int(rec[key]) if key == "diverged" and rec[key] is not None else rec[key]
    for key, value in (rec.get("metrics") or {}).items():
        _flatten(f"metrics.{key}", value, row)
    return row


def _columns(store: Store) -> list[str]:
    """The union of flat columns over all runs, in a stable order."""
    config_keys, path_keys, metric_keys = set(), set(), set()
    for rec in store.iter_records():
        for key in flat_record(rec):
            if key.startswith("config."):
                config_keys.add(key)
            elif key.startswith("numeric_path."):
                path_keys.add(key)
            elif key.startswith("metrics."):
                metric_keys.add(key)
    known = [f"numeric_path.{k}" for k in numeric_path_lib.KEYS]
    paths = [k for k in known if k in path_keys] + sorted(path_keys - set(known))
    return ["run_id", "status", *sorted(config_keys), *paths, *METRIC_COLUMNS, *sorted(metric_keys)]


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


def export(path: str | os.PathLike, out_file: str | os.PathLike | IO[str], fmt: str = "csv") -> int:
    """Export the store at ``path`` as a flat csv/jsonl table (no blobs); returns row count.

    ``out_file`` is a path (written atomically) or an open text stream. The store and the
    format are checked before any output file is created.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: allowed {', '.join(FORMATS)}")
    with Store(path, create=False) as store:
        if isinstance(out_file, (str, os.PathLike)):
            def write(tmp: str) -> int:
                with open(tmp, "w", newline="", encoding="utf-8") as fh:
                    return write_table(store, fh, fmt)
            return fileio.atomic_write(out_file, write)  # atomic, mode 0666 & ~umask
        return write_table(store, out_file, fmt)


# ----------------------------------------------------------------------------- partial states

# Successive halving (sparsejax.search.halving) stops populations at rung epochs and continues
# the survivors later. Each run's state at a rung (params, masks, momentum, lr, schedule, key,
# diverged, hook state: every leaf of its Population slice) is one row of a separate table,
# written one population per transaction, checksummed like the runs (sha256 over the canonical
# bytes of every column), so a killed search resumes without retraining survivors. The table is
# created when first written; stores without it simply hold no partial states.
PARTIAL_COLUMNS = ("run_id", "epoch", "metrics", "state")
_PARTIAL_SCHEMA = """CREATE TABLE IF NOT EXISTS partials (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, metrics TEXT NOT NULL, state BLOB NOT NULL,
    checksum TEXT NOT NULL, PRIMARY KEY (run_id, epoch))"""


def partial_checksum(row: Sequence[Any]) -> str:
    """``sha256:<hex>`` of a partials row in ``PARTIAL_COLUMNS`` order."""
    return "sha256:" + hashlib.sha256(_canonical_bytes(PARTIAL_COLUMNS, row)).hexdigest()


def _partial_row(run_id: str, epoch: int, metrics: Mapping[str, Any], leaves: Sequence[np.ndarray]) -> tuple:
    state = _encode_flat({str(i): np.asarray(a) for i, a in enumerate(leaves)})
    row = (str(run_id), int(epoch), _json(dict(metrics)), state)
    return (*row, partial_checksum(row))


def _has_partials(store: "Store") -> bool:
    return "partials" in store._table_names()


def write_partials(store: "Store", rows: Iterable[tuple[str, int, Mapping[str, Any], Sequence[np.ndarray]]]) -> int:
    """Store ``(run_id, epoch, metrics, leaves)`` partial states in ONE transaction (existing
    (run_id, epoch) rows are kept: a state is one computation); returns how many were new."""
    encoded = [_partial_row(*r) for r in rows]
    if not encoded:
        return 0
    return store._insert_or_ignore("partials", (*PARTIAL_COLUMNS, "checksum"), encoded, schema=_PARTIAL_SCHEMA)


def _partial_query(store: "Store", cols: str, ids: Sequence[str], extra: str = "",
                   params: Sequence[Any] = ()) -> Iterator[tuple]:
    if not _has_partials(store):
        return
    ids = list(ids)
    for i in range(0, len(ids), _IN_CHUNK):
        part = ids[i:i + _IN_CHUNK]
        yield from store._rows(f"SELECT {cols} FROM partials WHERE run_id IN ({','.join('?' * len(part))}){extra}",
                               (*part, *params))


def partial_metrics(store: "Store", ids: Iterable[str]) -> dict[tuple[str, int], dict]:
    """``{(run_id, epoch): metrics}`` of the stored partial states of ``ids`` (checksums of
    the whole rows verified; DamagedRecordError naming the run otherwise)."""
    out = {}
    for row in _partial_query(store, f"{','.join(PARTIAL_COLUMNS)},checksum", list(ids)):
        _check_partial(store, row)
        out[(row[0], int(row[1]))] = json.loads(row[2])
    return out


def _check_partial(store: "Store", row: Sequence[Any]) -> None:
    if partial_checksum(row[:4]) != row[4]:
        raise store._damaged(row[0], f"partial state at epoch {row[1]}: checksum mismatch")


def read_partials(store: "Store", ids: Sequence[str], epoch: int) -> dict[str, list[np.ndarray]]:
    """``{run_id: leaves}`` of the states of ``ids`` stored at ``epoch`` (missing ids absent),
    each verified against its checksum."""
    out = {}
    for row in _partial_query(store, f"{','.join(PARTIAL_COLUMNS)},checksum", list(ids), " AND epoch=?",
                              (int(epoch),)):
        _check_partial(store, row)
        try:
            flat = decode_arrays(row[3])
        except ValueError as err:
            raise store._damaged(row[0], f"partial state at epoch {row[1]}: {err}") from None
        out[row[0]] = [flat[str(i)] for i in range(len(flat))]
    return out
