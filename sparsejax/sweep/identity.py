"""Run identity: a resolved config dict names a run by a content hash.

A run is a plain config dict (method, widths, mask or budget, lr, schedule, epochs, seed, init
source, dataset, ...). Its id is the sha256 of a canonical JSON form that:

* has sorted keys and no whitespace, so dict order never matters;
* drops every field equal to its entry in ``DEFAULTS``, so spelling a default out (or leaving it
  out) gives the same id, and adding a new field to ``DEFAULTS`` later keeps the id of every run
  that did not spell that field out;
* names an init file by its content (``init_sha256``), not by its path: the path is hashed as
  ``"file"`` (migration: fixed-init run ids changed once, on 2026-12-02, when this rule came in);
* carries ``SCHEMA_VERSION`` under the reserved key ``"_schema"``, so a change of meaning can be
  made explicit by bumping it;
* normalises values: tuples and numpy arrays become lists, numpy scalars become Python numbers
  (float32 values by their shortest round-trip repr, so ``np.float32(0.1)`` reads 0.1), an int
  given for a float default becomes a float (and an integral float for an int default an int),
  and a mask array (any bool array, or a 0/1 array of rank >= 1 under a key containing
  ``"mask"``) becomes a compact string ``"mask:<shape>:<hex of packed bits>"`` (see
  ``encode_mask``/``decode_mask``).

Random keys derive from the id: ``jax.random.fold_in(root, run_seed(run_id))``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Mapping

import numpy as np

SCHEMA_VERSION = 1
SCHEMA_KEY = "_schema"
ID_HEX_CHARS = 16
MASK_PREFIX = "mask:"

DEFAULTS: dict[str, Any] = {
    "method": "dense",
    "widths": (16, 16, 16),
    "budget": None,
    "mask": None,
    "lr": 0.1,
    "schedule": "constant",
    "epochs": 50,
    "seed": 0,
    "init": "random",
    "dataset": "cubist_spiral",
    "batch_size": 128,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    # added with the runner; None defaults keep every earlier id unchanged
    "density": None,        # random masks: fraction of weights kept (budget wins when both given)
    "structure": None,      # (d1, d2, d3): phase-1 blocks, or the configuration of a phase-2 mask
    "mask_index": None,     # phase 2: index into the MaskSpace of `structure`
    "mask_space": None,     # phase 2: {"max_weight_sum": .., "first_k_w2": ..} subset options
    "init_sha256": None,    # content hash of an init file, so ids follow the data not the path
    "optimal_width": None,  # fixed-init pruning: slice the width-16 init to this width
    # added with the typed RunConfig (sparsejax.config): defaults are what every earlier run used
    "milestones": (15, 30),  # step schedule: ×lr_gamma after these epochs
    "lr_gamma": 0.1,
    "method_params": None,  # the method's hyperparameters that differ from its defaults
    # opt-in shared data order: runs with one data_seed see the same minibatch sequence
    "data_seed": None,
}


# ----------------------------------------------------------------------------- masks

def encode_mask(mask: Any) -> str:
    """A 0/1 array as ``"mask:<d0>x<d1>...:<hex>"`` (C order, big-endian packed bits).

    Deterministic and compact (one hex digit per four entries), so a phase-2 mask can sit in a
    config and in its hash. ValueError if an entry is not 0 or 1.
    """
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"mask: entries must be 0 or 1, got dtype {arr.dtype} with other values")
        arr = arr != 0
    shape = "x".join(str(d) for d in arr.shape)
    return f"{MASK_PREFIX}{shape}:{np.packbits(arr.ravel()).tobytes().hex()}"


def decode_mask(text: str) -> np.ndarray:
    """The bool array written by ``encode_mask``; ValueError for any other string."""
    if not isinstance(text, str) or not text.startswith(MASK_PREFIX):
        raise ValueError(f"not an encoded mask: {text!r:.60}")
    try:
        shape_text, hex_text = text[len(MASK_PREFIX):].split(":")
        shape = tuple(int(d) for d in shape_text.split("x")) if shape_text else ()
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(hex_text), dtype=np.uint8))
    except ValueError as err:
        raise ValueError(f"not an encoded mask: {text!r:.60} ({err})") from None
    size = math.prod(shape)
    if len(bits) != 8 * math.ceil(size / 8):
        raise ValueError(f"encoded mask {text!r:.60}: bit count does not match shape {shape}")
    return bits[:size].astype(bool).reshape(shape)


# ----------------------------------------------------------------------------- values

def _is_mask_key(key: str) -> bool:
    return "mask" in key.lower()


def _is_binary(arr: np.ndarray) -> bool:
    """True for a numeric array whose entries are all 0 or 1."""
    return arr.dtype.kind in "iuf" and bool(np.isin(arr, (0, 1)).all())


def _scalar(value: Any) -> Any:
    """A numpy or Python scalar as a plain JSON scalar (float32 by its shortest repr)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))  # numpy's shortest repr for the narrow dtype: 0.1f -> 0.1
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (str, type(None))):
        return str(value) if value is not None else None
    raise TypeError(f"config value of type {type(value).__name__} is not JSON-able: {value!r:.60}")


def _as_array(value: Any) -> np.ndarray | None:
    """An ndarray for numpy/JAX arrays (anything with ``__array__`` that is not a scalar)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__array__") and not isinstance(value, (np.generic, str, bytes)):
        return np.asarray(value)
    return None


def normalise(value: Any, in_mask: bool = False) -> Any:
    """``value`` as plain JSON data (dict/list/str/int/float/bool/None), masks as strings.

    ``in_mask`` is set below any dict key containing "mask": 0/1 arrays there are masks.
    """
    if isinstance(value, (str, int, float, type(None))) and not isinstance(value, np.generic):
        return _scalar(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a method's params object
        value = dataclasses.asdict(value)
    if isinstance(value, (dict, Mapping)):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"config keys must be strings, got {key!r}")
            out[str(key)] = normalise(item, in_mask or _is_mask_key(key))
        return out
    arr = _as_array(value)
    if arr is not None:
        if arr.dtype == np.bool_ or (in_mask and arr.ndim and _is_binary(arr)):
            return encode_mask(arr)
        if arr.ndim == 0:
            return _scalar(arr[()])
        return [normalise(item, in_mask) for item in arr]
    if isinstance(value, (list, tuple)):
        return [normalise(item, in_mask) for item in value]
    return _scalar(value)


def _coerce_like(value: Any, default: Any) -> Any:
    """An int where the default is a float becomes a float, and an integral float an int."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _dumps(value: Any) -> str:
    """Compact, sorted, strict JSON (NaN/inf rejected: they make no stable id)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


# ----------------------------------------------------------------------------- identity

def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """``DEFAULTS`` overlaid with ``config``, normalised: every field spelled out."""
    merged = {**DEFAULTS, **config}
    return {key: _coerce_like(normalise(val, _is_mask_key(key)), normalise(DEFAULTS.get(key)))
            for key, val in merged.items()}


def minimal(config: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised fields of ``config`` that differ from ``DEFAULTS`` (what the id hashes)."""
    if SCHEMA_KEY in config:
        raise ValueError(f"config key {SCHEMA_KEY!r} is reserved for the schema version")
    out = {}
    for key, val in config.items():
        if not isinstance(key, str):
            raise TypeError(f"config keys must be strings, got {key!r}")
        norm = normalise(val, _is_mask_key(key))
        if key in DEFAULTS:
            default = normalise(DEFAULTS[key], _is_mask_key(key))
            norm = _coerce_like(norm, default)
            if norm == default and _dumps(norm) == _dumps(default):  # == first: cheap
                continue
        out[key] = norm
    if out.get("init_sha256") is not None and "init" in out:
        out["init"] = "file"  # the content hash names the init, not the path it was read from
    return out


def canonical_value(value: Any) -> str:
    """A hashable canonical text of one (normalised) config value, e.g. for program keys."""
    return _dumps(normalise(value))


def canonical(config: Mapping[str, Any]) -> str:
    """The canonical JSON text of a run: sorted, non-default fields plus the schema version."""
    return _dumps({**minimal(config), SCHEMA_KEY: SCHEMA_VERSION})


def run_id(config: Mapping[str, Any]) -> str:
    """First 16 hex chars of sha256(canonical(config)): the run's stable name."""
    return hashlib.sha256(canonical(config).encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


def run_seed(rid: str) -> int:
    """A uint32 from a run id (its first 32 bits), to fold into a root PRNG key."""
    if not isinstance(rid, str) or len(rid) < 8:
        raise ValueError(f"run id must be a hex string of at least 8 chars, got {rid!r}")
    try:
        return int(rid[:8], 16)
    except ValueError:
        raise ValueError(f"run id must be hex, got {rid!r}") from None
