"""The main job: search, prune, compare, report — the paper's study end to end.

``demo`` (a few minutes on a 2-core CPU; ``smoke`` is the same at toy scale) runs phase 1 of the
search over {1..4}^3, phase 2 on the configuration phase 1 selects — bounded by a run budget and
spent on the nnz levels just below phase 1's frontier, where a sparser model above the target is
likeliest (the paper's phase 2 instead climbs from the sparsest level of the whole space; its
preset does that) — and every pruning method at width 16. It then prints the finding (the
sparsest search model above 95 % next to every pruning method's sparsest one), writes
``report.html`` (the finding first), the figures and ``compare.html`` (the two sparsest models
side by side in the viewer). ``paper`` plans every group of SPEC §6 into one store; its dry run
counts the work analytically (no per-run hashing when the store is empty) and predicts the time
from the throughput measured on this machine (``sparsejax.sweep.cost``). Relaunching resumes
from the store. The launcher is ``python -m experiments.reproduce``.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

from sparsejax.search import combinatorial as comb
from sparsejax.sweep import cost as cost_lib
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import grids
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import progress
from sparsejax.sweep import runner

ALL = ("constant", "cosine", "step")


@dataclasses.dataclass(frozen=True)
class Preset:
    epochs: int
    phase1_width: int
    phase1_target: float
    search_lrs: tuple[float, ...]
    search_schedules: tuple[str, ...]
    prune_widths: tuple[int, ...]
    prune_budgets: tuple[int, ...]
    prune_lrs: tuple[float, ...]
    prune_schedules: tuple[str, ...]
    prune_methods: tuple[str, ...] = ("dense",) + grids.PAPER_METHODS
    phase2_runs: int | None = None   # demo: phase-2 run budget below phase 1's frontier; None: all
    mc_trials: int = 500             # Monte Carlo trials of the report's Theorem L.1 figure


PRESETS = {
    "demo": Preset(epochs=50, phase1_width=4, phase1_target=0.95, search_lrs=(0.05, 0.1),
                   search_schedules=("cosine", "step"), prune_widths=(16,), prune_budgets=(30, 45, 60, 90, 120),
                   prune_lrs=(0.1,), prune_schedules=("cosine",), phase2_runs=256),
    # seconds of training: the demo's code path end to end at toy scale (tests, a first look)
    "smoke": Preset(epochs=1, phase1_width=2, phase1_target=0.6, search_lrs=(0.1,), search_schedules=("cosine",),
                    prune_widths=(4,), prune_budgets=(12,), prune_lrs=(0.1,), prune_schedules=("cosine",),
                    prune_methods=("dense", "gmp", "snip"), phase2_runs=8, mc_trials=50),
    "paper": Preset(epochs=50, phase1_width=16, phase1_target=0.95, search_lrs=(0.05, 0.1),
                    search_schedules=ALL, prune_widths=grids.PAPER_WIDTHS, prune_budgets=grids.PAPER_BUDGETS,
                    prune_lrs=(0.05, 0.1, 0.2), prune_schedules=ALL, prune_methods=grids.PAPER_METHODS),
}



# ----------------------------------------------------------------------------- the paper's groups

@dataclasses.dataclass(frozen=True)
class Group:
    """One group of SPEC §6: a grid of configs, or a whole phase-2 mask space (counted from its
    size, never enumerated for planning)."""
    name: str
    configs: Callable[[], list[dict]] | None = None
    settings: comb.SearchSettings | None = None
    structure: tuple[int, int, int] | None = None
    space_opts: dict | None = None

    def count(self) -> plan_lib.Count:
        """Runs and model-steps without building the plan (a sample of configs is validated)."""
        if self.configs is not None:
            return plan_lib.count_configs(self.configs())
        from sparsejax.search.product import MaskSpace
        n = len(MaskSpace(self.structure, **(self.space_opts or {})))
        per = len(self.settings.lrs) * len(self.settings.schedules)
        first = comb.phase2_plan(self.settings, self.structure, self.space_opts, 0, 1)
        comb.phase2_plan(self.settings, self.structure, self.space_opts, n - 1, 1)  # the last index validates
        out = plan_lib.Count()
        out.add(tuple(self.structure), n * per, n * per * plan_lib.run_cost(first.configs[0]))
        return out

    def plan(self) -> plan_lib.Plan:
        """The full plan (every config validated and hashed: minutes for the big groups)."""
        if self.configs is not None:
            return plan_lib.Plan(self.configs())
        from sparsejax.search.product import MaskSpace
        n = len(MaskSpace(self.structure, **(self.space_opts or {})))
        return comb.phase2_plan(self.settings, self.structure, self.space_opts, 0, n)


def _phase1_configs(s: comb.SearchSettings, max_nnz: int | None = None) -> list[dict]:
    from sparsejax import mlp
    from sparsejax.search.product import phase1_configs
    cfgs = [tuple(int(d) for d in c) for c in phase1_configs(s.width)]
    if max_nnz is not None:
        cfgs = [c for c in cfgs if mlp.structured_nnz(c) < max_nnz]
    return plan_lib.grid(method="structured", widths=[(s.width,) * 3], structure=cfgs, lr=list(s.lrs),
                         schedule=list(s.schedules), epochs=s.epochs, init=s.init, seed=s.seed)


def paper_groups(p: Preset, inits: str) -> list[Group]:
    """Every group of SPEC §6; phase-2 groups are the paper's configurations in full."""
    b95, b995 = os.path.join(inits, "bench95_init.npz"), os.path.join(inits, "bench995_init.npz")
    s = comb.SearchSettings(width=16, lrs=p.search_lrs, schedules=ALL, epochs=p.epochs)
    s995 = dataclasses.replace(s, lrs=(0.05,))
    prune = dict(lrs=p.prune_lrs, schedules=ALL, epochs=p.epochs)
    s95b, s995b = dataclasses.replace(s, init=b95), dataclasses.replace(s995, init=b995)
    return [
        Group("random init: overparameterisation", lambda: grids.pruning_configs(
            p.prune_methods, p.prune_widths, p.prune_budgets, **prune)),
        Group("random init: phase 1", lambda: _phase1_configs(s)),
        Group("random init: phase 2 (3,3,3)", settings=s, structure=(3, 3, 3)),
        Group("random init: phase 2 (7,3,3) subset", settings=s995, structure=(7, 3, 3),
              space_opts={"max_weight_sum": 32, "first_k_w2": 3}),
        Group("BENCH-95 init: pruning", lambda: grids.pruning_configs(
            p.prune_methods, (3, 16), grids.BENCH95_BUDGETS, repeats=5, init=b95, **prune)),
        Group("BENCH-95 init: phase 1", lambda: _phase1_configs(dataclasses.replace(s, init=b95), max_nnz=37)),
        Group("BENCH-95 init: phase 2 (3,2,2)", settings=s95b, structure=(3, 2, 2)),
        Group("BENCH-995 init: pruning", lambda: grids.pruning_configs(
            p.prune_methods, (6, 16), grids.BENCH995_BUDGETS, repeats=5, init=b995, **prune)),
        Group("BENCH-995 init: phase 1", lambda: _phase1_configs(dataclasses.replace(s, init=b995), max_nnz=61)),
        Group("BENCH-995 init: phase 2 (6,3,2) subset", settings=s995b, structure=(6, 3, 2),
              space_opts={"max_weight_sum": 30, "first_k_w2": 6}),
    ]


def paper_plans(p: Preset, inits: str) -> list[tuple[str, plan_lib.Plan]]:
    """Every group of SPEC §6 as (name, full plan): what a paper launch trains."""
    return [(g.name, g.plan()) for g in paper_groups(p, inits)]


def describe(count: plan_lib.Count) -> str:
    """``N runs, M model-steps, ~T`` with T predicted by the cost model."""
    return (f"{count.runs:,} runs, {count.model_steps:,} model-steps, "
            f"~{cost_lib.hms(cost_lib.seconds(count.steps_by_shape))} predicted")


def plan_paper(p: Preset, inits: str, echo: Callable[[str], None] = print) -> plan_lib.Count:
    """Print every group's count and the grand total with the predicted time; returns the total."""
    total = plan_lib.Count()
    for g in paper_groups(p, inits):
        c = g.count()
        echo(f"{g.name}: {describe(c)}")
        total += c
    secs = cost_lib.seconds(total.steps_by_shape)
    echo(f"total: {total.runs:,} runs, {total.model_steps:,} model-steps; predicted {secs / 3600:,.1f} hours "
         f"on this machine's measured throughput ({cost_lib.MEASURED_ON}; sparsejax/sweep/cost.py)")
    return total


def paper_cost_note(inits: str) -> str:
    """One sentence on what the paper preset adds and what it costs (for the demo's report)."""
    try:
        total = plan_paper(PRESETS["paper"], inits, echo=lambda _: None)
    except (ValueError, OSError) as err:
        return f"The paper preset (python -m experiments.reproduce --preset=paper) could not be planned here: {err}."
    secs = cost_lib.seconds(total.steps_by_shape)
    return (f"The paper preset (python -m experiments.reproduce --preset=paper) adds phase 1 over {{1..16}}^3, "
            f"the full phase-2 searches of (3,3,3), the (7,3,3) subset and the two fixed inits, and the pruning "
            f"grid at 11 widths × 23 budgets × 3 lrs × 3 schedules: {total.runs:,} runs, "
            f"{total.model_steps:,} model-steps, about {secs / 3600:,.0f} hours on this 2-core CPU at its "
            f"measured throughput ({cost_lib.MEASURED_ON}).")


# ----------------------------------------------------------------------------- the demo

def phase2_near_frontier(s: comb.SearchSettings, structure: tuple[int, int, int], lr: float, schedule: str,
                         runs: int) -> tuple[plan_lib.Plan, list[tuple[int, int, int]]]:
    """Phase-2 runs of ``structure`` for the demo: masks of the nnz levels just below the
    structure's own nnz (descending), every mask of a level while the ``runs`` budget lasts,
    then an evenly spaced sample of the last level; one (lr, schedule) — the best of phase 1 for
    this structure. Returns the plan and ``(nnz, masks trained, masks in the level)`` per level."""
    from sparsejax import mlp
    from sparsejax.search.product import MaskSpace
    lv = MaskSpace(tuple(structure)).nnz_levels()
    top = mlp.structured_nnz(structure)
    indices, levels, left = [], [], int(runs)
    for i in reversed(range(len(lv.nnz))):
        if left <= 0:
            break
        if int(lv.nnz[i]) >= top:
            continue  # the full block is phase 1's model
        n = int(lv.count[i])
        picked = plan_lib.sample_positions(n, min(n, left))
        indices += [int(lv.start[i]) + k for k in picked]
        levels.append((int(lv.nnz[i]), len(picked), n))
        left -= len(picked)
    plan = plan_lib.Plan(plan_lib.grid(method="search", widths=[(s.width,) * 3], structure=[tuple(structure)],
                                       mask_index=indices, lr=float(lr), schedule=schedule, epochs=s.epochs,
                                       init=s.init, seed=s.seed))
    return plan, levels


def _best_hparams(store: str, plan1: plan_lib.Plan, structure: tuple[int, ...]) -> tuple[float, str]:
    recs = comb.accuracies(store, plan1)
    mine = [r for rid, r in recs.items() if tuple(r["config"]["structure"]) == tuple(structure) and not r["diverged"]]
    best = max(mine, key=lambda r: r["accuracy"])
    return float(best["config"]["lr"]), str(best["config"]["schedule"])


def demo_plans(p: Preset, args: sweep_flags.SweepArgs) -> tuple[comb.SearchSettings, plan_lib.Plan, plan_lib.Plan]:
    s = comb.SearchSettings(width=p.phase1_width, lrs=p.search_lrs, schedules=p.search_schedules, epochs=p.epochs,
                            population_size=args.population_size, chunk_steps=args.chunk_steps)
    prune = plan_lib.Plan(grids.pruning_configs(p.prune_methods, p.prune_widths, p.prune_budgets, p.prune_lrs,
                                                p.prune_schedules, p.epochs))
    return s, comb.phase1_plan(s), prune


def phase2_bound(s: comb.SearchSettings, p: Preset) -> plan_lib.Count:
    """An upper bound of the demo's phase 2 before phase 1 chose its structure: the run budget at
    50 epochs, priced at phase 1's (widest) trained shape."""
    from sparsejax import runs as runs_lib
    one = comb.phase2_plan(s, (1, 1, 1), None, 0, 1).configs[0]
    out = plan_lib.Count()
    shape = runs_lib.trained_widths({"method": "structured", "widths": (s.width,) * 3, "structure": (s.width,) * 3})
    out.add(shape, int(p.phase2_runs), int(p.phase2_runs) * plan_lib.run_cost(one))
    return out


def dry_run_demo(p: Preset, store: str | None, args: sweep_flags.SweepArgs) -> None:
    s, plan1, prune = demo_plans(p, args)
    total = plan_lib.Count()
    print(f"[1/3] phase 1: {len(plan1)} runs of {{1..{p.phase1_width}}}^3 × lrs × schedules")
    runner.run_sweep(plan1, store, dry_run=True)
    c1 = plan_lib.count_plan(plan1)
    total += c1
    print(f"      {describe(c1)}")
    c2 = phase2_bound(s, p)
    print(f"[2/3] phase 2: at most {p.phase2_runs} runs (masks just below the selected configuration's nnz): "
          f"{describe(c2)} (bound)")
    total += c2
    print(f"[3/3] pruning: {len(prune)} runs")
    runner.run_sweep(prune, store, dry_run=True)
    c3 = plan_lib.count_plan(prune)
    total += c3
    print(f"      {describe(c3)}")
    secs = cost_lib.seconds(total.steps_by_shape)
    print(f"total: {total.runs:,} runs (at most), {total.model_steps:,} model-steps; predicted {cost_lib.hms(secs)} "
          f"of training on this machine's measured throughput ({cost_lib.MEASURED_ON}), plus compiles and the report")


def run_demo(p: Preset, store: str, out: str, args: sweep_flags.SweepArgs,
             bench_inits: str = grids.BENCH_INITS) -> dict[str, Any]:
    """Train the demo, write the report and the compare page; returns the finding."""
    from sparsejax.analysis import pareto
    s, plan1, prune = demo_plans(p, args)
    t0 = time.perf_counter()
    kw = dict(population_size=args.population_size, chunk_steps=args.chunk_steps)
    with progress.Job("reproduce") as job:
        job.expect("phase 1", len(plan1), plan_lib.cost(plan1))
        bound = phase2_bound(s, p)
        job.expect("phase 2", bound.runs, bound.model_steps, exact=False)
        job.expect("pruning", len(prune), plan_lib.cost(prune))
        job.echo(f"[1/4] phase 1: {len(plan1)} runs of {{1..{p.phase1_width}}}^3 × lrs {list(s.lrs)} × "
                 f"{list(s.schedules)}, {p.epochs} epochs")
        with job.stage("phase 1"):
            runner.run_sweep(plan1, store, **kw)
        best = comb.select_phase1(store, plan1, p.phase1_target)
        job.echo(f"      sparsest configuration above {p.phase1_target:.0%}: {best}")
        with job.stage("phase 2"):
            if best is not None:
                lr, sched = _best_hparams(store, plan1, best)
                plan2, levels = phase2_near_frontier(s, best, lr, sched, p.phase2_runs)
                lv = ", ".join(f"{n} ({k}/{m})" for n, k, m in levels)
                job.echo(f"[2/4] phase 2 on {best} (lr {lr}, {sched}): {len(plan2)} masks at nnz levels {lv}")
                runner.run_sweep(plan2, store, **kw)
        job.echo(f"[3/4] pruning: {len(p.prune_methods)} methods × budgets {list(p.prune_budgets)} at width "
                 f"{p.prune_widths[0]}")
        with job.stage("pruning"):
            runner.run_sweep(prune, store, **kw)
    train_s = time.perf_counter() - t0
    print("[4/4] finding, report and viewer", flush=True)
    rows = pareto.load_table(store)
    found = pareto.finding(rows, p.phase1_target)
    links, extra = [], []
    if found["search"] is not None and found["best_pruned"] is not None:
        from sparsejax.viz import viewer
        page = os.path.join(out, "compare.html")
        models = viewer.load_models(store=store, run_id=found["search"]["run_id"],
                                    compare=found["best_pruned"]["run_id"])
        viewer.write_html(page, viewer.build_html(models))
        links.append(("the sparsest search model and the sparsest pruned model side by side (viewer)",
                      "compare.html"))
        extra.append(page)
        found["compare"] = page
    from sparsejax.viz import report
    notes = [f"Demo scale: phase 1 over {{1..{p.phase1_width}}}^3; phase 2 spends at most {p.phase2_runs} runs on "
             f"the nnz levels just below phase 1's selection (one lr/schedule, phase 1's best for it); pruning at "
             f"width {p.prune_widths[0]}, budgets {list(p.prune_budgets)}, lr {list(p.prune_lrs)}, "
             f"{list(p.prune_schedules)}. Training took {train_s / 60:.1f} min here (load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).",
             paper_cost_note(bench_inits)]
    lead = report.finding_html(found, links, notes)
    found["report"] = report.build_report(store, out, mc_trials=p.mc_trials, lead_html=lead,
                                          extra_files=extra)
    found["train_seconds"] = train_s
    return found


def print_finding(found: dict[str, Any]) -> None:
    """The finding as the last screen of stdout: search vs every pruning method."""
    t = found["target"]
    print(f"\nThe finding (sparsest model above {100 * t:g} %):")
    rows = [("search (phase 1 + 2)", found["search"])] + sorted(
        found["methods"].items(), key=lambda kv: (kv[1] is None, kv[1]["model_nnz"] if kv[1] else 0))
    for name, r in rows:
        cell = f"{r['model_nnz']:>4} nnz  {100 * r['accuracy']:6.2f} %  run {r['run_id']}" if r else "   — none above the target"
        print(f"  {name:<22}{cell}")
    print(found["sentence"])
    if found.get("compare"):
        print(f"side by side: {found['compare']}")
    print(f"report: {found['report']}", flush=True)


def run(name: str, args: sweep_flags.SweepArgs, out: str | None = None,
        bench_inits: str = grids.BENCH_INITS) -> dict[str, Any] | None:
    """Run (or with ``args.dry_run`` plan) preset ``name`` into ``args.store`` (default: beside the
    outputs, ``<out>/store.sqlite``) and ``out`` (default ``out/<name>``); the demo presets
    return their finding. ValueError naming the flag on bad input, before anything is written."""
    if name not in PRESETS:
        raise ValueError(f"--preset: unknown {name!r}; allowed: {', '.join(PRESETS)}")
    out = out or sweep_flags.preset_out(name)
    sweep_flags.check_output_dir("out", out)
    if not args.store:  # the main job keeps its store beside its report by default
        args = dataclasses.replace(args, store=os.path.join(out, "store.sqlite"))
    args = sweep_flags.check_sweep_args(args)
    p = PRESETS[name]
    if name == "paper":  # inputs first: the bench inits, before any planning
        for f in ("bench95_init.npz", "bench995_init.npz"):
            sweep_flags.check_init("bench_inits", os.path.join(bench_inits, f))
    print(f"preset {name}: store {args.store}, outputs in {out}", flush=True)
    store = args.store
    if args.dry_run and not os.path.exists(store):
        store = None  # a missing store holds no runs; nothing is created in a dry run
    if name != "paper":  # the demo and its toy-scale twin
        if args.dry_run:
            dry_run_demo(p, store, args)
            return None
        os.makedirs(out, exist_ok=True)
        os.makedirs(os.path.dirname(os.path.abspath(store)), exist_ok=True)
        found = run_demo(p, store, out, args, bench_inits)
        print_finding(found)
        return found
    if args.dry_run and (store is None or _store_is_empty(store)):
        plan_paper(p, bench_inits)  # analytic: no per-run hashing for an empty or absent store
        return None
    plans = paper_plans(p, bench_inits)
    for group, pl in plans:
        print(f"{group}: {describe(plan_lib.count_plan(pl))}", flush=True)
    if not args.dry_run:
        os.makedirs(out, exist_ok=True)
        os.makedirs(os.path.dirname(os.path.abspath(store)), exist_ok=True)
    with progress.Job("reproduce", enabled=not args.dry_run) as job:
        shards = [(group, plan_lib.shard(pl, args.num_shards, args.shard_index)) for group, pl in plans]
        if not args.dry_run:
            for group, pl in shards:
                job.expect(group, len(pl), plan_lib.cost(pl))
        for group, pl in shards:
            with job.stage(group):
                if args.dry_run:
                    print(f"{group}:", flush=True)
                runner.run_sweep(pl, store, population_size=args.population_size, chunk_steps=args.chunk_steps,
                                 dry_run=args.dry_run)
    if not args.dry_run:
        from sparsejax.viz import report
        print(f"report: {report.build_report(store, out)}")
    return None


def _store_is_empty(path: str) -> bool:
    """Whether the store at ``path`` holds no runs (a zero-byte file counts as empty)."""
    from sparsejax.sweep.store import Store, StoreError
    if os.path.getsize(path) == 0:
        return True
    try:
        with Store(path, create=False) as st:
            return st.count() == 0
    except StoreError as err:
        raise ValueError(f"store: {err}") from None
