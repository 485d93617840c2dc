"""Sweep plans: which runs to train, split into shards and populations.

A :class:`Plan` is a de-duplicated list of resolved, validated run configs with their ids. It is
built before any work starts, so one bad config stops a sweep before a file is written.

* :func:`grid` spells a cartesian product of config axes (later axes vary fastest);
* :func:`shard` splits a plan into disjoint parts whose union is the plan (one per job);
* :func:`groups` cuts a plan into populations: runs sharing one compiled program
  (``runs.program_key``), at most ``population_size`` each;
* :func:`cost` counts model-steps (one SGD step of one model), the unit of progress and ETA;
* :func:`count_configs` counts runs and model-steps of a grid without building its plan (planning
  the paper's study in seconds; ``sparsejax.sweep.cost`` turns the counts into hours).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from sparsejax import data, runs
from sparsejax.sweep import cost as cost_lib
from sparsejax.sweep import identity


_AXIS_TYPES = (list, tuple, range, np.ndarray)


# ----------------------------------------------------------------------------- grid

def grid(**axes: Any) -> list[dict]:
    """The cartesian product of ``axes`` as config dicts, later axes varying fastest.

    An axis given as a list, tuple, range or array lists its values; any other value (a string,
    number, None, dict) is one fixed value. So a single ``widths`` must be wrapped:
    ``grid(widths=[(3, 3, 3)], lr=[0.05, 0.1])``. An axis with no values is an error (it would
    silently make the whole grid empty).
    """
    names, values = [], []
    for name, axis in axes.items():
        vals = list(axis) if isinstance(axis, _AXIS_TYPES) else [axis]
        if not vals:
            raise ValueError(f"{name}: grid axis has no values")
        names.append(name)
        values.append(vals)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


# ----------------------------------------------------------------------------- plan

def _describe(config: Mapping[str, Any], limit: int = 160) -> str:
    """A short one-line rendering of a config for error messages."""
    try:
        text = json.dumps(identity.minimal(config), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(dict(config))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def validate_all(configs: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Every config resolved by ``runs.validate``; the first bad one raises ValueError.

    The message keeps ``runs.validate``'s "field: ..." form and appends which config failed.
    """
    out = []
    for i, config in enumerate(configs):
        try:
            out.append(runs.validate(dict(config)))
        except (ValueError, TypeError) as err:
            msg = " ".join(str(err).split())
            raise ValueError(f"{msg} (config #{i}: {_describe(config)})") from None
    return out


class Plan:
    """Resolved, validated configs of a sweep with their run ids, first occurrence kept.

    ``Plan(configs)`` validates EVERY config before returning (``runs.validate``), so a sweep
    never starts on a plan with a bad run. ``duplicates`` counts configs dropped because an
    earlier one had the same id. Iterating yields the configs; ``ids[i]`` names ``configs[i]``.
    """

    def __init__(self, configs: Iterable[Mapping[str, Any]]) -> None:
        resolved = validate_all(configs)
        ids = [identity.run_id(c) for c in resolved]
        seen: set[str] = set()
        keep_cfgs, keep_ids = [], []
        for rid, cfg in zip(ids, resolved):
            if rid not in seen:
                seen.add(rid)
                keep_cfgs.append(cfg)
                keep_ids.append(rid)
        self._set(keep_cfgs, keep_ids)
        self.duplicates = len(resolved) - len(keep_ids)

    @classmethod
    def _validated(cls, configs: Sequence[dict], ids: Sequence[str]) -> "Plan":
        """A plan from configs already validated and de-duplicated (subsets of a plan)."""
        plan = cls.__new__(cls)
        plan._set(list(configs), list(ids))
        plan.duplicates = 0
        return plan

    def _set(self, configs: list[dict], ids: list[str]) -> None:
        self.configs: tuple[dict, ...] = tuple(configs)
        self.ids: tuple[str, ...] = tuple(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.configs)

    def __repr__(self) -> str:
        return f"Plan({len(self)} runs, {len(set(self.program_keys()))} programs)"

    def program_keys(self) -> list[tuple]:
        """``runs.program_key`` of every run, in plan order."""
        return [runs.program_key(c) for c in self.configs]

    def select(self, keep: Sequence[int]) -> "Plan":
        """The sub-plan of the runs at positions ``keep`` (in that order)."""
        return Plan._validated([self.configs[i] for i in keep], [self.ids[i] for i in keep])

    def without(self, ids: Iterable[str]) -> "Plan":
        """The sub-plan of runs whose id is not in ``ids`` (e.g. those already stored)."""
        drop = set(ids)
        return self.select([i for i, rid in enumerate(self.ids) if rid not in drop])


# ----------------------------------------------------------------------------- cost

@functools.lru_cache(maxsize=None)
def _n_examples(dataset: str) -> int:
    return int(data.load(dataset)[0].shape[0])


def steps_multiplier(cfg: Mapping[str, Any]) -> int:
    """How many full trainings a run costs: the method's ``training_passes`` with the run's
    ``method_params`` (LTH: its rounds, 5 by default), 1 for the search kinds."""
    if cfg["method"] in runs.SEARCH_KINDS:
        return 1
    return int(runs.registry.instance(cfg["method"], cfg.get("method_params")).training_passes)


def run_cost(cfg: Mapping[str, Any]) -> int:
    """Model-steps of one resolved run: epochs x steps per epoch (390) x multiplier."""
    steps_per_epoch = _n_examples(cfg["dataset"]) // int(cfg["batch_size"])
    return int(cfg["epochs"]) * steps_per_epoch * steps_multiplier(cfg)


def cost(plan: Plan | Iterable[Mapping[str, Any]]) -> int:
    """Total model-steps of a plan (or of a list of resolved configs)."""
    return sum(run_cost(c) for c in plan)


# ----------------------------------------------------------------------------- order

def program_order(plan: Plan) -> list[int]:
    """Plan positions grouped by program key, groups in order of first appearance.

    Within a group the plan order is kept. Both :func:`shard` and :func:`groups` use this
    order, so a shard holds whole program groups except at its two ends (few compiles).
    """
    by_key: dict[tuple, list[int]] = {}
    for i, key in enumerate(plan.program_keys()):
        by_key.setdefault(key, []).append(i)
    return [i for members in by_key.values() for i in members]


def shard(plan: Plan, num_shards: int, shard_index: int) -> Plan:
    """Shard ``shard_index`` of ``num_shards``: a contiguous range of :func:`program_order`.

    Ranges are balanced by cost (model-steps), not by run count: run ``i`` belongs to the shard
    in which the midpoint of its cost interval falls. The shards are disjoint and their union is
    the plan, for any ``num_shards`` (some shards may be empty when runs are few).
    """
    if int(num_shards) < 1:
        raise ValueError(f"num_shards: must be >= 1, got {num_shards}")
    if not 0 <= int(shard_index) < int(num_shards):
        raise ValueError(f"shard_index: must be in [0, {num_shards}), got {shard_index}")
    order = program_order(plan)
    costs = np.asarray([run_cost(plan.configs[i]) for i in order], np.float64)
    total = costs.sum()
    if total <= 0:
        owner = (np.arange(len(order)) * int(num_shards)) // max(len(order), 1)
    else:
        mid = np.cumsum(costs) - costs / 2
        owner = np.minimum((mid * int(num_shards) / total).astype(np.int64), int(num_shards) - 1)
    return plan.select([i for i, o in zip(order, owner) if o == int(shard_index)])


def groups(plan: Plan, population_size: int) -> list[list[dict]]:
    """Populations: runs of one program key, at most ``population_size`` each.

    Program groups come in order of first appearance in the plan; each group is cut into
    consecutive populations of ``population_size`` (the last one may be smaller).
    """
    if int(population_size) < 1:
        raise ValueError(f"population_size: must be >= 1, got {population_size}")
    size = int(population_size)
    order = program_order(plan)
    keys = plan.program_keys()
    out: list[list[dict]] = []
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and keys[order[end]] == keys[order[start]] and end - start < size:
            end += 1
        out.append([plan.configs[i] for i in order[start:end]])
        start = end
    return out


# ----------------------------------------------------------------------------- fast counting

@dataclasses.dataclass
class Count:
    """Runs, model-steps and model-steps per trained shape of some work, counted without
    building a :class:`Plan` (no validation or hashing of every run: see :func:`count_configs`)."""
    runs: int = 0
    model_steps: int = 0
    steps_by_shape: dict[tuple[int, ...], int] = dataclasses.field(default_factory=dict)

    def add(self, shape: tuple[int, ...], runs: int, steps: int) -> None:
        self.runs += int(runs)
        self.model_steps += int(steps)
        self.steps_by_shape[shape] = self.steps_by_shape.get(shape, 0) + int(steps)

    def __iadd__(self, other: "Count") -> "Count":
        for shape, steps in other.steps_by_shape.items():
            self.steps_by_shape[shape] = self.steps_by_shape.get(shape, 0) + steps
        self.runs += other.runs
        self.model_steps += other.model_steps
        return self


def _raw_cost(cfg: Mapping[str, Any]) -> tuple[tuple[int, ...], int]:
    """(trained shape, model-steps) of an unvalidated config: its fields over the defaults,
    with no normalisation (what :func:`run_cost` and ``runs.trained_widths`` read)."""
    full = {**identity.DEFAULTS, **cfg}
    steps = int(full["epochs"]) * (_n_examples(full["dataset"]) // int(full["batch_size"])) * steps_multiplier(full)
    return _cost_shape(full), steps


def _cost_shape(cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape a run is expected to train at: its trained widths, or for a compacted
    pruning-at-init run (``runs.compacts``) the measured compacted estimate (``cost``)."""
    shape = runs.trained_widths(cfg)
    return cost_lib.compacted_shape(shape) if runs.compacts(cfg) else shape


def sample_positions(n: int, k: int) -> list[int]:
    """``k`` evenly spaced positions of ``range(n)``, first and last included (all when n <= k)."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [0][:max(k, 0)]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def count_configs(configs: Sequence[Mapping[str, Any]], sample: int = 16) -> Count:
    """Runs and model-steps of ``configs`` without validating or hashing each one.

    A :class:`Plan` validates and hashes every config (about 1 ms each: minutes for the paper's
    485,838 runs); planning only needs counts. So every config is costed from its raw fields,
    and an evenly spaced ``sample`` of them is validated and hashed (a bad grid still fails
    here, naming its config). The count assumes no two configs share a run id, which holds for
    grids whose axes have distinct values; the sample is checked for duplicates too.
    """
    picked = [configs[i] for i in sample_positions(len(configs), sample)]
    checked = Plan(picked)
    if checked.duplicates:
        raise ValueError(f"plan: {checked.duplicates} duplicate runs in a sample of the grid; count it with Plan")
    out = Count()
    memo: dict[tuple, tuple[tuple[int, ...], int]] = {}
    for cfg in configs:
        key = tuple(cfg.get(f) for f in _COST_FIELDS)
        try:
            shape, steps = memo[key]
        except KeyError:
            shape, steps = memo[key] = _raw_cost(cfg)
        except TypeError:  # an unhashable field value (a list): cost it directly
            shape, steps = _raw_cost(cfg)
        out.add(shape, 1, steps)
    return out


# the fields that decide a run's cost and trained shape (``_raw_cost``)
_COST_FIELDS = ("method", "widths", "structure", "optimal_width", "epochs", "dataset", "batch_size")


def count_plan(plan: "Plan") -> Count:
    """The :class:`Count` of a built plan."""
    out = Count()
    for cfg in plan.configs:
        out.add(_cost_shape(cfg), 1, run_cost(cfg))
    return out
