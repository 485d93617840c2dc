"""One command that checks and measures sparsejax on whatever accelerator it finds (issue #14).

    PYTHONPATH=. python benchmarks/device_check.py --out=DIR            # GPU: ≤ 8 minutes
    PYTHONPATH=. python benchmarks/device_check.py --out=DIR --scale=0.05   # CPU dry run, ~1 min
    PYTHONPATH=. python benchmarks/device_check.py --write_reference    # CPU only: refresh the reference

Sections, each run in its own try/except (a failing one is reported with its traceback summary
and the others still run) and all under one global deadline (``--deadline_s``):

* ``environment``: backend, devices, versions, the step kernel each shape resolves to;
* ``correctness``: a few hundred runs of several shapes and methods (explicit masks, phase-2
  search masks, GMP, SNIP, RigL; 2 epochs) trained through ``runs.run_population`` with every
  available step kernel; each run's accuracy must be within ``--tolerance`` (1e-4) of the same
  run trained by the XLA step on the CPU, stored next to this script in
  ``device_reference.json`` (written by ``--write_reference`` on a CPU);
* ``sweep_slice``: a real slice end to end through ``sweep.runner.run_sweep`` and its store
  (4,096 phase-2 (3,3,3) search runs at 50 epochs on an accelerator, scaled down on the CPU);
* ``throughput``: model-steps/s at widths (3,3,3), (7,3,3), 16, 64, 256 for P = 1,024, 2,048, …
  until the device runs out of memory (RESOURCE_EXHAUSTED: the largest P that fits is recorded),
  the population cap or the per-shape time budget stops the doubling; one row per kernel.

Without an accelerator the same sections run as a scaled-down dry run on the CPU (auto-detected
or ``--cpu_dry_run``); ``--scale`` shrinks every section further (CI runs ``--scale=0.01``).
One JSON file goes into ``--out``; a Markdown block that ``benchmarks/RESULTS.md`` can take
verbatim is printed. Exit status: 0 when every section passed, 1 when one failed, 2 for bad
arguments (one line on stderr, nothing written).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import data, mlp, runs, train
from sparsejax.sweep import identity
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import runner

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "device_reference.json")
SECTIONS = ("environment", "correctness", "sweep_slice", "throughput")
SHAPES: dict[str, tuple[int, ...]] = {"3x3x3": (3, 3, 3), "7x3x3": (7, 3, 3), "16": (16, 16, 16),
                                      "64": (64, 64, 64), "256": (256, 256, 256)}
TOLERANCE = 1e-4
REFERENCE_EPOCHS = 2
# Widths beyond a kernel's design range are not timed: the fused CPU step loses to XLA's dots above
# train.FUSED_MAX_WIDTH; the lanes step materialises (I, O, B, P) products above its unroll size.
KERNEL_MAX_WIDTH = {"fused": train.FUSED_MAX_WIDTH, "xla_lanes": 16}
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OOM", "Failed to allocate")


def settings(dry_run: bool, scale: float) -> dict[str, Any]:
    """Section sizes: full on an accelerator, scaled down on the CPU, times ``scale``."""
    if dry_run:
        base = {"corr_fraction": 0.25, "p_start": 1024, "p_cap": 4096, "steps": 20, "shape_budget_s": 20.0,
                "sweep_runs": 256, "sweep_epochs": 3, "sweep_population": 256}
    else:
        base = {"corr_fraction": 1.0, "p_start": 1024, "p_cap": 1 << 24, "steps": 50, "shape_budget_s": 25.0,
                "sweep_runs": 4096, "sweep_epochs": 50, "sweep_population": 4096}
    s = dict(base)
    s["corr_fraction"] = min(1.0, base["corr_fraction"] * scale)
    s["p_cap"] = max(base["p_start"], int(base["p_cap"] * min(1.0, scale)))
    s["steps"] = max(2, int(round(base["steps"] * min(1.0, scale ** 0.5))))
    s["shape_budget_s"] = base["shape_budget_s"] * min(1.0, scale ** 0.5)
    s["sweep_runs"] = max(8, int(base["sweep_runs"] * scale))
    s["sweep_epochs"] = max(1, int(round(base["sweep_epochs"] * min(1.0, scale))))
    s["sweep_population"] = min(base["sweep_population"], max(8, int(base["sweep_population"] * scale)))
    return s


# ----------------------------------------------------------------------------- helpers

class Deadline:
    """The global wall-clock budget of the whole check."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def _is_oom(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    return isinstance(err, MemoryError) or any(m in text for m in OOM_MARKERS)


def _traceback_summary(err: BaseException, limit: int = 6) -> list[str]:
    """The last frames of a traceback and the error line, short enough for a JSON field."""
    frames = traceback.extract_tb(err.__traceback__)[-limit:]
    lines = [f"{os.path.relpath(f.filename) if f.filename.startswith(os.getcwd()) else f.filename}:{f.lineno} in {f.name}"
             for f in frames]
    return lines + [f"{type(err).__name__}: {str(err).splitlines()[0][:400] if str(err) else ''}"]


@contextlib.contextmanager
def forced_kernel(kernel: str) -> Iterator[None]:
    """Have ``kernel="auto"`` resolve to `kernel` meanwhile.

    ``runs.run_population`` (and so the sweep runner) trains with ``TrainConfig(kernel="auto")``
    and takes no kernel argument; the check needs the same runs on every kernel, so it swaps
    ``train.resolve_kernel`` (looked up at call time by ``train.chunk_fn``) for the duration.
    """
    original = train.resolve_kernel

    def resolve(name: str, widths=mlp.DEFAULT_WIDTHS) -> str:
        return original(kernel if name == "auto" else name, widths)
    train.resolve_kernel = resolve
    try:
        yield
    finally:
        train.resolve_kernel = original


def available_kernels() -> list[str]:
    """Step kernels that resolve on this backend (every name of train.KERNELS but "auto")."""
    out = []
    for k in train.KERNELS:
        if k == "auto":
            continue
        try:
            out.append(train.resolve_kernel(k, (3, 3, 3)))
        except (RuntimeError, ValueError):
            continue
    return list(dict.fromkeys(out))


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "jax": jax.__version__}
    for name in ("jaxlib", "numpy", "optax", "flax"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - optional packages
            out[name] = "absent"
    return out


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- correctness runs

def correctness_groups() -> list[tuple[str, list[dict]]]:
    """The fixed reference runs (2 epochs): (group name, configs), one program per group.

    Per-model lr (0.05, 0.1, 0.2) and all three schedules vary inside every group, so masks,
    momentum, weight decay and per-model schedules are all exercised.
    """
    rng = np.random.default_rng(14)
    lrs, scheds = (0.05, 0.1, 0.2), train.SCHEDULES
    common = lambda i: {"epochs": REFERENCE_EPOCHS, "lr": lrs[i % 3], "schedule": scheds[(i // 3) % 3],  # noqa: E731
                        "seed": i}

    def explicit(widths, n, density):
        out = []
        for i in range(n):
            masks = [(rng.random((o, ii)) < density).astype(np.uint8) for ii, o in mlp.layer_shapes(widths)]
            masks[-1][:] = 1
            out.append({"method": "dense", "widths": widths, "mask": [identity.encode_mask(m) for m in masks],
                        **common(i)})
        return out

    def search(structure, widths, n):
        size = len(runs.mask_space({"structure": structure}))
        idx = np.unique(np.linspace(0, size - 1, n).astype(np.int64))
        return [{"method": "search", "widths": widths, "structure": structure, "mask_index": int(k), **common(i)}
                for i, k in enumerate(idx)]

    def pruned(method, n, widths=(16, 16, 16)):
        budgets = np.linspace(20, 400, n).astype(int)
        return [{"method": method, "widths": widths, "budget": int(b), **common(i)} for i, b in enumerate(budgets)]

    return [
        ("search_3x3x3", search((3, 3, 3), (3, 3, 3), 64)),
        ("explicit_mask_3x3x3", explicit((3, 3, 3), 64, 0.7)),
        ("search_7x3x3", search((7, 3, 3), (7, 3, 3), 48)),
        ("explicit_mask_16", explicit((16, 16, 16), 32, 0.3)),
        ("dense_16", [{"method": "dense", "widths": (16, 16, 16), **common(i)} for i in range(24)]),
        ("gmp_16", pruned("gmp", 32)),
        ("snip_16", pruned("snip", 32)),
        ("rigl_16", pruned("rigl", 32)),
    ]


def _subset(groups: list[tuple[str, list[dict]]], fraction: float) -> list[tuple[str, list[dict]]]:
    """The first ⌈fraction·n⌉ runs of each group; below 10 % only the two (3,3,3) groups."""
    if fraction < 0.1:
        groups = [g for g in groups if g[0] in ("search_3x3x3", "explicit_mask_3x3x3")]
    return [(name, cfgs[:max(2, math.ceil(len(cfgs) * fraction))]) for name, cfgs in groups]


def train_group(configs: list[dict], kernel: str) -> dict[str, dict]:
    """{run id: accuracy, nnz, diverged} of `configs` trained as one population on `kernel`."""
    with forced_kernel(kernel):
        records = runs.run_population(configs)
    return {r["run_id"]: {"accuracy": r["accuracy"], "weight_nnz": r["weight_nnz"], "diverged": r["diverged"]}
            for r in records}


# Library sources whose semantics the reference numbers depend on (hashed into the reference, so
# a failing check can say whether the code changed since the reference was written).
REFERENCE_SOURCES = ("mlp.py", "train.py", "shuffle.py", "data.py", "runs.py", "pruning", "search",
                     "sweep/identity.py")


def source_hashes() -> dict[str, str]:
    """sha256 (16 hex) of every library file in REFERENCE_SOURCES, by path under sparsejax/."""
    import hashlib
    root = os.path.join(os.path.dirname(HERE), "sparsejax")
    out = {}
    for entry in REFERENCE_SOURCES:
        full = os.path.join(root, entry)
        files = [full] if os.path.isfile(full) else sorted(
            os.path.join(full, f) for f in os.listdir(full) if f.endswith(".py")) if os.path.isdir(full) else []
        for f in files:
            with open(f, "rb") as fh:
                out[os.path.relpath(f, root)] = hashlib.sha256(fh.read()).hexdigest()[:16]
    return out


def write_reference(path: str, log: Callable[[str], None], groups: list[str] | None = None) -> dict:
    """Train the correctness runs with the XLA step on the CPU and store the numbers at `path`;
    with `groups`, only those groups are retrained and the others kept from the existing file."""
    if jax.default_backend() != "cpu":
        raise ValueError(f"write_reference: the reference is the CPU XLA path; this backend is {jax.default_backend()}")
    known = [name for name, _ in correctness_groups()]
    if groups is not None and (bad := [g for g in groups if g not in known]):
        raise ValueError(f"groups: unknown {bad}; allowed: {', '.join(known)}")
    old = {}
    if groups is not None and os.path.exists(path):
        with open(path) as f:
            old = json.load(f).get("groups", {})
    out = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "backend": "cpu", "kernel": "xla", "epochs": REFERENCE_EPOCHS, "machine": platform.platform(),
           "versions": _versions(), "git_commit": _git_commit(), "sources": source_hashes(), "groups": {}}
    for name, cfgs in correctness_groups():
        if groups is not None and name not in groups and name in old:
            out["groups"][name] = old[name]
            continue
        t0 = time.perf_counter()
        out["groups"][name] = train_group(cfgs, "xla")
        log(f"reference: {name}: {len(cfgs)} runs in {time.perf_counter() - t0:.1f}s")
    _atomic_write_json(path, out)
    return out


def section_correctness(ctx: dict) -> dict:
    """Every available kernel against the stored CPU-XLA reference, run by run."""
    with open(ctx["reference"]) as f:
        ref = json.load(f)
    groups = _subset(correctness_groups(), ctx["settings"]["corr_fraction"])
    now = source_hashes()
    changed = sorted(k for k in set(now) | set(ref.get("sources", {})) if now.get(k) != ref.get("sources", {}).get(k))
    result: dict[str, Any] = {"tolerance": ctx["tolerance"], "reference_created": ref.get("created"),
                              "sources_changed_since_reference": changed, "kernels": {}}
    for kernel in ctx["kernels"]:
        per_group, all_diffs, n_nnz, stopped = {}, [], 0, None
        for name, cfgs in groups:
            if ctx["deadline"].left() < 5:
                stopped = "global deadline reached"
                break
            stored = ref["groups"].get(name)
            if stored is None:
                raise ValueError(f"reference: group {name!r} missing from {ctx['reference']}; rerun --write_reference")
            ids = [identity.run_id(c) for c in cfgs]
            missing = [r for r in ids if r not in stored]
            if missing:
                raise ValueError(f"reference: {len(missing)} runs of {name} are not in {ctx['reference']} "
                                 "(the runs changed); rerun --write_reference on a CPU")
            t0 = time.perf_counter()
            got = train_group(cfgs, kernel)
            diffs = np.asarray([abs(got[r]["accuracy"] - stored[r]["accuracy"]) for r in ids])
            nnz_diff = sum(got[r]["weight_nnz"] != stored[r]["weight_nnz"] for r in ids)
            per_group[name] = {"runs": len(ids), "max_abs_diff": float(diffs.max()),
                               "over_tolerance": int(np.sum(diffs > ctx["tolerance"])),
                               "weight_nnz_mismatches": int(nnz_diff), "seconds": time.perf_counter() - t0}
            all_diffs.extend(diffs.tolist())
            n_nnz += nnz_diff
        d = np.asarray(all_diffs) if all_diffs else np.zeros(0)
        result["kernels"][kernel] = {
            "groups": per_group, "runs": int(d.size),
            "max_abs_diff": float(d.max()) if d.size else None,
            "over_tolerance": int(np.sum(d > ctx["tolerance"])), "weight_nnz_mismatches": int(n_nnz),
            "passed": bool(d.size) and bool(np.all(d <= ctx["tolerance"])) and stopped is None,
            "stopped": stopped}
    result["passed"] = all(k["passed"] for k in result["kernels"].values()) and bool(result["kernels"])
    if not result["passed"]:
        bad = {k: (v["over_tolerance"], v["max_abs_diff"], v["stopped"]) for k, v in result["kernels"].items()
               if not v["passed"]}
        hint = f"; library files changed since the reference: {', '.join(changed)}" if changed else ""
        raise AssertionError(f"correctness: runs off the CPU-XLA reference (kernel: over tolerance, max diff, "
                             f"stopped): {bad}{hint}", result)
    return result


# ----------------------------------------------------------------------------- throughput

def _population(p: int, widths: tuple[int, ...]) -> train.Population:
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(0), p), widths)
    return train.make_population(params, None, 0.05, "cosine", train.model_keys(0, np.arange(p)))


def time_step(p: int, widths: tuple[int, ...], kernel: str, steps: int, x, y) -> dict:
    """Compile + warm-up, then one timed call of `steps` steps of P models on `kernel`."""
    cfg = train.TrainConfig(widths=widths, epochs=max(1, math.ceil(2 * steps / 390)), chunk_steps=steps, kernel=kernel)
    fn = train.chunk_fn(cfg, None, steps)
    t0 = time.perf_counter()
    pop = fn(_population(p, widths), x, y, jnp.int32(0), jnp.int32(0))
    jax.block_until_ready(pop)
    t1 = time.perf_counter()
    pop = fn(pop, x, y, jnp.int32(steps), jnp.int32(0))
    jax.block_until_ready(pop)
    t2 = time.perf_counter()
    if bool(jnp.any(pop.diverged)):
        raise FloatingPointError(f"{kernel} at P={p}, widths {widths}: models diverged while timing")
    del pop
    return {"P": p, "model_steps_per_s": p * steps / (t2 - t1), "first_call_s": t1 - t0, "timed_s": t2 - t1,
            "steps": steps}


def section_throughput(ctx: dict) -> dict:
    """Model-steps/s per (shape, kernel), doubling P from p_start until OOM, the cap or the budget."""
    s = ctx["settings"]
    x, y = (jnp.asarray(a) for a in data.cubist_spiral())
    rows, notes = [], []
    n_rows = len(ctx["shapes"]) * len(ctx["kernels"])
    for shape_name in ctx["shapes"]:
        widths = SHAPES[shape_name]
        for kernel in ctx["kernels"]:
            row: dict[str, Any] = {"shape": shape_name, "kernel": kernel, "points": [], "stop": None}
            rows.append(row)
            if max(widths) > KERNEL_MAX_WIDTH.get(kernel, 1 << 30):
                row["stop"] = f"not timed: width above the {kernel} kernel's range ({KERNEL_MAX_WIDTH[kernel]})"
                continue
            # each (shape, kernel) gets its budget, at most a fair share of the time left
            share = (ctx["deadline"].left() - 10) / max(1, n_rows - len(rows) + 1)
            budget_end = time.perf_counter() + min(s["shape_budget_s"], share)
            p = s["p_start"]
            while True:
                if ctx["deadline"].left() < 10:
                    row["stop"] = "global deadline reached"
                    break
                try:
                    point = time_step(p, widths, kernel, s["steps"], x, y)
                except Exception as err:  # noqa: BLE001 - an OOM ends the doubling, anything else is reported
                    if _is_oom(err):
                        row["stop"] = f"out of memory at P={p}"
                        row["oom_at"] = p
                        break
                    row["stop"] = f"error at P={p}: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
                    row["error"] = _traceback_summary(err)
                    break
                row["points"].append(point)
                cost = point["first_call_s"] + point["timed_s"]
                if 2 * p > s["p_cap"]:
                    row["stop"] = f"population cap {s['p_cap']}"
                    break
                if time.perf_counter() + 2.5 * cost > min(budget_end, ctx["deadline"].end - 10):
                    row["stop"] = "time budget of the shape"
                    break
                p *= 2
            if row["points"]:
                best = max(row["points"], key=lambda q: q["model_steps_per_s"])
                row["best_P"], row["best_model_steps_per_s"] = best["P"], best["model_steps_per_s"]
                row["largest_P"] = row["points"][-1]["P"]
    errors = [r for r in rows if "error" in r]
    if errors:
        notes.append(f"{len(errors)} (shape, kernel) rows stopped on an error")
    out = {"rows": rows, "notes": notes, "steps_per_timing": s["steps"]}
    if errors:
        raise RuntimeError(f"throughput: {len(errors)} rows failed: " +
                           "; ".join(f"{r['shape']}/{r['kernel']}: {r['stop']}" for r in errors), out)
    return out


# ----------------------------------------------------------------------------- sweep slice

def section_sweep_slice(ctx: dict) -> dict:
    """Phase-2 (3,3,3) search runs end to end through run_sweep into a fresh store."""
    s = ctx["settings"]
    n, epochs = s["sweep_runs"], s["sweep_epochs"]
    plan = plan_lib.Plan(plan_lib.grid(method="search", widths=[(3, 3, 3)], structure=[(3, 3, 3)],
                                       mask_index=range(n), epochs=epochs))
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        store = os.path.join(tmp, "slice.sqlite")
        t0 = time.perf_counter()
        summary = runner.run_sweep(plan, store, population_size=s["sweep_population"], log=lines.append)
        wall = time.perf_counter() - t0
        done = len(runner.count_done(plan, store))
    if done != n:
        raise AssertionError(f"sweep_slice: {done} of {n} runs reached the store")
    cost = plan_lib.cost(plan)
    return {"runs": n, "epochs": epochs, "population_size": s["sweep_population"], "model_steps": cost,
            "wall_s": wall, "model_steps_per_s_end_to_end": cost / wall,
            "runner_model_steps_per_s": summary.get("model_steps_per_s"),
            "kernel": train.resolve_kernel("auto", (3, 3, 3)), "stored": done, "log_tail": lines[-3:]}


# ----------------------------------------------------------------------------- environment

def section_environment(ctx: dict) -> dict:
    devs = jax.devices()
    d0 = devs[0]
    mem = None
    try:
        stats = d0.memory_stats()
        mem = {k: stats[k] for k in ("bytes_limit", "bytes_in_use") if stats and k in stats} or None
    except Exception:  # noqa: BLE001 - not every backend reports memory
        mem = None
    return {"backend": jax.default_backend(), "device_kind": getattr(d0, "device_kind", str(d0)),
            "device_count": len(devs), "platform": d0.platform, "device_memory": mem,
            "host": platform.node(), "machine": platform.platform(), "cpu_count": os.cpu_count(),
            "versions": _versions(), "git_commit": _git_commit(), "dry_run": ctx["dry_run"],
            "scale": ctx["scale"], "kernels": ctx["kernels"],
            "auto_kernel": {name: train.resolve_kernel("auto", w) for name, w in SHAPES.items()},
            "settings": ctx["settings"]}


SECTION_FNS: dict[str, Callable[[dict], dict]] = {
    "environment": section_environment, "correctness": section_correctness,
    "sweep_slice": section_sweep_slice, "throughput": section_throughput}


# ----------------------------------------------------------------------------- report

def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def markdown(result: dict) -> str:
    """The Markdown block for benchmarks/RESULTS.md."""
    env = result["sections"].get("environment", {}).get("result") or {}
    lines = [f"### {result['date']} — {env.get('device_kind', '?')} ({env.get('backend', '?')}"
             f"{', CPU dry run' if result['dry_run'] else ''}, scale {result['scale']:g})", "",
             f"jax {env.get('versions', {}).get('jax', '?')}, jaxlib {env.get('versions', {}).get('jaxlib', '?')}, "
             f"{env.get('cpu_count', '?')} host cores, commit {env.get('git_commit', '?')}; "
             f"`{result['command']}` ({result['seconds']:.0f} s in all)", "",
             "| section | status | seconds | note |", "|---|---|---:|---|"]
    for name in SECTIONS:
        sec = result["sections"][name]
        lines.append(f"| {name} | {sec['status']} | {sec.get('seconds', 0):.1f} | {sec.get('note', '')} |")
    corr = (result["sections"]["correctness"].get("result") or {}).get("kernels")
    if corr:
        lines += ["", f"Correctness (accuracy vs the CPU XLA reference, tolerance {result['tolerance']:g}):", "",
                  "| kernel | runs | max \\|Δ accuracy\\| | runs over tolerance | weight-nnz mismatches | passed |",
                  "|---|---:|---:|---:|---:|---|"]
        for k, v in corr.items():
            mx = "—" if v["max_abs_diff"] is None else f"{v['max_abs_diff']:.2e}"
            lines.append(f"| {k} | {v['runs']} | {mx} | {v['over_tolerance']} | {v['weight_nnz_mismatches']} | "
                         f"{'yes' if v['passed'] else 'NO'} |")
    sweep = result["sections"]["sweep_slice"].get("result")
    if sweep:
        lines += ["", "Sweep slice (phase-2 (3,3,3) search runs through run_sweep and the store):", "",
                  "| runs | epochs | model-steps | wall s | model-steps/s end to end | kernel |",
                  "|---:|---:|---:|---:|---:|---|",
                  f"| {sweep['runs']:,} | {sweep['epochs']} | {sweep['model_steps']:,} | {sweep['wall_s']:.1f} | "
                  f"{_fmt(sweep['model_steps_per_s_end_to_end'])} | {sweep['kernel']} |"]
    thr = result["sections"]["throughput"].get("result")
    if thr:
        lines += ["", f"Throughput (model-steps/s, {thr['steps_per_timing']} steps per timed call after a "
                      "compiling call; P doubles from 1,024):", "",
                  "| shape | kernel | best model-steps/s | at P | largest P run | doubling stopped by |",
                  "|---|---|---:|---:|---:|---|"]
        for r in thr["rows"]:
            lines.append(f"| {r['shape']} | {r['kernel']} | {_fmt(r.get('best_model_steps_per_s'))} | "
                         f"{_fmt(r.get('best_P'))} | {_fmt(r.get('largest_P'))} | {r['stop']} |")
    return "\n".join(lines)


def _atomic_write_json(path: str, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=float)
        f.write("\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for the JSON result (must exist)")
    ap.add_argument("--cpu_dry_run", action="store_true", help="scaled-down sizes even on an accelerator")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink every section (0 < scale <= 1)")
    ap.add_argument("--deadline_s", type=float, default=None, help="global budget (default 450 s; 570 s dry run)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma list of sections to run")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of throughput shapes")
    ap.add_argument("--kernels", default="all", help="comma list of step kernels, 'all' or 'auto'")
    ap.add_argument("--tolerance", type=float, default=TOLERANCE, help="allowed |accuracy difference| per run")
    ap.add_argument("--reference", default=REFERENCE, help="reference JSON written by --write_reference")
    ap.add_argument("--write_reference", action="store_true", help="CPU only: train the reference runs and store them")
    ap.add_argument("--groups", default=None, help="with --write_reference: retrain only these correctness groups")

    def error(message: str) -> None:
        raise ValueError(message)
    ap.error = error  # type: ignore[method-assign]
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 1:
        raise ValueError(f"scale: must be in (0, 1], got {args.scale}")
    if args.deadline_s is not None and args.deadline_s <= 0:
        raise ValueError(f"deadline_s: must be > 0, got {args.deadline_s}")
    if not args.tolerance > 0:
        raise ValueError(f"tolerance: must be > 0, got {args.tolerance}")
    bad = [s for s in args.sections.split(",") if s not in SECTIONS]
    if bad:
        raise ValueError(f"sections: unknown {bad}; allowed: {', '.join(SECTIONS)}")
    bad = [s for s in args.shapes.split(",") if s not in SHAPES]
    if bad:
        raise ValueError(f"shapes: unknown {bad}; allowed: {', '.join(SHAPES)}")
    if not args.write_reference:
        if args.out is None or not os.path.isdir(args.out):
            raise ValueError(f"out: need an existing folder for the JSON result, got {args.out!r}")
    return args


def _resolve_kernels(spec: str) -> list[str]:
    avail = available_kernels()
    if spec == "all":
        return avail
    out = []
    for k in spec.split(","):
        if k == "auto":
            out.append(train.resolve_kernel("auto", (3, 3, 3)))
        elif k in avail:
            out.append(k)
        else:
            raise ValueError(f"kernels: {k!r} is not available on this backend; available: {', '.join(avail)}")
    return list(dict.fromkeys(out))


def run_check(argv: list[str], echo: Callable[[str], None] = print) -> tuple[dict, str]:
    """Parse `argv`, run the sections, write the JSON; returns (result, path). ValueError for bad input."""
    args = parse_args(argv)
    if args.write_reference:
        write_reference(args.reference, echo, args.groups.split(",") if args.groups else None)
        return {"reference": args.reference}, args.reference
    kernels = _resolve_kernels(args.kernels)
    dry_run = args.cpu_dry_run or jax.default_backend() == "cpu"
    deadline_s = args.deadline_s if args.deadline_s is not None else (570.0 if dry_run else 450.0)
    if not os.path.exists(args.reference) and "correctness" in args.sections.split(","):
        raise ValueError(f"reference: {args.reference} does not exist; write it with --write_reference on a CPU")
    ctx = {"settings": settings(dry_run, args.scale), "deadline": Deadline(deadline_s), "dry_run": dry_run,
           "scale": args.scale, "kernels": kernels, "shapes": args.shapes.split(","),
           "reference": args.reference, "tolerance": args.tolerance}
    now = datetime.datetime.now(datetime.timezone.utc)
    result: dict[str, Any] = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "dry_run": dry_run, "scale": args.scale,
                              "tolerance": args.tolerance, "deadline_s": deadline_s, "sections": {},
                              "command": "PYTHONPATH=. python benchmarks/device_check.py " + " ".join(argv)}
    t_start = time.perf_counter()
    wanted = args.sections.split(",")
    for name in SECTIONS:
        if name not in wanted:
            result["sections"][name] = {"status": "not requested", "seconds": 0.0}
            continue
        if ctx["deadline"].left() < 5:
            result["sections"][name] = {"status": "skipped", "seconds": 0.0, "note": "global deadline reached"}
            continue
        t0 = time.perf_counter()
        echo(f"device_check: {name} ...")
        try:
            sec = {"status": "ok", "result": SECTION_FNS[name](ctx)}
        except Exception as err:  # noqa: BLE001 - a failing section is reported, the rest still run
            partial = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], dict) else None
            sec = {"status": "failed", "result": partial, "error": _traceback_summary(err),
                   "note": f"{type(err).__name__}: {str(err.args[0] if err.args else err).splitlines()[0][:300]}"}
        sec["seconds"] = time.perf_counter() - t0
        result["sections"][name] = sec
        echo(f"device_check: {name} {sec['status']} in {sec['seconds']:.1f}s")
    result["seconds"] = time.perf_counter() - t_start
    result["passed"] = all(s["status"] in ("ok", "not requested") for s in result["sections"].values())
    result["markdown"] = markdown(result)
    backend = (result["sections"]["environment"].get("result") or {}).get("backend", jax.default_backend())
    path = os.path.join(args.out, f"device_check-{backend}-{now.strftime('%Y%m%dT%H%M%S')}.json")
    _atomic_write_json(path, result)
    return result, path


def main(argv: list[str] | None = None) -> int:
    try:
        result, path = run_check(sys.argv[1:] if argv is None else argv)
    except ValueError as err:
        print(f"device_check: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    if "markdown" in result:
        print(result["markdown"])
        print(f"\nwrote {path}")
        return 0 if result["passed"] else 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
