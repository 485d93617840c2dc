"""The typed run config: one frozen :class:`RunConfig` holds every field that decides a run.

A run is named by ``run_id = hash(canonical RunConfig + schema version)``
(:mod:`sparsejax.sweep.identity`). Validation happens once, in the constructor: a RunConfig that
exists is a run that can be trained. The rest of the library still passes the resolved config as a
plain dict (``RunConfig.to_dict()``, what the store keeps); :func:`resolve` is the one door.

Fields that decide a run's numbers, beyond the obvious ones:

* ``milestones``/``lr_gamma``: the step schedule (SPEC §3: ×0.1 after epochs 15 and 30);
* ``method_params``: the pruning method's own hyperparameters (GMP events, RigL ΔT, Iter SNIP
  steps, GraSP temperature, SynFlow iterations, ProsPr inner steps, the init scheme …), as the
  method's frozen params type (``registry.get(method).params_type``). Only the fields that
  differ from that type's defaults are stored and hashed, so spelling a default out never
  changes an id;
* ``init_sha256``: the init file's content hash (the path itself is not what decides a run).

Migration note (schema 1, unchanged): ``milestones``, ``lr_gamma`` and ``method_params`` were
added with defaults equal to what every earlier run used, so every earlier run id is unchanged.
A change of meaning of an existing field must bump ``identity.SCHEMA_VERSION``; stores refuse
to resume across schema versions.

The run *kind* is ``kind``: ``"prune"`` for a registry method, ``"structured"`` (phase 1 of the
search) or ``"search"`` (phase 2); for ids' sake those two are still spelled in ``method``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import numbers
import os
from typing import Any, Mapping, Sequence

import numpy as np

from sparsejax.sweep import identity

SEARCH_KINDS = ("structured", "search")
DEFAULT_MILESTONES = (15, 30)
DEFAULT_LR_GAMMA = 0.1

# Fields added after the first release have defaults equal to the behaviour every earlier run
# had (identity.DEFAULTS), so omitting them, as every stored config does, keeps old ids.
assert tuple(identity.DEFAULTS["milestones"]) == DEFAULT_MILESTONES
assert identity.DEFAULTS["lr_gamma"] == DEFAULT_LR_GAMMA


def _fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RunConfig))


def file_sha256(path: str) -> str:
    """Content hash of a file (16 hex chars), cached on (path, mtime, size)."""
    st = os.stat(path)
    return _sha256_cached(os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, float)) \
            or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    return v


def _float(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return v


def _ints(name: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name}: must be a list of integers, got {value!r}")
    return tuple(_int(name, v, minimum) for v in value)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that decides one run's numbers (SPEC §2–§5 defaults). Immutable and validated
    on construction (ValueError with one line naming the field and what is allowed)."""
    method: str = "dense"
    widths: tuple[int, ...] = (16, 16, 16)
    budget: int | None = None
    mask: tuple[str, ...] | None = None          # explicit per-layer masks, PyTorch (out, in), encoded
    lr: float = 0.1
    schedule: str = "constant"
    epochs: int = 50
    seed: int = 0
    init: str = "random"
    dataset: str = "cubist_spiral"
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    density: float | None = None                 # random masks: fraction kept (resolved to budget)
    structure: tuple[int, ...] | None = None     # phase 1 blocks / phase 2 configuration
    mask_index: int | None = None                # phase 2: index into the MaskSpace of structure
    mask_space: Mapping[str, Any] | None = None  # phase 2 subset options
    init_sha256: str | None = None               # content hash of the init file
    optimal_width: int | None = None             # fixed-init pruning: slice the init to this width
    milestones: tuple[int, ...] = DEFAULT_MILESTONES
    lr_gamma: float = DEFAULT_LR_GAMMA
    method_params: Any = None                    # the method's params object (None: its defaults)
    data_seed: int | None = None                 # shared data order: runs with one data_seed see the
                                                 # same minibatches (None: each run its own, as the paper)

    def __post_init__(self) -> None:
        from sparsejax import data, mlp, train
        from sparsejax.pruning import registry
        put = lambda k, v: object.__setattr__(self, k, v)
        allowed = registry.names() + list(SEARCH_KINDS)
        if self.method not in allowed:
            raise ValueError(f"method: unknown {self.method!r}; allowed: {', '.join(allowed)}")
        put("widths", _ints("widths", self.widths))
        if not self.widths:
            raise ValueError("widths: every width must be >= 1, got []")
        if self.schedule not in train.SCHEDULES:
            raise ValueError(f"schedule: unknown {self.schedule!r}; allowed: {', '.join(train.SCHEDULES)}")
        put("lr", _float("lr", self.lr))
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        put("epochs", _int("epochs", self.epochs, 1))
        put("seed", _int("seed", self.seed, 0))
        if self.data_seed is not None:
            put("data_seed", _int("data_seed", self.data_seed, 0))
        put("batch_size", _int("batch_size", self.batch_size, 1))
        put("momentum", _float("momentum", self.momentum))
        put("weight_decay", _float("weight_decay", self.weight_decay))
        put("lr_gamma", _float("lr_gamma", self.lr_gamma))
        put("milestones", _ints("milestones", self.milestones, 0))
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones: must be strictly increasing epochs, got {list(self.milestones)}")
        if self.dataset not in data.DATASETS:
            raise ValueError(f"dataset: unknown {self.dataset!r}; allowed: {', '.join(data.DATASETS)}")
        if self.optimal_width is not None:
            put("optimal_width", _int("optimal_width", self.optimal_width))
            if not 1 <= self.optimal_width <= min(self.widths):
                raise ValueError(f"optimal_width: must be in [1, {min(self.widths)}], got {self.optimal_width}")
        if self.structure is not None:
            put("structure", _ints("structure", self.structure))
        if self.kind != "prune":
            s = self.structure
            if s is None or len(s) != len(self.widths) or any(d > w for d, w in zip(s, self.widths)):
                raise ValueError(f"structure: need {len(self.widths)} unit counts within widths "
                                 f"{self.widths}, got {None if s is None else list(s)}")
        if self.method == "search":
            if self.mask_index is None:
                raise ValueError("mask_index: a search run needs the index of its mask")
            put("mask_index", _int("mask_index", self.mask_index, 0))
            n = len(self.space())
            if self.mask_index >= n:
                raise ValueError(f"mask_index: must be in [0, {n}) for structure {self.structure}, got {self.mask_index}")
        n_w = mlp.weight_count(self.trained_widths)
        if self.kind == "prune" and registry.get(self.method).needs_budget:
            if self.budget is None and self.density is not None:
                d = _float("density", self.density)
                if not 0 < d <= 1:
                    raise ValueError(f"density: must be in (0, 1], got {d}")
                put("budget", max(1, int(round(d * n_w))))
            if self.budget is None:
                raise ValueError(f"budget: method {self.method!r} needs a weight budget")
            put("budget", _int("budget", self.budget))
            if not 1 <= self.budget < n_w:
                raise ValueError(f"budget: must be in [1, {n_w - 1}] for widths {self.trained_widths} "
                                 f"({n_w} weights), got {self.budget}")
        put("method_params", self._resolved_method_params())
        if self.mask is not None:
            from sparsejax import runs
            runs.explicit_weight_masks(self.to_dict())
        if self.init != "random":
            if not isinstance(self.init, str) or not os.path.isfile(self.init):
                raise ValueError(f"init: not a file: {self.init!r}")
            params = load_init(self.init)
            if mlp.widths_of(params) != self.widths:
                raise ValueError(f"init: file {self.init!r} has widths {mlp.widths_of(params)}, runs ask for {self.widths}")
            put("init_sha256", file_sha256(self.init))

    # --------------------------------------------------------------------------- views

    @property
    def kind(self) -> str:
        """``"prune"`` (a registry method), ``"structured"`` or ``"search"``."""
        return self.method if self.method in SEARCH_KINDS else "prune"

    @property
    def trained_widths(self) -> tuple[int, ...]:
        """The shape actually trained: ``structure`` for phase 2, ``optimal_width`` slices, else widths."""
        if self.method == "search":
            return tuple(self.structure)
        if self.optimal_width is not None:
            return (self.optimal_width,) * len(self.widths)
        return tuple(self.widths)

    def space(self):
        """The phase-2 :class:`~sparsejax.search.product.MaskSpace` of ``structure``."""
        opts = self.mask_space or {}
        return _mask_space(tuple(self.structure), opts.get("max_weight_sum"), opts.get("first_k_w2"))

    def params(self):
        """The method's params object (its defaults when ``method_params`` is None)."""
        from sparsejax.pruning import registry
        return params_type(self.method)(**(self.method_params or {}))

    def _resolved_method_params(self) -> dict | None:
        """``method_params`` as the dict of fields differing from the method's defaults (None if
        none): what is stored and hashed. ValueError naming an unknown or bad field."""
        mp = self.method_params
        if mp is None:
            return None
        ptype = params_type(self.method)
        if dataclasses.is_dataclass(mp) and not isinstance(mp, type):
            if not isinstance(mp, ptype):
                raise ValueError(f"method_params: {type(mp).__name__} is not the params type of "
                                 f"{self.method!r} ({ptype.__name__})")
            mp = dataclasses.asdict(mp)
        if not isinstance(mp, Mapping):
            raise ValueError(f"method_params: must be a mapping of {ptype.__name__} fields, got {mp!r:.60}")
        names = {f.name for f in dataclasses.fields(ptype)}
        unknown = sorted(set(mp) - names)
        if unknown:
            raise ValueError(f"method_params: {self.method!r} has no parameter {unknown[0]!r}; "
                             f"allowed: {', '.join(sorted(names)) or '(none)'}")
        try:
            obj = ptype(**mp)
        except (TypeError, ValueError) as err:
            raise ValueError(f"method_params: {' '.join(str(err).split())}") from None
        default = ptype()
        diff = {k: identity.normalise(getattr(obj, k)) for k in sorted(names)
                if identity.normalise(getattr(obj, k)) != identity.normalise(getattr(default, k))}
        return diff or None

    def to_dict(self) -> dict[str, Any]:
        """Every field spelled out, normalised as the store keeps it (``identity.resolve``)."""
        return identity.resolve({f: getattr(self, f) for f in _fields()})

    @property
    def run_id(self) -> str:
        return identity.run_id(self.to_dict())

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "RunConfig":
        """A RunConfig from a (partial) config mapping; ValueError naming an unknown field."""
        if not isinstance(config, Mapping):
            raise ValueError(f"config: must be a mapping, got {type(config).__name__}")
        fields = _fields()
        unknown = [k for k in config if k not in fields]
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown config field; allowed: {', '.join(fields)}")
        cfg = identity.resolve(config)
        if cfg.get("mask") is not None:
            cfg["mask"] = tuple(cfg["mask"]) if isinstance(cfg["mask"], list) else cfg["mask"]
        return cls(**{k: cfg[k] for k in fields if k in cfg})


@dataclasses.dataclass(frozen=True)
class NoParams:
    """The params type of a method without hyperparameters of its own."""


def params_type(method: str) -> type:
    """The frozen params dataclass of a registry method (``NoParams`` for the search kinds and
    methods that declare none)."""
    from sparsejax.pruning import registry
    if method in SEARCH_KINDS:
        return NoParams
    return getattr(registry.get(method), "params_type", None) or NoParams


def parse_method_params(text: str | None, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``method.field=value,...`` (e.g. ``gmp.cubic_events=99,rigl.delta_t=50``) as
    ``{method: {field: value}}``, each value converted to the type of the field's default and
    checked by constructing the method's params; ValueError naming ``--method_params``. Every
    method named must be in ``methods`` (the launch's), so a typo never silently does nothing."""
    out: dict[str, dict[str, Any]] = {}
    if not text:
        return out
    for item in str(text).split(","):
        key, eq, raw = item.strip().partition("=")
        method, dot, field = key.partition(".")
        if not (eq and dot and method and field and raw):
            raise ValueError(f"--method_params: {item.strip()!r} is not method.field=value "
                             "(e.g. gmp.cubic_events=99,rigl.delta_t=50)")
        if method not in methods:
            raise ValueError(f"--method_params: {method!r} is not a method of this launch "
                             f"({', '.join(methods)})")
        ptype = params_type(method)
        fields = {f.name: f for f in dataclasses.fields(ptype)}
        if field not in fields:
            raise ValueError(f"--method_params: {method!r} has no parameter {field!r}; "
                             f"allowed: {', '.join(sorted(fields)) or '(none)'}")
        kind = type(getattr(ptype(), field))
        try:
            if kind is bool:
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                value: Any = raw.lower() in ("true", "1")
            else:
                value = kind(raw)
        except ValueError:
            raise ValueError(f"--method_params: {method}.{field} needs a {kind.__name__}, got {raw!r}") from None
        out.setdefault(method, {})[field] = value
    for method, mp in out.items():
        try:
            params_type(method)(**mp)
        except (TypeError, ValueError) as err:
            raise ValueError(f"--method_params: {method}: {' '.join(str(err).split())}") from None
    return out


@functools.lru_cache(maxsize=8)
def load_init(path: str):
    """The init file's network (cached): a width-D network with PyTorch names."""
    from sparsejax import mlp
    return mlp.load_npz(path)


@functools.lru_cache(maxsize=64)
def _mask_space(structure: tuple[int, ...], max_weight_sum, first_k_w2):
    from sparsejax.search.product import MaskSpace
    return MaskSpace(structure, max_weight_sum=max_weight_sum, first_k_w2=first_k_w2)


def resolve(config: Mapping[str, Any] | RunConfig) -> dict[str, Any]:
    """The resolved, validated config dict of a run (the store's form)."""
    rc = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    return rc.to_dict()


def reaches(accuracy: float, target: float) -> bool:
    """The one definition of "reaches the target": strictly greater, as the paper's search
    ("best accuracy exceeds ρ"). NaN never reaches."""
    return bool(accuracy > target)
