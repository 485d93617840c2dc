"""The main job: search, prune, compare, report — the paper's study end to end.

    python -m experiments.reproduce --preset=demo            # writes out/demo/
    python -m experiments.reproduce --preset=paper --dry_run # the full 485,838-run study (out/paper/)

``demo`` runs a small phase 1 (D = 4) and phase 2 on the configuration it selects, a pruning
comparison of every method at width 16, then writes the figures, ``report.html`` and a viewer
page of the sparsest model found, and prints the report's path. ``paper`` plans every group of
SPEC §6 into one store on whatever accelerators are present; relaunching resumes.
"""
from __future__ import annotations

import dataclasses
import os

from absl import flags, logging

from sparsejax.search import combinatorial as comb
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import grids
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import progress
from sparsejax.sweep import runner
from sparsejax.sweep.store import Store

ALL = ("constant", "cosine", "step")


@dataclasses.dataclass(frozen=True)
class Preset:
    epochs: int
    phase1_width: int
    phase1_target: float
    phase2_levels: int | None
    search_lrs: tuple[float, ...]
    search_schedules: tuple[str, ...]
    prune_widths: tuple[int, ...]
    prune_budgets: tuple[int, ...]
    prune_lrs: tuple[float, ...]
    prune_schedules: tuple[str, ...]
    prune_methods: tuple[str, ...] = ("dense",) + grids.PAPER_METHODS


PRESETS = {
    "demo": Preset(epochs=50, phase1_width=4, phase1_target=0.95, phase2_levels=4, search_lrs=(0.05, 0.1),
                   search_schedules=("cosine", "step"), prune_widths=(16,), prune_budgets=(30, 45, 60, 90, 120),
                   prune_lrs=(0.1,), prune_schedules=("cosine",)),
    "paper": Preset(epochs=50, phase1_width=16, phase1_target=0.95, phase2_levels=None, search_lrs=(0.05, 0.1),
                    search_schedules=ALL, prune_widths=grids.PAPER_WIDTHS, prune_budgets=grids.PAPER_BUDGETS,
                    prune_lrs=(0.05, 0.1, 0.2), prune_schedules=ALL, prune_methods=grids.PAPER_METHODS),
}

sweep_flags.define_sweep_flags(tuple(PRESETS))
flags.DEFINE_string("out", None, "folder for the store (unless --store), figures, report and viewer "
                    "(default: out/<preset>, so the demo and the paper never share a store)")
flags.DEFINE_string("bench_inits", grids.BENCH_INITS, "folder holding bench95_init.npz and bench995_init.npz (paper)")
FLAGS = flags.FLAGS


def paper_plans(p: Preset, inits: str) -> list[tuple[str, plan_lib.Plan]]:
    """Every group of SPEC §6 as (name, plan); phase-2 groups are the paper's configurations in full."""
    b95, b995 = os.path.join(inits, "bench95_init.npz"), os.path.join(inits, "bench995_init.npz")
    s = comb.SearchSettings(width=16, lrs=p.search_lrs, schedules=ALL, epochs=p.epochs)
    s995 = dataclasses.replace(s, lrs=(0.05,))
    prune = dict(lrs=p.prune_lrs, schedules=ALL, epochs=p.epochs)

    def space(settings, cfg, opts):
        from sparsejax.search.product import MaskSpace
        return comb.phase2_plan(settings, cfg, opts, 0, len(MaskSpace(cfg, **(opts or {}))))
    return [
        ("random init: overparameterisation",
         plan_lib.Plan(grids.pruning_configs(p.prune_methods, p.prune_widths, p.prune_budgets, **prune))),
        ("random init: phase 1", comb.phase1_plan(s)),
        ("random init: phase 2 (3,3,3)", space(s, (3, 3, 3), None)),
        ("random init: phase 2 (7,3,3) subset", space(s995, (7, 3, 3), {"max_weight_sum": 32, "first_k_w2": 3})),
        ("BENCH-95 init: pruning", plan_lib.Plan(grids.pruning_configs(
            p.prune_methods, (3, 16), grids.BENCH95_BUDGETS, repeats=5, init=b95, **prune))),
        ("BENCH-95 init: phase 1", comb.phase1_plan(dataclasses.replace(s, init=b95), max_nnz=37)),
        ("BENCH-95 init: phase 2 (3,2,2)", space(dataclasses.replace(s, init=b95), (3, 2, 2), None)),
        ("BENCH-995 init: pruning", plan_lib.Plan(grids.pruning_configs(
            p.prune_methods, (6, 16), grids.BENCH995_BUDGETS, repeats=5, init=b995, **prune))),
        ("BENCH-995 init: phase 1", comb.phase1_plan(dataclasses.replace(s, init=b995), max_nnz=61)),
        ("BENCH-995 init: phase 2 (6,3,2) subset", space(dataclasses.replace(s995, init=b995), (6, 3, 2),
                                                          {"max_weight_sum": 30, "first_k_w2": 6})),
    ]


def sparsest(store_path: str, target: float) -> dict | None:
    """The record with the fewest model nnz above `target` (ties: higher accuracy)."""
    with Store(store_path, create=False) as st:
        ok = [r for r in st.iter_records() if not r["diverged"] and r["accuracy"] > target]
    return min(ok, key=lambda r: (r["model_nnz"], -r["accuracy"])) if ok else None


def phase2_bound(s: comb.SearchSettings, structure: tuple[int, int, int], levels: int | None) -> tuple[int, int]:
    """(runs, model-steps) of phase 2 on ``structure`` if it trains ``levels`` nnz levels (all
    when None): an upper bound, phase 2 stops at the first level reaching the target."""
    from sparsejax.search.product import MaskSpace
    lv = MaskSpace(tuple(structure)).nnz_levels()
    n = len(lv.nnz) if levels is None else min(int(levels), len(lv.nnz))
    runs = int(sum(lv.count[:n])) * len(s.lrs) * len(s.schedules)
    one = plan_lib.run_cost(comb.phase2_plan(s, structure, None, 0, 1).configs[0])
    return runs, runs * one


def run_demo(p: Preset, store: str, out: str, args: sweep_flags.SweepArgs) -> None:
    s = comb.SearchSettings(width=p.phase1_width, lrs=p.search_lrs, schedules=p.search_schedules, epochs=p.epochs,
                            population_size=args.population_size, chunk_steps=args.chunk_steps)
    plan1 = comb.phase1_plan(s)
    prune = plan_lib.Plan(grids.pruning_configs(p.prune_methods, p.prune_widths, p.prune_budgets, p.prune_lrs,
                                                p.prune_schedules, p.epochs))
    if args.dry_run:
        runner.run_sweep(plan1, store, dry_run=True)
        runner.run_sweep(prune, store, dry_run=True)
        return
    with progress.Job("reproduce") as job:
        job.expect("phase 1", len(plan1), plan_lib.cost(plan1))
        job.expect("pruning", len(prune), plan_lib.cost(prune))
        job.echo(f"[1/4] phase 1: {len(plan1)} configurations of {{1..{p.phase1_width}}}^3, {p.epochs} epochs")
        with job.stage("phase 1"):
            runner.run_sweep(plan1, store, population_size=args.population_size, chunk_steps=args.chunk_steps)
        best = comb.select_phase1(store, plan1, p.phase1_target)
        job.echo(f"      sparsest configuration above {p.phase1_target:.0%}: {best}")
        if best is not None:
            runs2, steps2 = phase2_bound(s, best, p.phase2_levels)
            job.expect("phase 2", runs2, steps2, exact=False)
            job.echo(f"[2/4] phase 2 on {best}: the first {p.phase2_levels} nnz levels (at most {runs2} runs)")
            with job.stage("phase 2"):
                res = comb.run_phase2(s, best, p.phase1_target, store, max_levels=p.phase2_levels,
                                      log=logging.info)
            if res.winner:
                job.echo(f"      winner: {res.winner['model_nnz']} nnz, {res.winner['accuracy']:.2%} "
                         f"({res.winner['run_id']})")
            else:
                job.echo(f"      no mask in levels {res.levels_done} exceeds {p.phase1_target:.0%}")
        job.echo(f"[3/4] pruning: {len(p.prune_methods)} methods x budgets {list(p.prune_budgets)} at width "
                 f"{p.prune_widths[0]}")
        with job.stage("pruning"):
            runner.run_sweep(prune, store, population_size=args.population_size, chunk_steps=args.chunk_steps)
    print("[4/4] figures, report and viewer", flush=True)
    from sparsejax.viz import report, viewer
    path = report.build_report(store, out, mc_trials=500)
    for target in (0.995, 0.95, 0.9, 0.5):
        rec = sparsest(store, target)
        if rec is not None:
            view = os.path.join(out, "sparsest.html")
            viewer.write_html(view, viewer.build_html(viewer.load_models(store=store, run_id=rec["run_id"])))
            print(f"      sparsest model above {target:.1%}: {rec['model_nnz']} nnz, {rec['accuracy']:.2%}, "
                  f"{rec['config']['method']} (run {rec['run_id']}); viewer: {view}")
            break
    print(f"report: {path}")


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"arguments: unexpected {' '.join(argv[1:])!r}")
    name = FLAGS.preset or "demo"
    if name not in PRESETS:
        raise ValueError(f"--preset: unknown {name!r}; allowed: {', '.join(PRESETS)}")
    out = FLAGS.out or sweep_flags.preset_out(name)
    sweep_flags.check_output_dir("out", out)
    if not FLAGS.store:  # the main job keeps its store beside its report by default
        FLAGS.store = os.path.join(out, "store.sqlite")
    args = sweep_flags.sweep_args()
    p = PRESETS[name]
    print(f"preset {name}: store {args.store}, outputs in {out}", flush=True)
    if name == "paper":  # inputs first: the bench inits, before minutes of planning
        for f in ("bench95_init.npz", "bench995_init.npz"):
            sweep_flags.check_init("bench_inits", os.path.join(FLAGS.bench_inits, f))
    store = args.store
    if args.dry_run and not os.path.exists(store):
        store = None  # a missing store holds no runs; nothing is created in a dry run
    if name == "demo":
        if not args.dry_run:
            os.makedirs(out, exist_ok=True)
            os.makedirs(os.path.dirname(os.path.abspath(store)), exist_ok=True)
        return run_demo(p, store, out, args)
    plans = paper_plans(p, FLAGS.bench_inits)
    total = sum(len(pl) for _, pl in plans)
    for group, pl in plans:
        print(f"{group}: {len(pl)} runs", flush=True)
    print(f"total: {total} runs", flush=True)
    if not args.dry_run:
        os.makedirs(out, exist_ok=True)
        os.makedirs(os.path.dirname(os.path.abspath(store)), exist_ok=True)
    with progress.Job("reproduce", enabled=not args.dry_run) as job:
        shards = [(group, plan_lib.shard(pl, args.num_shards, args.shard_index)) for group, pl in plans]
        if not args.dry_run:  # the dry run counts cost itself; no second pass over 485,838 runs
            for group, pl in shards:
                job.expect(group, len(pl), plan_lib.cost(pl))
        for group, pl in shards:
            logging.info("group: %s", group)
            with job.stage(group):
                runner.run_sweep(pl, store, population_size=args.population_size, chunk_steps=args.chunk_steps,
                                 dry_run=args.dry_run)
    if not args.dry_run:
        from sparsejax.viz import report
        print(f"report: {report.build_report(store, out)}")


if __name__ == "__main__":
    sweep_flags.run(main)
