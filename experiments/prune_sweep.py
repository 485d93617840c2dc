"""Pruning sweeps: methods × widths × budgets × lrs × schedules × repeats into the sweep store.

    python -m experiments.prune_sweep --preset=smoke --store=out/prune_smoke.sqlite
    python -m experiments.prune_sweep --preset=paper_random --store=out/prune.sqlite      # 18,954 runs
    python -m experiments.prune_sweep --methods=gmp,lth --widths=16 --budgets=30,44 --epochs=50 \
        --lrs=0.05,0.1,0.2 --schedules=constant,cosine,step --store=out/s.sqlite

Budgets count weights only and are kept where B < the width's weight count (the paper's rule).
A preset's grid drops the other combinations silently; with --methods/--widths/--budgets given
explicitly, the dropped (method, width, budget) combinations are printed, and a named method or
budget left with no run at all is an error (exit 2). With a fixed init (--init=PATH, a width-16
network), widths below 16 are its top-left slices (the paper's "optimal width"). Relaunching the
same command resumes; --dry_run prints the run counts. With a preset the store defaults to
out/<preset>/store.sqlite.
"""
from __future__ import annotations

import os
import sys

from absl import flags

from sparsejax import train
from sparsejax.pruning import registry
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import grids
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import progress
from sparsejax.sweep import runner

PAPER_METHODS = ",".join(grids.PAPER_METHODS)
PAPER_BUDGETS = ",".join(map(str, grids.PAPER_BUDGETS))
ALL_SCHEDULES = "constant,cosine,step"
PRESETS = {
    # every method (and dense) on width 4, two budgets, one epoch: about a minute on a 2-core CPU
    "smoke": {"methods": ",".join(registry.names()), "widths": "4", "budgets": "9,20", "lrs": "0.1",
              "schedules": "cosine", "epochs": 1, "repeats": 1, "population_size": 8},
    # SPEC §6 random init, overparameterisation: 18,954 runs
    "paper_random": {"methods": PAPER_METHODS, "widths": "3,4,5,6,7,8,16,32,64,128,256",
                     "budgets": PAPER_BUDGETS, "lrs": "0.05,0.1,0.2", "schedules": ALL_SCHEDULES},
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

sweep_flags.define_sweep_flags(tuple(PRESETS))
flags.DEFINE_string("methods", PAPER_METHODS, f"methods: {', '.join(registry.names())}")
flags.DEFINE_string("widths", "16", "hidden widths (three equal layers); with a fixed init, slices of it")
flags.DEFINE_string("budgets", PAPER_BUDGETS, "weight budgets (a..b ranges allowed); kept where B < N_w")
flags.DEFINE_string("lrs", "0.05,0.1,0.2", "learning rates")
flags.DEFINE_string("schedules", ALL_SCHEDULES, "schedules")
flags.DEFINE_integer("epochs", 50, "epochs per run (LTH: per round, 5 rounds)")
flags.DEFINE_integer("repeats", 1, "seeds 0..repeats-1 of every configuration")
flags.DEFINE_string("init", "random", "'random' or a width-16 init .npz (PyTorch names)")
flags.DEFINE_integer("optimal_width", None, "with a fixed init: slice it to this width (overrides --widths)")
FLAGS = flags.FLAGS
SETTINGS = ("methods", "widths", "budgets", "lrs", "schedules", "epochs", "repeats", "init", "optimal_width",
            "population_size")


def configs(s: dict, explicit: frozenset[str] = frozenset()) -> list[dict]:
    """The run configs of the launcher's settings (flag values by name).

    ``explicit`` names the settings the user gave as flags: their dropped combinations are
    reported (stderr), and a method or budget of them with no run left is a ValueError.
    """
    widths = sweep_flags.parse_ints("widths", s["widths"], min_value=1, max_value=MAX_WIDTH)
    if s["optimal_width"] is not None:
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
    if explicit & {"methods", "widths", "budgets", "optimal_width"}:
        _report_drops(methods, widths, budgets, explicit)
    try:
        return grids.pruning_configs(methods=methods, widths=widths, budgets=budgets, lrs=lrs,
                                     schedules=schedules, epochs=int(s["epochs"]),
                                     repeats=int(s["repeats"]), init=init)
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(("--", "init")) else f"--{msg}") from None


def _report_drops(methods: list[str], widths: list[int], budgets: list[int], explicit: frozenset[str]) -> None:
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
    print(f"note: dropped {len(dropped)} (method, width, budget) combinations whose budget is at or above "
          f"the width's weight count: {shown}{more}", file=sys.stderr, flush=True)


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"arguments: unexpected {' '.join(argv[1:])!r}")
    if FLAGS.preset and FLAGS.store is None and FLAGS.preset in PRESETS:
        FLAGS.store = os.path.join(sweep_flags.preset_out(FLAGS.preset), "store.sqlite")
    args = sweep_flags.sweep_args()
    s = sweep_flags.apply_preset(PRESETS, args.preset, {k: FLAGS[k].value for k in SETTINGS})
    explicit = frozenset(k for k in SETTINGS if sweep_flags.explicitly_given(k))
    plan = plan_lib.shard(plan_lib.Plan(configs(s, explicit)), args.num_shards, args.shard_index)
    if args.dry_run:
        store = args.store if args.store and os.path.exists(args.store) else None
        runner.run_sweep(plan, store, dry_run=True)
        return
    os.makedirs(os.path.dirname(os.path.abspath(args.store)), exist_ok=True)
    with progress.Job("prune_sweep"):
        summary = runner.run_sweep(plan, args.store, population_size=int(s["population_size"]),
                                   chunk_steps=args.chunk_steps)
    print(f"prune sweep: {summary['trained']} runs trained, {summary['total']} in the plan; store {args.store}")


if __name__ == "__main__":
    sweep_flags.run(main)
