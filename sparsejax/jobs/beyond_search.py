"""Beyond the paper's bound (issue #15) as one job: spend a compute budget looking for sparser
models with successive halving over masks of configurations near the frontier.

``settings(values, args)`` checks the launcher's values once; :func:`run` plans the (configuration,
nnz level) brackets within the budget, trains them through the store (resumable), prints the
Pareto frontier as it goes and writes the sparsest model exceeding the target as a winner file.
See ``experiments/beyond_search.py`` for the flags and what each stage does.
"""
from __future__ import annotations

import json
import os
import types
from typing import Any, Mapping

from sparsejax import fileio, runs, train
from sparsejax.search import beyond, halving
from sparsejax.search.product import MaskSpace
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import identity
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import runner

PAPER_BOUND = {0.95: 30, 0.995: 45}  # SPEC §9: the sparsest model the paper's search found
MAX_WIDTH = 16
AUDIT_KEEPS = (0.5, 0.25, 0.125)  # simulated on an exhaustive (--keep=1) search
FLAG_NAMES = ('target', 'budget_model_steps', 'structures', 'near', 'slack', 'min_units', 'width', 'min_nnz', 'max_nnz', 'masks_per_level', 'sample_seed', 'lrs', 'schedules', 'seeds', 'rungs', 'keep', 'signal', 'reseed_top', 'reseed_seeds', 'reseed_fraction', 'winners_dir', 'name')  # the launcher's own flags



def parse_structures(text: str, width: int) -> list[tuple[int, int, int]]:
    """``"3x3x3,4x3x2"`` -> [(3, 3, 3), (4, 3, 2)]; ValueError naming --structures."""
    out = []
    for item in sweep_flags.parse_strs("structures", text):
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
            raise ValueError(f"--structures: {item!r} is not d1xd2xd3 (e.g. 3x3x3)")
        dims = tuple(int(p) for p in parts)
        if not all(1 <= d <= width for d in dims):
            raise ValueError(f"--structures: {item!r}: unit counts must be in [1, {width}]")
        out.append(dims)
    return list(dict.fromkeys(out))


def settings(values: Mapping[str, Any], args: sweep_flags.SweepArgs) -> dict[str, Any]:
    """Launcher ``values`` (flag name -> value) and ``args`` checked (ValueError naming the flag,
    nothing written): the search's settings, its (configuration, nnz level) brackets included."""
    v = types.SimpleNamespace(**{k: values[k] for k in FLAG_NAMES})
    if args.num_shards != 1:
        raise ValueError("--num_shards: a halving search decides between rungs; it does not shard")
    s: dict[str, Any] = {"args": args, **{k: values[k] for k in ("width", "masks_per_level", "sample_seed",
                                                                  "reseed_top", "reseed_fraction")}}
    target = float(v.target)
    if not 0 < target < 1:
        raise ValueError(f"--target: must be in (0, 1), got {v.target}")
    s["target"] = target
    if v.budget_model_steps is None or v.budget_model_steps < 1:
        raise ValueError(f"--budget_model_steps: required, >= 1 (got {v.budget_model_steps})")
    s["budget"] = int(v.budget_model_steps)
    if not 1 <= v.width <= MAX_WIDTH:
        raise ValueError(f"--width: must be in [1, {MAX_WIDTH}], got {v.width}")
    if v.structures:
        s["structures"] = parse_structures(v.structures, v.width)
    else:
        near = parse_structures(v.near, v.width)
        if len(near) != 1:
            raise ValueError(f"--near: one configuration d1xd2xd3, got {v.near!r}")
        if v.slack < 0 or v.min_units < 1:
            raise ValueError("--slack: must be >= 0 and --min_units >= 1")
        s["structures"] = beyond.structures_near(near[0], v.slack, v.width, v.min_units)
    bound = min((b for t, b in PAPER_BOUND.items() if t >= target), default=None)
    max_nnz = v.max_nnz if v.max_nnz is not None else (bound - 1 if bound else None)
    if max_nnz is None:
        raise ValueError(f"--max_nnz: required for a target above {max(PAPER_BOUND)}")
    min_nnz = v.min_nnz if v.min_nnz is not None else max_nnz - 4
    if not 1 <= min_nnz <= max_nnz:
        raise ValueError(f"--min_nnz/--max_nnz: need 1 <= min_nnz <= max_nnz, got {min_nnz}, {max_nnz}")
    s["min_nnz"], s["max_nnz"] = int(min_nnz), int(max_nnz)
    if v.masks_per_level is not None and v.masks_per_level < 1:
        raise ValueError(f"--masks_per_level: must be >= 1, got {v.masks_per_level}")
    s["lrs"] = tuple(sweep_flags.parse_floats("lrs", v.lrs, positive=True))
    s["schedules"] = tuple(sweep_flags.parse_strs("schedules", v.schedules, train.SCHEDULES))
    s["seeds"] = tuple(sweep_flags.parse_ints("seeds", v.seeds, min_value=0))
    s["reseed_seeds"] = tuple(sweep_flags.parse_ints("reseed_seeds", v.reseed_seeds, min_value=0))
    rungs = sweep_flags.parse_ints("rungs", v.rungs, min_value=1, max_value=10_000)
    s["halving"] = halving.HalvingSettings(rungs=tuple(rungs), keep=float(v.keep), signal=v.signal,
                                           population_size=args.population_size, chunk_steps=args.chunk_steps)
    if v.reseed_top < 0:
        raise ValueError(f"--reseed_top: must be >= 0, got {v.reseed_top}")
    if not 0 <= v.reseed_fraction < 1:
        raise ValueError(f"--reseed_fraction: must be in [0, 1), got {v.reseed_fraction}")
    name = v.name or f"beyond_{format(target * 100, 'g').replace('.', '')}"
    if not name.replace("_", "").replace("-", "").isalnum() or not name.isascii():
        raise ValueError(f"--name: letters, digits, '_' and '-' only, got {name!r}")
    s["name"] = name
    s["winners_dir"] = sweep_flags.check_output_dir("winners_dir", v.winners_dir)
    # the spaces and their levels (also checks that the runs are valid configs)
    s["levels"] = []  # (structure, nnz, count)
    for st in s["structures"]:
        space = MaskSpace(st)
        lv = space.nnz_levels()
        for n, c in zip(lv.nnz.tolist(), lv.count.tolist()):
            if s["min_nnz"] <= n <= s["max_nnz"]:
                s["levels"].append((st, int(n), int(c)))
    if not s["levels"]:
        raise ValueError(f"--min_nnz/--max_nnz: no configuration of {s['structures']} has masks with model nnz in "
                         f"[{s['min_nnz']}, {s['max_nnz']}]")
    probe = beyond.mask_configs(s["levels"][0][0], [0], s["lrs"][:1], s["schedules"][:1], s["seeds"][:1],
                                width=v.width, epochs=rungs[-1])
    plan_lib.Plan(probe)  # a bad run config fails here, before anything is written
    s["steps_per_epoch"] = plan_lib.run_cost(plan_lib.Plan(probe).configs[0]) // rungs[-1]
    return s


def runs_per_mask(s: dict, seeds) -> int:
    return len(s["lrs"]) * len(s["schedules"]) * len(seeds)


def fit_masks_per_level(s: dict, budget: int) -> int:
    """The largest per-(configuration, level) mask cap m whose planned halving cost fits `budget`
    (0 when not even one mask per level fits); capped by --masks_per_level."""
    r, h, spe = runs_per_mask(s, s["seeds"]), s["halving"], s["steps_per_epoch"]

    def cost(m: int) -> int:
        return sum(halving.halving_epochs(min(m, c) * r, h) for _, _, c in s["levels"]) * spe
    hi = max(c for _, _, c in s["levels"])
    if s["masks_per_level"] is not None:
        hi = min(hi, s["masks_per_level"])
    lo = 0
    while lo < hi:  # cost is non-decreasing in m
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid - 1)
    return lo


def print_frontier(records: list[dict], target: float, echo=print) -> None:
    front = halving.frontier(records)
    cells = [f"{p['model_nnz']}:{p['accuracy'] * 100:.2f}%" for p in front]
    echo(f"frontier (model nnz: best accuracy): {'  '.join(cells) if cells else '(no finished runs)'}")
    best = halving.sparsest_reaching(records, target)
    if best is not None:
        echo(f"sparsest above {target:g}: {best['model_nnz']} nnz, {best['accuracy'] * 100:.2f} %, run {best['run_id']}")


def write_winner(s: dict, rec: dict) -> str:
    path = os.path.join(s["winners_dir"], s["name"] + ".json")
    body = {"name": s["name"], "target": s["target"], "accuracy": rec["accuracy"],
            "model_nnz": rec["model_nnz"], "config": identity.resolve(rec["config"])}
    os.makedirs(s["winners_dir"], exist_ok=True)
    fileio.atomic_write_text(path, json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


def run(s: dict[str, Any]) -> dict | None:
    """Plan the brackets within the budget and print the plan; unless a dry run, train them
    (halving, then stage 2), print the frontier as it goes and write the winner file. Returns
    the winner's record (None: none, or a dry run)."""
    args, h = s["args"], s["halving"]
    stage2_budget = int(s["budget"] * s["reseed_fraction"]) if s["reseed_top"] else 0
    m = fit_masks_per_level(s, s["budget"] - stage2_budget)
    if m == 0:
        need = sum(halving.halving_epochs(runs_per_mask(s, s["seeds"]), h) for _ in s["levels"]) * s["steps_per_epoch"]
        raise ValueError(f"--budget_model_steps: {s['budget'] - stage2_budget:,} model-steps for stage 1 do not fit one "
                         f"mask per level ({need:,} needed)")
    plan_levels = [(st, n, c, min(m, c)) for st, n, c in s["levels"]]
    planned = sum(halving.halving_epochs(k * runs_per_mask(s, s["seeds"]), h) for *_, k in plan_levels) * s["steps_per_epoch"]
    print(f"plan: {len(s['structures'])} configurations, {len(plan_levels)} (configuration, nnz level) brackets in "
          f"[{s['min_nnz']}, {s['max_nnz']}], <= {m} masks each x {runs_per_mask(s, s['seeds'])} runs; rungs "
          f"{list(h.rungs)}, keep {h.keep:g}, signal {h.signal}; stage 1 {planned:,} model-steps, stage 2 "
          f"<= {stage2_budget:,}")
    for st, n, c, k in plan_levels:
        print(f"  {'x'.join(map(str, st))} nnz {n}: {k} of {c} masks")
    if args.dry_run:
        return None
    if args.store:
        os.makedirs(os.path.dirname(os.path.abspath(args.store)), exist_ok=True)
    allow = bool(args.allow_numeric_path_change)
    runner.check_numeric_path(args.store, allow)  # before anything is written
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    bracket = lambda c: (tuple(c["structure"]), int(runs.mask_space(c).model_nnz([c["mask_index"]])[0]))  # noqa: E731
    records: dict[str, dict] = {}
    spent = 0
    for n in sorted({n for _, n, _, _ in plan_levels}):
        cfgs = []
        for st, nn, c, k in plan_levels:
            if nn == n:
                idx = beyond.sample_level(runs.mask_space({"structure": st}), n, k, s["sample_seed"])
                cfgs += beyond.mask_configs(st, idx, s["lrs"], s["schedules"], s["seeds"], width=s["width"],
                                            epochs=h.rungs[-1])
        res = halving.run_halving(cfgs, args.store, h, bracket, log=log, allow_numeric_path_change=allow)
        spent += res.model_steps
        records.update({r["run_id"]: r for r in res.records})
        if h.keep == 1 and len(h.rungs) > 1:  # exhaustive: how often would halving cut the winners?
            brackets = {identity.run_id(c): bracket(c) for c in cfgs}
            for row in halving.audit(res.rung_metrics, brackets, h.rungs, AUDIT_KEEPS):
                log(f"audit: nnz {n}: signal {row['signal']}, keep {row['keep']:g}: of {row['brackets']} bracket "
                    f"winners, cut at rung " + ", ".join(f"{e}: {c}" for e, c in row["cut_at"].items())
                    + f"; kept {row['kept']}")
        log(f"stage 1: nnz {n}: {len(cfgs)} runs, {len(res.records)} finished, {res.model_steps:,} model-steps "
            f"trained in {res.seconds:.0f}s")
        print_frontier(list(records.values()), s["target"], log)
    if stage2_budget and s["reseed_top"]:
        best_masks: dict[tuple, dict[int, float]] = {}
        for r in records.values():
            if r["diverged"]:
                continue
            key = (tuple(r["config"]["structure"]), int(r["model_nnz"]))
            per = best_masks.setdefault(key, {})
            mi = int(r["config"]["mask_index"])
            per[mi] = max(per.get(mi, -1.0), float(r["accuracy"]))
        top = {key: sorted(per, key=lambda i: (-per[i], i))[:s["reseed_top"]] for key, per in best_masks.items()}
        # the sparsest levels first, so a short stage-2 budget goes where a win is worth most
        cfgs, cost = [], 0
        for (st, n) in sorted(top, key=lambda k: (k[1], k[0])):
            add = beyond.mask_configs(st, top[(st, n)], s["lrs"], s["schedules"], s["reseed_seeds"],
                                      width=s["width"], epochs=h.rungs[-1])
            c = halving.halving_epochs(len(add), h) * s["steps_per_epoch"]
            if cost + c > stage2_budget:
                break
            cfgs, cost = cfgs + add, cost + c
        if cfgs:
            log(f"stage 2: {len(cfgs)} runs (best masks, seeds {list(s['reseed_seeds'])}), {cost:,} model-steps planned")
            res = halving.run_halving(cfgs, args.store, h, bracket, log=log, allow_numeric_path_change=allow)
            spent += res.model_steps
            records.update({r["run_id"]: r for r in res.records})
            print_frontier(list(records.values()), s["target"], log)
    log(f"trained {spent:,} model-steps in this launch (stored states and records are reused)")
    best = halving.sparsest_reaching(list(records.values()), s["target"])
    if best is None:
        log(f"no model exceeds {s['target']:g} in nnz [{s['min_nnz']}, {s['max_nnz']}]; no winner written")
        return None
    path = write_winner(s, best)
    log(f"winner: {best['model_nnz']} nnz, {best['accuracy'] * 100:.2f} %, run {best['run_id']} "
        f"({'x'.join(map(str, best['config']['structure']))}, mask {best['config']['mask_index']}, "
        f"lr {best['config']['lr']}, {best['config']['schedule']}, seed {best['config']['seed']}) -> {path}")
    return best
