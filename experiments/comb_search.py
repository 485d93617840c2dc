r"""The combinatorial search: phase 1 (neuron configurations), phase 2 (unstructured masks).

    python -m experiments.comb_search --preset=smoke --store=out/smoke.sqlite
    python -m experiments.comb_search --target=0.995 --width=16 --phase=both --store=out/s995.sqlite
    python -m experiments.comb_search --phase=2 --config=3,2,2 \
        --init=../shared/bench-inits/bench95_init.npz --target=0.95 --store=out/bench95.sqlite

Every run goes to the sweep store (default with a preset: out/<preset>/store.sqlite);
relaunching the same command resumes. Prints the winner: configuration, masks (PyTorch (out, in)
layout), model nnz, accuracy and run id.

With --num_shards > 1 a job trains only its shard's runs and decides nothing: a shard sees a
part of phase 1, so its "sparsest configuration" would be wrong. Merge the shard stores
(python -m experiments.store merge) and rerun the same command without the shard flags on the
merged store: finished runs are skipped and the search decides on all of them.
"""
from __future__ import annotations

import json
import os

from absl import flags, logging

from sparsejax import train
from sparsejax.search import combinatorial as comb
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import grids
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import progress
from sparsejax.sweep import runner

PRESETS = {
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

sweep_flags.define_sweep_flags(tuple(PRESETS))
flags.DEFINE_float("target", 0.95, "target accuracy rho in (0, 1]: a run succeeds when accuracy > rho")
flags.DEFINE_integer("width", 16, f"D: the width of the network; phase 1 searches {{1..D}}^3 (D <= {MAX_WIDTH})")
flags.DEFINE_enum("phase", "both", ["1", "2", "both"], "which phase(s) to run")
flags.DEFINE_string("config", None, "d1,d2,d3 for phase 2 (default: phase 1's winner)")
flags.DEFINE_string("init", "random", "'random' (a fresh init per run) or an init .npz (PyTorch names)")
flags.DEFINE_string("lrs", "0.05,0.1", "learning rates")
flags.DEFINE_string("phase2_lrs", None, "learning rates of phase 2 (default: --lrs)")
flags.DEFINE_string("schedules", "constant,cosine,step", "schedules")
flags.DEFINE_integer("epochs", 50, "epochs per run")
flags.DEFINE_integer("seed", 0, "seed (part of every run's identity)")
flags.DEFINE_integer("phase1_max_nnz", None, "phase 1: only configurations with structured nnz below this")
flags.DEFINE_integer("max_weight_sum", None, "phase 2 subset: w1+w2+w3 <= this (Appendix D)")
flags.DEFINE_integer("first_k_w2", None, "phase 2 subset: the first k W2 masks per W2 weight count")
flags.DEFINE_integer("max_levels", None, "phase 2: train at most this many nnz levels")
flags.DEFINE_bool("keep_going", False, "phase 2: keep going after the first level reaching the target")
FLAGS = flags.FLAGS
SETTINGS = ("target", "width", "phase", "config", "init", "lrs", "phase2_lrs", "schedules", "epochs", "seed",
            "phase1_max_nnz", "max_weight_sum", "first_k_w2", "max_levels", "keep_going", "population_size")


def settings_from_flags() -> dict:
    """The checked settings (preset overlaid by explicit flags); ValueError naming the flag."""
    if FLAGS.preset and FLAGS.store is None and FLAGS.preset in PRESETS:
        FLAGS.store = os.path.join(sweep_flags.preset_out(FLAGS.preset), "store.sqlite")
    args = sweep_flags.sweep_args()
    s = sweep_flags.apply_preset(PRESETS, args.preset, {k: FLAGS[k].value for k in SETTINGS})
    if not 0 < float(s["target"]) <= 1:
        raise ValueError(f"--target: must be in (0, 1], got {s['target']}")
    if not 1 <= int(s["width"]) <= MAX_WIDTH:
        raise ValueError(f"--width: must be in [1, {MAX_WIDTH}] (phase 1 trains D^3 configurations), "
                         f"got {s['width']}")
    if int(s["epochs"]) < 1:
        raise ValueError(f"--epochs: must be >= 1, got {s['epochs']}")
    for name in ("max_levels", "max_weight_sum", "first_k_w2", "phase1_max_nnz"):
        if s[name] is not None and int(s[name]) < 1:
            raise ValueError(f"--{name}: must be >= 1, got {s[name]}")
    s["lrs"] = tuple(sweep_flags.parse_floats("lrs", s["lrs"], positive=True))
    s["phase2_lrs"] = tuple(sweep_flags.parse_floats("phase2_lrs", s["phase2_lrs"], positive=True)) \
        if s["phase2_lrs"] else s["lrs"]
    s["schedules"] = tuple(sweep_flags.parse_strs("schedules", s["schedules"], train.SCHEDULES))
    if s["config"] is not None:
        cfg = sweep_flags.parse_ints("config", s["config"], min_value=1)
        if len(cfg) != 3 or max(cfg) > int(s["width"]):
            raise ValueError(f"--config: need three unit counts in [1, {s['width']}], got {s['config']}")
        s["config"] = tuple(cfg)
    if s["phase"] == "2" and s["config"] is None:
        raise ValueError("--config: phase 2 alone needs a configuration d1,d2,d3")
    s["init"] = sweep_flags.check_init("init", s["init"])
    s["args"] = args
    return s


def search_settings(s: dict, lrs) -> comb.SearchSettings:
    return comb.SearchSettings(width=int(s["width"]), lrs=lrs, schedules=s["schedules"], epochs=int(s["epochs"]),
                               init=s["init"], seed=int(s["seed"]), population_size=int(s["population_size"]),
                               chunk_steps=s["args"].chunk_steps)


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"arguments: unexpected {' '.join(argv[1:])!r}")
    s = settings_from_flags()
    args, target = s["args"], float(s["target"])
    sharded = args.num_shards > 1
    if sharded and s["phase"] in ("2", "both") and s["max_levels"] is None:
        raise ValueError("--max_levels: a sharded phase 2 cannot apply the stopping rule (each shard sees only "
                         "its own runs), so it trains every level up to --max_levels; give it")
    opts = comb.mask_space_options(s["max_weight_sum"], s["first_k_w2"])
    p1 = search_settings(s, s["lrs"])
    p2 = search_settings(s, s["phase2_lrs"])
    # validate everything phase 2 will need before any work (init file, subset options)
    plan1 = comb.phase1_plan(p1, s["phase1_max_nnz"]) if s["phase"] in ("1", "both") else None
    space = None
    if s["config"] is not None:
        comb.phase2_plan(p2, s["config"], opts, 0, 1)
        from sparsejax.search.product import MaskSpace
        space = MaskSpace(s["config"], **(opts or {}))
    shard1 = plan_lib.shard(plan1, args.num_shards, args.shard_index) if plan1 is not None else None
    if args.dry_run:
        if shard1 is not None:
            runner.run_sweep(shard1, args.store if args.store and os.path.exists(args.store) else None,
                             dry_run=True)
        if space is not None and s["phase"] in ("2", "both"):
            n = len(space)
            print(f"phase 2: {n} masks x {len(p2.lrs)} lrs x {len(p2.schedules)} schedules = "
                  f"{n * len(p2.lrs) * len(p2.schedules)} runs at most (stops at the first level reaching the target)")
        elif s["phase"] == "both":
            print("phase 2: its size depends on the configuration phase 1 selects")
        if sharded:
            print(_merge_hint(args))
        return
    os.makedirs(os.path.dirname(os.path.abspath(args.store)), exist_ok=True)
    with progress.Job("comb_search") as job:
        if shard1 is not None:
            job.expect("phase 1", len(shard1), plan_lib.cost(shard1))
        if space is not None and s["phase"] in ("2", "both"):
            levels = space.nnz_levels()
            n_levels = len(levels.nnz) if s["max_levels"] is None else min(int(s["max_levels"]), len(levels.nnz))
            n2 = int(sum(levels.count[:n_levels])) * len(p2.lrs) * len(p2.schedules)
            per_run = plan_lib.run_cost(comb.phase2_plan(p2, s["config"], opts, 0, 1).configs[0])
            share = 1.0 / args.num_shards
            job.expect("phase 2", int(n2 * share), int(n2 * share * per_run), exact=False)
        structure = s["config"]
        if shard1 is not None:
            with job.stage("phase 1"):
                runner.run_sweep(shard1, args.store, population_size=p1.population_size,
                                 chunk_steps=args.chunk_steps)
            if sharded:  # a shard saw part of phase 1: it must not decide
                job.echo(f"phase 1: shard {args.shard_index}/{args.num_shards} trained its {len(shard1)} runs; "
                         "no configuration is selected from a shard")
                job.echo(_merge_hint(args))
                return
            best = comb.select_phase1(args.store, plan1, target)
            if best is None:
                job.echo(f"phase 1: no configuration exceeds {target}")
                return
            job.echo(f"phase 1: sparsest configuration exceeding {target}: {best} "
                     f"(structured nnz {comb.mlp.structured_nnz(best)})")
            structure = structure or best
        if s["phase"] in ("2", "both"):
            with job.stage("phase 2"):
                res = comb.run_phase2(p2, structure, target, args.store, space_opts=opts,
                                      keep_going=bool(s["keep_going"]), max_levels=s["max_levels"],
                                      num_shards=args.num_shards, shard_index=args.shard_index,
                                      log=logging.info)
            if sharded:
                job.echo(f"phase 2: shard {args.shard_index}/{args.num_shards} trained its part of levels "
                         f"{res.levels_done}; no winner is decided from a shard")
                job.echo(_merge_hint(args))
                return
            if res.winner is None:
                job.echo(f"phase 2: no mask of {structure} exceeds {target} in levels {res.levels_done}")
                return
            w = comb.describe_winner(args.store, res.winner)
            job.echo(f"winner: configuration {w['structure']}, model nnz {w['model_nnz']}, "
                     f"accuracy {w['accuracy']:.4f}, run {w['run_id']} (mask {w['mask_index']}, lr {w['lr']}, "
                     f"{w['schedule']})")
            job.echo("masks (out, in): " + json.dumps(w["weight_masks"]))


def _merge_hint(args: sweep_flags.SweepArgs) -> str:
    """What a shard's user does next: merge, then decide on the merged store."""
    return (f"next: when all {args.num_shards} shards are done, merge their stores "
            "(python -m experiments.store merge --store=MERGED --inputs=SHARD0,SHARD1,...) and rerun this "
            "command without --num_shards/--shard_index with --store=MERGED: finished runs are skipped "
            "and the search decides on all of them")


if __name__ == "__main__":
    sweep_flags.run(main)
