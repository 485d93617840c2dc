"""The sweep runner: train a plan population by population into a store, resumably.

``run_sweep`` skips runs already in the store, trains the rest in populations of one compiled
program (``plan.groups``) and writes each population's records in ONE store transaction, so a
``kill -9`` at any moment loses at most the population in flight; relaunching the same command
finishes the sweep. After each population the store's WAL is checkpointed, so a lost ``-wal``
file costs at most the population in flight. Progress (runs done of the whole job,
model-steps/s without compiles, the
job's ETA) is one live line of :mod:`sparsejax.sweep.progress`; each population also logs one
line to ``log``.

With more than one device the population axis is sharded over all of them
(``NamedSharding(Mesh(devices, ('p',)), PartitionSpec('p'))``): the population is padded with
copies of its last run to a multiple of the device count and the padded records are dropped.
The trainer is vmapped over the population, so every model computes exactly what it computes
unsharded.

Every record carries the numeric path it was computed on (``sweep.numeric_path``: backend,
kernel, library and code versions), and the store's meta records the path of the machine that
first wrote to it. Resuming into a store whose path differs from this machine's is refused
before anything is written (``numeric path: ...``, exit 2 from a launcher): the same run ids
would get other numbers. ``allow_numeric_path_change`` (``--allow_numeric_path_change``)
resumes anyway and marks every record written then with ``"differs_from_store": true``.
"""
from __future__ import annotations

import contextlib
import gc
import os
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sparsejax import runs
from sparsejax.sweep import identity
from sparsejax.sweep import cost as cost_lib
from sparsejax.sweep import numeric_path as numeric_path_lib
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import progress as progress_lib
from sparsejax.sweep.store import Store, StoreError

POPULATION_AXIS = "p"
Log = Callable[[str], None]


# ----------------------------------------------------------------------------- devices

def population_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all) with the population axis ``'p'``."""
    devs = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devs), (POPULATION_AXIS,))


def shard_population(tree: Any, devices: Sequence[Any] | None = None) -> Any:
    """``tree`` placed on all devices, leaves with the population axis split along it.

    The population size P is the leading dimension of the first leaf; every leaf whose leading
    dimension is P is sharded with ``PartitionSpec('p')``, any other leaf (shared scalars) is
    replicated. On one device the tree is returned unchanged. P must be a multiple of the
    device count (see :func:`pad_configs`).
    """
    devs = list(jax.devices() if devices is None else devices)
    leaves = jax.tree.leaves(tree)
    if len(devs) <= 1 or not leaves:
        return tree
    size = int(np.shape(leaves[0])[0])
    if size % len(devs):
        raise ValueError(f"population_size: {size} runs do not split over {len(devs)} devices; "
                         "pad the population to a multiple of the device count")
    mesh = population_mesh(devs)
    split = NamedSharding(mesh, PartitionSpec(POPULATION_AXIS))
    whole = NamedSharding(mesh, PartitionSpec())

    def put(leaf: Any) -> Any:
        shape = np.shape(leaf)
        return jax.device_put(leaf, split if len(shape) >= 1 and shape[0] == size else whole)
    return jax.tree.map(put, tree)


def pad_configs(configs: Sequence[dict], multiple: int) -> list[dict]:
    """``configs`` followed by copies of the last one, up to a multiple of ``multiple``."""
    configs = list(configs)
    pad = (-len(configs)) % max(int(multiple), 1)
    return configs + [configs[-1]] * pad if configs else configs


def bucket_size(n: int, n_devices: int = 1) -> int:
    """The population size actually trained for `n` runs: the next power of two (so the tail
    populations of a sweep reuse a handful of compiled programs), a multiple of the devices."""
    size = 1 << max(0, int(n) - 1).bit_length()
    return size + (-size) % max(int(n_devices), 1)


def train_population(configs: Sequence[dict], chunk_steps: int = 390,
                     devices: Sequence[Any] | None = None,
                     progress: Callable[[int, int, float], None] | None = None) -> list[dict]:
    """``runs.run_population`` over all ``devices``: one record per config, in order.

    The population is padded (copies of its last run) to :func:`bucket_size` so populations of
    nearby sizes share one compiled program; on several devices it is sharded along P. The
    padding's records are dropped.
    """
    devs = list(jax.devices() if devices is None else devices)
    padded = pad_configs(configs, bucket_size(len(configs), len(devs)))
    place = (lambda pop: shard_population(pop, devs)) if len(devs) > 1 else None
    records = runs.run_population(padded, chunk_steps=chunk_steps, progress=progress, place=place)
    return records[:len(configs)]


# ----------------------------------------------------------------------------- store access

def _check_store_path(store_path: str | os.PathLike | None, dry_run: bool) -> str | None:
    """The store path as a string; ValueError("store: ...") when it cannot be one."""
    if store_path is None or str(store_path) == "":
        if dry_run:
            return None
        raise ValueError("store: a store file path is required")
    path = os.fspath(store_path)
    if os.path.isdir(path):
        raise ValueError(f"store: {path} is a directory, not a sweep store file")
    if not os.path.exists(path) and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ValueError(f"store: {path}: directory {os.path.dirname(os.path.abspath(path))} does not exist")
    return path


def _open_store(path: str, create: bool) -> Store:
    """``Store(path, create)`` (create=False: read-only) with a StoreError turned into
    ValueError("store: ...")."""
    try:
        return Store(path, create=create)
    except StoreError as err:
        raise ValueError(f"store: {err}") from None


def _is_blank(path: str) -> bool:
    """Whether ``path`` is missing or a store file that holds no tables (zero bytes, or a
    creation cut short): a writer (re)creates it, so there is no numeric path to check."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return True
    try:
        Store(path, create=False).close()
    except StoreError as err:
        return "creation was interrupted" in str(err)
    return False


def check_numeric_path(store_path: str, allow_change: bool) -> tuple[dict | None, bool]:
    """(the store's recorded numeric path, whether it differs from this machine's), read
    without writing; ValueError("numeric path: ...") when it differs and ``allow_change`` is
    False. A store without runs (or a blank file) has nothing to differ from."""
    if _is_blank(store_path):
        return None, False
    with _open_store(store_path, create=False) as store:
        try:
            store.check_config_schema()
        except StoreError as err:
            raise ValueError(f"store: {err}") from None
        stored, empty = store.numeric_path(), store.count() == 0
    if stored is None and empty:
        return None, False
    diff = numeric_path_lib.differences(stored, numeric_path_lib.store_path())
    if diff and not allow_change:
        raise ValueError(f"numeric path: store {store_path} was written on another numeric path "
                         f"({'; '.join(diff)}); its runs would get other numbers here. Resume with "
                         "--allow_numeric_path_change to add runs anyway (they are marked), or use "
                         "another --store")
    return stored, bool(diff)


def _flag_allows_change() -> bool:
    """``--allow_numeric_path_change`` where a launcher defined and parsed the sweep flags."""
    from absl import flags

    fv = flags.FLAGS
    return ("allow_numeric_path_change" in fv and fv.is_parsed()
            and bool(fv["allow_numeric_path_change"].value))


MAPS_HEADROOM = 0.5  # clear JAX's compiled programs above this share of vm.max_map_count


def _map_counts() -> tuple[int, int] | None:
    """(memory mappings of this process, the kernel's limit), or None off Linux."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f), limit
    except (OSError, ValueError):
        return None


def relieve_memory_maps(log: Log = logging.info, headroom: float = MAPS_HEADROOM) -> bool:
    """Drop JAX's compiled programs when this process holds more than ``headroom`` of the
    kernel's memory-mapping limit; returns whether it did. Every XLA:CPU executable keeps ~3
    mappings, so a long sweep compiling many shapes (compaction groups, phase-1 buckets) would
    otherwise reach vm.max_map_count, where the next compile crashes the process. Programs are
    recompiled on demand: numbers do not change, only time."""
    counts = _map_counts()
    if counts is None or counts[0] <= headroom * counts[1]:
        return False
    jax.clear_caches()
    gc.collect()
    log(f"sweep: {counts[0]:,} memory mappings of {counts[1]:,} allowed: cleared JAX's compiled programs")
    return True


def count_done(plan: plan_lib.Plan, store_path: str | None) -> set[str]:
    """Ids of ``plan`` already in the store, without creating anything (dry runs).

    A missing store, or a blank one (no tables: its creation was cut short), counts as empty;
    an existing file must be a sweep store.
    """
    if store_path is None or _is_blank(store_path):
        return set()
    with _open_store(store_path, create=False) as store:
        try:
            return store.done_ids(plan.ids)
        except StoreError as err:  # a damaged record among the plan's
            raise ValueError(f"store: {err}") from None


# ----------------------------------------------------------------------------- sweep

def _dry_run(plan: plan_lib.Plan, store_path: str | None, echo: Log) -> dict:
    """Count done runs and cost without creating or writing anything."""
    done = count_done(plan, store_path)
    todo = plan.without(done)
    summary = {"total": len(plan), "done": len(done), "todo": len(todo),
               "cost_total": plan_lib.cost(plan), "cost_todo": plan_lib.cost(todo),
               "dry_run": True}
    echo(f"runs: total={summary['total']} done={summary['done']} todo={summary['todo']}")
    echo(f"cost: model-steps total={summary['cost_total']} todo={summary['cost_todo']}")
    if todo:
        secs = cost_lib.seconds(plan_lib.count_plan(todo).steps_by_shape)
        summary["predicted_seconds"] = secs
        echo(f"predicted: {cost_lib.hms(secs)} of training for the todo runs at the measured throughput "
             f"(sparsejax.sweep.cost; compacted shapes estimated)")
    if store_path is not None and todo:
        try:
            check_numeric_path(store_path, allow_change=False)
        except ValueError as err:
            summary["numeric_path_differs"] = True
            echo(f"warning: a launch would be refused: {err}")
    return summary


def run_sweep(plan: plan_lib.Plan, store_path: str | os.PathLike | None, population_size: int = 1024,
              chunk_steps: int = 390, dry_run: bool = False, log: Log = logging.info,
              devices: Sequence[Any] | None = None, echo: Log = print,
              allow_numeric_path_change: bool | None = None) -> dict:
    """Train every run of ``plan`` not yet in the store at ``store_path``; returns a summary.

    ``dry_run`` creates nothing: it prints (``echo``) ``runs: total=N done=D todo=T`` and the
    cost line. Otherwise the store is opened (created if missing), finished runs are skipped,
    and each population is trained and written in one transaction, logging one line (``log``).
    Bad arguments or a file that is not a sweep store raise ValueError("field: ...") before
    anything is created, and so does a store of another numeric path (``numeric path: ...``,
    see the module docstring) unless ``allow_numeric_path_change``; None reads the launcher's
    ``--allow_numeric_path_change`` flag when the sweep flags are defined, else False.
    """
    if int(population_size) < 1:
        raise ValueError(f"population_size: must be >= 1, got {population_size}")
    if int(chunk_steps) < 1:
        raise ValueError(f"chunk_steps: must be >= 1, got {chunk_steps}")
    path = _check_store_path(store_path, dry_run)
    if dry_run:
        return _dry_run(plan, path, echo)
    if allow_numeric_path_change is None:
        allow_numeric_path_change = _flag_allows_change()
    devs = list(jax.devices() if devices is None else devices)
    _, differs = check_numeric_path(path, bool(allow_numeric_path_change))  # before any write
    with _open_store(path, create=True) as store:
        here = numeric_path_lib.store_path()
        differs = differs or bool(numeric_path_lib.differences(store.claim_numeric_path(here), here))
        if differs:
            log("sweep: numeric path differs from the store's (--allow_numeric_path_change): "
                "records written now are marked differs_from_store")
        return _train_all(plan, store, int(population_size), int(chunk_steps), devs, log, differs)


def _with_numeric_path(records: list[dict], differs: bool) -> list[dict]:
    """``records`` (one program: one trained shape) with this machine's numeric path added;
    ``differs`` marks them as written into a store of another path."""
    if not records:
        return records
    default = numeric_path_lib.record_path(runs.trained_widths(records[0]["config"]))
    out = []
    for rec in records:
        path = dict(rec.get("numeric_path") or default)  # run_population records its own
        if differs:
            path["differs_from_store"] = True
        out.append({**rec, "numeric_path": path})
    return out


def _train_all(plan: plan_lib.Plan, store: Store, population_size: int, chunk_steps: int,
               devices: list, log: Log, differs: bool = False) -> dict:
    """The training loop of :func:`run_sweep` over an open store.

    Progress goes to the open :class:`progress_lib.Job` (the launcher's whole job), else to a
    job of this sweep alone; ``log`` gets one line per population.
    """
    done_before = store.done_ids(plan.ids)
    todo = plan.without(done_before)
    pops = plan_lib.groups(todo, population_size)
    todo_steps = plan_lib.cost(todo)
    log(f"sweep: runs total={len(plan)} done={len(done_before)} todo={len(todo)} "
        f"in {len(pops)} populations of <= {population_size} on {len(devices)} device(s)")
    with contextlib.ExitStack() as stack:
        job = progress_lib.current() or stack.enter_context(progress_lib.Job("sweep"))
        job.claim(len(plan), plan_lib.cost(plan), len(done_before), plan_lib.cost(plan) - todo_steps)
        done, trained, trained_steps, t_start = len(done_before), 0, 0, time.perf_counter()
        for k, pop in enumerate(pops, 1):
            fresh = _not_yet_done(store, pop)  # another process may have finished some meanwhile
            if len(fresh) < len(pop):
                job.skipped(len(pop) - len(fresh), plan_lib.cost(pop) - plan_lib.cost(fresh))
                done += len(pop) - len(fresh)
            pop = fresh
            if not pop:
                continue
            t0 = time.perf_counter()
            records = train_population(pop, chunk_steps, devices, progress=job.population(len(pop)))
            store.write_records(_with_numeric_path(records, differs))
            relieve_memory_maps(log)
            seconds = time.perf_counter() - t0
            steps = plan_lib.cost(pop)
            job.population_done(len(pop), steps)
            done, trained, trained_steps = done + len(pop), trained + len(pop), trained_steps + steps
            rate = job.throughput()
            log(f"sweep: population {k}/{len(pops)} ({len(pop)} runs, {seconds:.1f}s): "
                f"runs {done}/{len(plan)} done, "
                + (f"{rate:,.0f} model-steps/s" if rate > 0 else "compiling (no steady chunk yet)")
                + f", job ETA {progress_lib.hms(job.eta())}")
    seconds = time.perf_counter() - t_start
    log(f"sweep: finished {trained} runs in {seconds:.1f}s; {done}/{len(plan)} runs in the store")
    return {"total": len(plan), "done_before": len(done_before), "todo": len(todo),
            "trained": trained, "populations": len(pops), "model_steps": trained_steps,
            "seconds": seconds, "model_steps_per_s": job.throughput(), "dry_run": False}


def _not_yet_done(store: Store, pop: list[dict]) -> list[dict]:
    """The configs of ``pop`` whose runs are not (yet) in the store."""
    ids = [identity.run_id(c) for c in pop]
    finished = store.done_ids(ids)
    return [c for c, rid in zip(pop, ids) if rid not in finished] if finished else pop
