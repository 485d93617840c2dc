"""The paper's combinatorial search as one job: phase 1 (neuron configurations), then phase 2
(unstructured masks of the selected configuration), into one sweep store.

``settings(values)`` checks a mapping of launcher values (flag name -> value, a preset already
overlaid) once and returns :class:`CombSearchSettings`; :func:`run` trains and decides;
:func:`dry_run` prints what would run. A sharded job (``num_shards > 1``) trains its share and
decides nothing: a shard sees a part of phase 1, so its "sparsest configuration" would be wrong.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Mapping

from sparsejax import mlp, train
from sparsejax.search import combinatorial as comb
from sparsejax.search.product import MaskSpace
from sparsejax.sweep import cost as cost_lib
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import grids
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import progress
from sparsejax.sweep import runner

PRESETS: dict[str, dict[str, Any]] = {
    # a few dozen one-epoch runs at D = 3, several populations: about a minute on a 2-core CPU
    "smoke": {"width": 3, "epochs": 1, "lrs": "0.1", "schedules": "cosine", "target": 0.6,
              "phase": "both", "max_levels": 2, "population_size": 16},
    # SPEC §6: BENCH-95 init, phase 2 on (3,2,2), 416 masks x 2 lrs x 3 schedules
    "bench95": {"config": "3,2,2", "phase": "2", "target": 0.95, "init": f"{grids.BENCH_INITS}/bench95_init.npz",
                "keep_going": True},
    # BENCH-995 init, (6,3,2) subset of Appendix D
    "bench995": {"config": "6,3,2", "phase": "2", "target": 0.995, "init": f"{grids.BENCH_INITS}/bench995_init.npz",
                 "lrs": "0.05", "max_weight_sum": 30, "first_k_w2": 6},
    # random init, the paper's searches
    "paper95": {"target": 0.95, "phase": "both"},
    "paper995": {"target": 0.995, "phase": "both", "max_weight_sum": 32, "first_k_w2": 3, "phase2_lrs": "0.05"},
}

MAX_WIDTH = 32  # phase 1 enumerates D^3 configurations; the paper uses D = 16
PHASES = ("1", "2", "both")


@dataclasses.dataclass(frozen=True)
class CombSearchSettings:
    """A checked search: what both phases train and how phase 2 is bounded."""
    target: float
    phase: str
    phase1: comb.SearchSettings
    phase2: comb.SearchSettings
    config: tuple[int, int, int] | None = None
    phase1_max_nnz: int | None = None
    max_weight_sum: int | None = None
    first_k_w2: int | None = None
    max_levels: int | None = None
    keep_going: bool = False

    @property
    def space_opts(self) -> dict | None:
        return comb.mask_space_options(self.max_weight_sum, self.first_k_w2)

    @property
    def runs_phase1(self) -> bool:
        return self.phase in ("1", "both")

    @property
    def runs_phase2(self) -> bool:
        return self.phase in ("2", "both")


def settings(values: Mapping[str, Any], chunk_steps: int = 390) -> CombSearchSettings:
    """The checked settings of launcher ``values`` (flag name -> value; list flags as
    comma-separated text); ValueError naming the flag. Phase 2's inputs (init file, subset
    options, the configuration) are validated here too, before any work."""
    v = dict(values)
    target = float(v["target"])
    if not 0 < target <= 1:
        raise ValueError(f"--target: must be in (0, 1], got {v['target']}")
    width = int(v["width"])
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"--width: must be in [1, {MAX_WIDTH}] (phase 1 trains D^3 configurations), got {width}")
    if int(v["epochs"]) < 1:
        raise ValueError(f"--epochs: must be >= 1, got {v['epochs']}")
    if str(v["phase"]) not in PHASES:
        raise ValueError(f"--phase: must be one of {', '.join(PHASES)}, got {v['phase']!r}")
    for name in ("max_levels", "max_weight_sum", "first_k_w2", "phase1_max_nnz"):
        if v.get(name) is not None and int(v[name]) < 1:
            raise ValueError(f"--{name}: must be >= 1, got {v[name]}")
    lrs = tuple(sweep_flags.parse_floats("lrs", v["lrs"], positive=True))
    lrs2 = tuple(sweep_flags.parse_floats("phase2_lrs", v["phase2_lrs"], positive=True)) \
        if v.get("phase2_lrs") else lrs
    schedules = tuple(sweep_flags.parse_strs("schedules", v["schedules"], train.SCHEDULES))
    config = None
    if v.get("config") is not None:
        cfg = sweep_flags.parse_ints("config", v["config"], min_value=1)
        if len(cfg) != 3 or max(cfg) > width:
            raise ValueError(f"--config: need three unit counts in [1, {width}], got {v['config']}")
        config = tuple(cfg)
    if str(v["phase"]) == "2" and config is None:
        raise ValueError("--config: phase 2 alone needs a configuration d1,d2,d3")
    init = sweep_flags.check_init("init", v["init"])
    common = dict(width=width, schedules=schedules, epochs=int(v["epochs"]), init=init, seed=int(v["seed"]),
                  data_seed=sweep_flags.optional_seed("data_seed", v.get("data_seed")),
                  population_size=int(v["population_size"]), chunk_steps=int(chunk_steps))
    opt = lambda name: None if v.get(name) is None else int(v[name])  # noqa: E731
    s = CombSearchSettings(target=target, phase=str(v["phase"]), phase1=comb.SearchSettings(lrs=lrs, **common),
                           phase2=comb.SearchSettings(lrs=lrs2, **common), config=config,
                           phase1_max_nnz=opt("phase1_max_nnz"), max_weight_sum=opt("max_weight_sum"),
                           first_k_w2=opt("first_k_w2"), max_levels=opt("max_levels"),
                           keep_going=bool(v.get("keep_going", False)))
    if config is not None:  # every phase-2 input checked before any work
        comb.phase2_plan(s.phase2, config, s.space_opts, 0, 1)
    return s


@dataclasses.dataclass
class CombSearchResult:
    """What a search decided: phase 1's configuration and phase 2's winner (None when a phase
    did not run, found nothing or a shard must not decide)."""
    configuration: tuple[int, int, int] | None = None
    winner: dict[str, Any] | None = None
    decided: bool = True


def _check_sharding(s: CombSearchSettings, args: sweep_flags.SweepArgs) -> None:
    if args.num_shards > 1 and s.runs_phase2 and s.max_levels is None:
        raise ValueError("--max_levels: a sharded phase 2 cannot apply the stopping rule (each shard sees only "
                         "its own runs), so it trains every level up to --max_levels; give it")


def _phase1_shard(s: CombSearchSettings, args: sweep_flags.SweepArgs) -> tuple[plan_lib.Plan | None, ...]:
    plan1 = comb.phase1_plan(s.phase1, s.phase1_max_nnz) if s.runs_phase1 else None
    shard1 = plan_lib.shard(plan1, args.num_shards, args.shard_index) if plan1 is not None else None
    return plan1, shard1


def _phase2_run_cost(s: CombSearchSettings) -> int:
    """Model-steps of one phase-2 run (every run of phase 2 costs the same)."""
    return plan_lib.run_cost(comb.phase2_plan(s.phase2, s.config, s.space_opts, 0, 1).configs[0])


def dry_run(s: CombSearchSettings, args: sweep_flags.SweepArgs, echo: Callable[[str], None] = print) -> None:
    """Print the runs each phase would train (and what is already in ``args.store``); create nothing."""
    _check_sharding(s, args)
    _, shard1 = _phase1_shard(s, args)
    if shard1 is not None:
        runner.run_sweep(shard1, args.store if args.store and os.path.exists(args.store) else None, dry_run=True)
    if s.config is not None and s.runs_phase2:
        n = len(MaskSpace(s.config, **(s.space_opts or {})))
        runs = n * len(s.phase2.lrs) * len(s.phase2.schedules)
        steps = runs * _phase2_run_cost(s)
        secs = cost_lib.seconds({tuple(s.config): steps})  # phase 2 trains at the configuration's own shape
        echo(f"phase 2: {n} masks x {len(s.phase2.lrs)} lrs x {len(s.phase2.schedules)} schedules = "
             f"{runs} runs, {steps:,} model-steps at most (stops at the first level reaching the target); "
             f"predicted {cost_lib.hms(secs)} at most at the measured throughput (sparsejax.sweep.cost)")
    elif s.phase == "both":
        echo("phase 2: its size depends on the configuration phase 1 selects")
    if args.num_shards > 1:
        echo(merge_hint(args))


def run(s: CombSearchSettings, args: sweep_flags.SweepArgs, echo: Callable[[str], None] | None = None,
        log: Callable[[str], None] = lambda _: None) -> CombSearchResult:
    """Train phase 1 and/or phase 2 into ``args.store`` (resuming) and decide; prints progress
    and the winner (configuration, masks in PyTorch (out, in) layout, nnz, accuracy, run id)."""
    _check_sharding(s, args)
    plan1, shard1 = _phase1_shard(s, args)
    sharded = args.num_shards > 1
    os.makedirs(os.path.dirname(os.path.abspath(args.store)), exist_ok=True)
    out = CombSearchResult()
    with progress.Job("comb_search") as job:
        say = echo or job.echo
        if shard1 is not None:
            job.expect("phase 1", len(shard1), plan_lib.cost(shard1))
        if s.config is not None and s.runs_phase2:
            levels = MaskSpace(s.config, **(s.space_opts or {})).nnz_levels()
            n_levels = len(levels.nnz) if s.max_levels is None else min(s.max_levels, len(levels.nnz))
            n2 = int(sum(levels.count[:n_levels])) * len(s.phase2.lrs) * len(s.phase2.schedules)
            per_run = _phase2_run_cost(s)
            share = 1.0 / args.num_shards
            job.expect("phase 2", int(n2 * share), int(n2 * share * per_run), exact=False)
        structure = s.config
        if shard1 is not None:
            with job.stage("phase 1"):
                runner.run_sweep(shard1, args.store, population_size=s.phase1.population_size,
                                 chunk_steps=s.phase1.chunk_steps)
            if sharded:
                say(f"phase 1: shard {args.shard_index}/{args.num_shards} trained its {len(shard1)} runs; "
                    "no configuration is selected from a shard")
                say(merge_hint(args))
                out.decided = False
                return out
            best = comb.select_phase1(args.store, plan1, s.target)
            out.configuration = best
            if best is None:
                say(f"phase 1: no configuration exceeds {s.target}")
                return out
            say(f"phase 1: sparsest configuration exceeding {s.target}: {best} "
                f"(structured nnz {mlp.structured_nnz(best)})")
            structure = structure or best
        if s.runs_phase2:
            with job.stage("phase 2"):
                res = comb.run_phase2(s.phase2, structure, s.target, args.store, space_opts=s.space_opts,
                                      keep_going=s.keep_going, max_levels=s.max_levels,
                                      num_shards=args.num_shards, shard_index=args.shard_index, log=log)
            if sharded:
                say(f"phase 2: shard {args.shard_index}/{args.num_shards} trained its part of levels "
                    f"{res.levels_done}; no winner is decided from a shard")
                say(merge_hint(args))
                out.decided = False
                return out
            if res.winner is None:
                say(f"phase 2: no mask of {structure} exceeds {s.target} in levels {res.levels_done}")
                return out
            w = comb.describe_winner(args.store, res.winner)
            out.winner = w
            say(f"winner: configuration {w['structure']}, model nnz {w['model_nnz']}, "
                f"accuracy {w['accuracy']:.4f}, run {w['run_id']} (mask {w['mask_index']}, lr {w['lr']}, "
                f"{w['schedule']})")
            say("masks (out, in): " + json.dumps(w["weight_masks"]))
    return out


def merge_hint(args: sweep_flags.SweepArgs) -> str:
    """What a shard's user does next: merge, then decide on the merged store."""
    return (f"next: when all {args.num_shards} shards are done, merge their stores "
            "(python -m experiments.store merge --store=MERGED --inputs=SHARD0,SHARD1,...) and rerun this "
            "command without --num_shards/--shard_index with --store=MERGED: finished runs are skipped "
            "and the search decides on all of them")
