"""The combinatorial search (SPEC §4, the paper's Algorithm 1) on top of the sweep engine.

Phase 1 trains every neuron configuration (d1, d2, d3) ∈ {1..D}³ as top-left blocks of a width-D
network and selects the sparsest one whose best accuracy exceeds ρ. Phase 2 trains the eligible
unstructured masks of that configuration in ascending model nnz, one nnz level at a time, and
stops after the first level where some mask exceeds ρ (an option keeps going). Every run goes
through the store, so a killed search resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from sparsejax import mlp
from sparsejax.search.product import MaskSpace, phase1_configs, select_sparsest
from sparsejax.sweep import identity
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import runner
from sparsejax.sweep.store import Store


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """What a search trains: the grid of hyperparameters shared by both phases."""
    width: int = 16
    lrs: tuple[float, ...] = (0.05, 0.1)
    schedules: tuple[str, ...] = ("constant", "cosine", "step")
    epochs: int = 50
    init: str = "random"
    seed: int = 0
    data_seed: int | None = None  # shared data order of every run (None: each run its own, as the paper)
    population_size: int = 1024
    chunk_steps: int = 390


def phase1_plan(s: SearchSettings, max_nnz: int | None = None) -> plan_lib.Plan:
    """Phase-1 runs: every configuration (structured nnz < `max_nnz` when given) × lrs × schedules."""
    cfgs = [tuple(int(d) for d in c) for c in phase1_configs(s.width)]
    if max_nnz is not None:
        cfgs = [c for c in cfgs if mlp.structured_nnz(c) < max_nnz]
    return plan_lib.Plan(plan_lib.grid(method="structured", widths=[(s.width,) * 3], structure=cfgs,
                                       lr=list(s.lrs), schedule=list(s.schedules), epochs=s.epochs,
                                       init=s.init, seed=s.seed, data_seed=s.data_seed))


def accuracies(store_path: str, plan: plan_lib.Plan) -> dict[str, dict]:
    """Records (without blobs) of the plan's runs found in the store, by run id."""
    with Store(store_path, create=False) as st:
        return {r["run_id"]: r for r in st.records(plan.ids)}


def select_phase1(store_path: str, plan: plan_lib.Plan, target: float) -> tuple[int, int, int] | None:
    """The sparsest configuration whose best accuracy over its runs exceeds `target`."""
    recs = accuracies(store_path, plan)
    cfgs, accs = [], []
    for rid, c in zip(plan.ids, plan.configs):
        if rid in recs:
            cfgs.append(tuple(c["structure"]))
            accs.append(np.nan if recs[rid]["diverged"] else recs[rid]["accuracy"])
    if not cfgs:
        return None
    return select_sparsest(np.asarray(cfgs), np.asarray(accs), target)


def mask_space_options(max_weight_sum: int | None, first_k_w2: int | None) -> dict | None:
    opts = {k: v for k, v in (("max_weight_sum", max_weight_sum), ("first_k_w2", first_k_w2)) if v is not None}
    return opts or None


def phase2_plan(s: SearchSettings, structure: Sequence[int], space_opts: dict | None,
                start: int, count: int) -> plan_lib.Plan:
    """Runs of mask indices [start, start+count) × lrs × schedules (whole nnz levels)."""
    return plan_lib.Plan(plan_lib.grid(method="search", widths=[(s.width,) * 3], structure=[tuple(structure)],
                                       mask_space=space_opts, mask_index=list(range(start, start + count)),
                                       lr=list(s.lrs), schedule=list(s.schedules), epochs=s.epochs,
                                       init=s.init, seed=s.seed, data_seed=s.data_seed))


def level_batches(counts: Sequence[int], runs_per_mask: int, population_size: int) -> list[list[int]]:
    """Consecutive nnz levels grouped so each group fills at least one population (the last may
    be short): small early levels train together instead of as many tiny populations."""
    groups, cur, size = [], [], 0
    for i, c in enumerate(counts):
        cur.append(i)
        size += int(c) * runs_per_mask
        if size >= population_size:
            groups.append(cur)
            cur, size = [], 0
    if cur:
        groups.append(cur)
    return groups


@dataclasses.dataclass
class Phase2Result:
    levels_done: list[int]          # model nnz of every level trained
    winner: dict | None             # the best record at the first level exceeding the target
    runs: int


def run_phase2(s: SearchSettings, structure: Sequence[int], target: float, store_path: str,
               space_opts: dict | None = None, keep_going: bool = False, max_levels: int | None = None,
               num_shards: int = 1, shard_index: int = 0,
               log: Callable[[str], None] = print) -> Phase2Result:
    """Phase 2 in ascending model nnz. Levels are trained in groups that fill a population; after
    each group the first level (ascending) where some run exceeds `target` decides, and the
    search stops there unless `keep_going`. Finished runs in the store are not trained again.
    With ``num_shards > 1`` the stopping rule would see only this shard's runs, so a shard
    trains every level up to `max_levels` and decides nothing (merge, then run unsharded)."""
    space = MaskSpace(tuple(structure), **(space_opts or {}))
    lv = space.nnz_levels()
    n_levels = len(lv.nnz) if max_levels is None else min(max_levels, len(lv.nnz))
    per_mask = len(s.lrs) * len(s.schedules)
    done_levels, winner, total = [], None, 0
    for group in level_batches(lv.count[:n_levels], per_mask, s.population_size):
        start, count = int(lv.start[group[0]]), int(sum(lv.count[i] for i in group))
        plan = phase2_plan(s, structure, space_opts, start, count)
        log(f"phase 2: nnz levels {int(lv.nnz[group[0]])}..{int(lv.nnz[group[-1]])}: {count} masks x {per_mask} "
            f"= {len(plan)} runs")
        runner.run_sweep(plan_lib.shard(plan, num_shards, shard_index), store_path,
                         population_size=s.population_size, chunk_steps=s.chunk_steps, log=log)
        total += len(plan)
        recs = accuracies(store_path, plan)
        for i in group:
            done_levels.append(int(lv.nnz[i]))
            if winner is not None:
                continue
            lo, hi = int(lv.start[i]), int(lv.start[i]) + int(lv.count[i])
            hits = [r for r in recs.values() if lo <= r["config"]["mask_index"] < hi
                    and not r["diverged"] and r["accuracy"] > target]
            if hits:
                winner = max(hits, key=lambda r: (r["accuracy"], -r["model_nnz"]))
                log(f"phase 2: level nnz={int(lv.nnz[i])} reaches the target: {winner['accuracy']:.4f} "
                    f"({winner['run_id']})")
        if winner is not None and not keep_going and num_shards == 1:
            break
    if num_shards > 1:  # a shard sees only its own runs: it neither stops early nor names a winner
        winner = None
    return Phase2Result(done_levels, winner, total)


def describe_winner(store_path: str, record: dict) -> dict[str, Any]:
    """The winner's configuration, masks (PyTorch layout), nnz, accuracy and run id."""
    with Store(store_path, create=False) as st:
        full = st.get(record["run_id"])
    cfg = identity.resolve(full["config"])
    masks = full["masks"]
    layers = sorted({k.split("/")[0] for k in masks}, key=int)
    return {"run_id": record["run_id"], "structure": tuple(cfg["structure"]), "mask_index": cfg.get("mask_index"),
            "lr": cfg["lr"], "schedule": cfg["schedule"], "accuracy": full["accuracy"],
            "model_nnz": full["model_nnz"], "weight_nnz": full["weight_nnz"],
            "weight_masks": [np.asarray(masks[f"{l}/w"]).T.astype(int).tolist() for l in layers]}
