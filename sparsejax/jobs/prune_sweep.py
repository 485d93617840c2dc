"""Pruning sweeps as one job: methods × widths × budgets × lrs × schedules × repeats into a store.

Budgets count weights only and are kept where B < the width's weight count (the paper's rule).
A preset's grid drops the other combinations silently; settings given explicitly have their
dropped (method, width, budget) combinations reported, and a named method or budget left with no
run at all is an error. With a fixed init (a width-16 network), widths below 16 are its top-left
slices (the paper's "optimal width").
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping

from sparsejax import config as config_lib
from sparsejax import train
from sparsejax.pruning import registry
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import grids
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import progress
from sparsejax.sweep import runner

ALL_SCHEDULES = "constant,cosine,step"
PAPER_METHODS = ",".join(grids.PAPER_METHODS)
PAPER_BUDGETS = ",".join(map(str, grids.PAPER_BUDGETS))
PAPER_WIDTHS = ",".join(map(str, grids.PAPER_WIDTHS))
PRESETS: dict[str, dict[str, Any]] = {
    # every method (and dense) on width 4, two budgets, one epoch: about a minute on a 2-core CPU
    "smoke": {"methods": ",".join(registry.names()), "widths": "4", "budgets": "9,20", "lrs": "0.1",
              "schedules": "cosine", "epochs": 1, "repeats": 1, "population_size": 8},
    # SPEC §6 random init, overparameterisation: 18,954 runs
    "paper_random": {"methods": PAPER_METHODS, "widths": PAPER_WIDTHS, "budgets": PAPER_BUDGETS,
                     "lrs": "0.05,0.1,0.2", "schedules": ALL_SCHEDULES},
    # the width-16 slice of it: 207 runs per method
    "paper_width16": {"methods": PAPER_METHODS, "widths": "16", "budgets": PAPER_BUDGETS,
                      "lrs": "0.05,0.1,0.2", "schedules": ALL_SCHEDULES},
    # BENCH-95 init: 9,720 runs
    "bench95": {"methods": PAPER_METHODS, "widths": "3,16", "budgets": "15..26", "lrs": "0.05,0.1,0.2",
                "schedules": ALL_SCHEDULES, "repeats": 5, "init": f"{grids.BENCH_INITS}/bench95_init.npz"},
    # BENCH-995 init: 11,340 runs
    "bench995": {"methods": PAPER_METHODS, "widths": "6,16", "budgets": "16,18,20,22,24,25,26,27,28,29,30,32,34,36",
                 "lrs": "0.05,0.1,0.2", "schedules": ALL_SCHEDULES, "repeats": 5,
                 "init": f"{grids.BENCH_INITS}/bench995_init.npz"},
}
MAX_WIDTH = 1024  # the widest network a launcher accepts (the paper's widest is 256)
GRID_SETTINGS = frozenset({"methods", "widths", "budgets", "optimal_width"})


def configs(values: Mapping[str, Any], explicit: frozenset[str] = frozenset(),
            warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> list[dict]:
    """The run configs of launcher ``values`` (flag name -> value; lists as comma-separated text).

    ``explicit`` names the settings the user gave as flags: their dropped combinations are
    reported through ``warn``, and a method or budget of them with no run left is a ValueError.
    """
    s = dict(values)
    widths = sweep_flags.parse_ints("widths", s["widths"], min_value=1, max_value=MAX_WIDTH)
    if s.get("optimal_width") is not None:
        widths = [int(s["optimal_width"])]
    methods = sweep_flags.parse_strs("methods", s["methods"], registry.names())
    budgets = sweep_flags.parse_ints("budgets", s["budgets"], min_value=1)
    lrs = sweep_flags.parse_floats("lrs", s["lrs"], positive=True)
    schedules = sweep_flags.parse_strs("schedules", s["schedules"], train.SCHEDULES)
    if int(s["epochs"]) < 1:
        raise ValueError(f"--epochs: must be >= 1, got {s['epochs']}")
    if int(s["repeats"]) < 1:
        raise ValueError(f"--repeats: must be >= 1, got {s['repeats']}")
    init = sweep_flags.check_init("init", s["init"])
    method_params = config_lib.parse_method_params(s.get("method_params"), methods)
    if explicit & GRID_SETTINGS:
        _report_drops(methods, widths, budgets, explicit, warn)
    try:
        return grids.pruning_configs(methods=methods, widths=widths, budgets=budgets, lrs=lrs,
                                     schedules=schedules, epochs=int(s["epochs"]), repeats=int(s["repeats"]),
                                     init=init, method_params=method_params,
                                     data_seed=sweep_flags.optional_seed("data_seed", s.get("data_seed")))
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(("--", "init")) else f"--{msg}") from None


def _report_drops(methods: list[str], widths: list[int], budgets: list[int], explicit: frozenset[str],
                  warn: Callable[[str], None]) -> None:
    """Say which (method, width, budget) combinations are dropped (B >= N_w) when the widths or
    budgets were given explicitly; ValueError when an explicitly named method or budget has no
    run left."""
    dropped = grids.dropped_budgets(methods, widths, budgets)
    if not dropped:
        return
    budgeted = [m for m in methods if registry.get(m).needs_budget]
    kept = {(m, w, b) for m in budgeted for w in widths for b in budgets} - set(dropped)
    if "methods" in explicit:
        for m in budgeted:
            if not any(k[0] == m for k in kept):
                raise ValueError(f"--methods: {m} has no run left: every budget of --budgets is at or above "
                                 f"the weight count of widths {widths} (budgets must be below it)")
    if "budgets" in explicit and budgeted:
        for b in budgets:
            if not any(k[2] == b for k in kept):
                raise ValueError(f"--budgets: {b} has no run left: it is at or above the weight count of every "
                                 f"width in {widths} (budgets must be below it)")
    if not explicit & {"budgets", "widths", "optimal_width"}:
        return  # the drops come from a preset's grid: the paper's rule, silently
    shown = ", ".join(f"({m}, {w}, {b})" for m, w, b in dropped[:12])
    more = f" and {len(dropped) - 12} more" if len(dropped) > 12 else ""
    warn(f"note: dropped {len(dropped)} (method, width, budget) combinations whose budget is at or above "
         f"the width's weight count: {shown}{more}")


def plan(values: Mapping[str, Any], args: sweep_flags.SweepArgs,
         explicit: frozenset[str] = frozenset()) -> plan_lib.Plan:
    """This job's share (``args``' shard) of the sweep's checked plan."""
    return plan_lib.shard(plan_lib.Plan(configs(values, explicit)), args.num_shards, args.shard_index)


def run(p: plan_lib.Plan, args: sweep_flags.SweepArgs, population_size: int | None = None) -> dict[str, Any]:
    """Train the plan's missing runs into ``args.store`` (resuming); with ``args.dry_run`` print
    the counts and the predicted time instead and create nothing. Returns the runner's summary."""
    if args.dry_run:
        store = args.store if args.store and os.path.exists(args.store) else None
        return runner.run_sweep(p, store, dry_run=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.store)), exist_ok=True)
    with progress.Job("prune_sweep"):
        summary = runner.run_sweep(p, args.store, population_size=int(population_size or args.population_size),
                                   chunk_steps=args.chunk_steps)
    print(f"prune sweep: {summary['trained']} runs trained, {summary['total']} in the plan; store {args.store}")
    return summary
