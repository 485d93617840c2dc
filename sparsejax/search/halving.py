"""Successive halving over prefixes of the real training protocol.

A run's first e epochs are a prefix of its full run: the cosine and step schedules are defined on
the full ``epochs`` (SPEC §3), so stopping at epoch e and continuing later changes nothing. A
halving search trains every candidate to the first rung (e.g. epoch 5), ranks the candidates of
each *bracket* (e.g. one nnz level of one configuration) by a signal measured at the rung on the
full training set (accuracy, or mean loss), keeps the best fraction, continues only those from
their saved states to the next rung (15), and so on up to the last rung, which is the full run
(50). A promoted run's final record is bit-identical to the record of the same run trained
straight through (same run id, same numbers; ``runs.advance_population``).

Everything goes through the sweep store: states at intermediate rungs are partial rows
(``store.write_partials``), final records are ordinary runs (with ``metrics.halving`` saying
which rungs the run passed). A killed search relaunched with the same candidates reuses every
stored state and record: a population killed mid-rung restarts from its last stored rung.

Deviation from plain successive halving: ranking is within brackets (a bracket keeps
``ceil(keep · n)`` of its n candidates, at least ``min_keep``), because we look for the best run
*at each nnz*, not the best run overall (which would be a dense-ish one).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from sparsejax import data, runs, train
from sparsejax.sweep import numeric_path as numeric_path_lib
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import runner
from sparsejax.sweep import store as store_lib
from sparsejax.sweep.store import Store

SIGNALS = ("accuracy", "loss")
Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class HalvingSettings:
    """Rungs (epochs, ascending, the last = the runs' epochs), the fraction of each bracket kept
    at every rung but the last, the ranking signal, and population/chunk sizes."""
    rungs: tuple[int, ...] = (5, 15, 50)
    keep: float = 0.25
    min_keep: int = 1
    signal: str = "accuracy"
    population_size: int = 1024
    chunk_steps: int = 390

    def __post_init__(self) -> None:
        rungs = tuple(int(r) for r in self.rungs)
        if not rungs or any(r < 1 for r in rungs) or list(rungs) != sorted(set(rungs)):
            raise ValueError(f"rungs: must be strictly increasing epochs >= 1, got {list(self.rungs)}")
        object.__setattr__(self, "rungs", rungs)
        if not 0 < float(self.keep) <= 1:
            raise ValueError(f"keep: must be in (0, 1], got {self.keep}")
        if int(self.min_keep) < 1:
            raise ValueError(f"min_keep: must be >= 1, got {self.min_keep}")
        if self.signal not in SIGNALS:
            raise ValueError(f"signal: unknown {self.signal!r}; allowed: {', '.join(SIGNALS)}")
        if int(self.population_size) < 1 or int(self.chunk_steps) < 1:
            raise ValueError("population_size and chunk_steps must be >= 1")

    def kept(self, n: int) -> int:
        """How many of a bracket's `n` candidates go on to the next rung."""
        return min(n, max(int(self.min_keep), math.ceil(float(self.keep) * n - 1e-9)))


def halving_epochs(n: int, s: HalvingSettings) -> int:
    """Model-epochs a halving over one bracket of `n` candidates trains (nothing stored yet)."""
    total, prev = 0, 0
    for k, rung in enumerate(s.rungs):
        total += n * (rung - prev)
        prev = rung
        if k < len(s.rungs) - 1:
            n = s.kept(n)
    return total


def rank_key(signal: str, metrics: Mapping[str, Any], run_id: str) -> tuple:
    """Sort key, best first: higher accuracy (or lower loss); diverged or non-finite last; ties
    by run id (deterministic)."""
    value = metrics.get(signal)
    bad = bool(metrics.get("diverged")) or value is None or not math.isfinite(float(value))
    score = 0.0 if bad else (-float(value) if signal == "accuracy" else float(value))
    return (bad, score, run_id)


def select(candidates: Sequence[str], metrics: Mapping[str, Mapping[str, Any]], brackets: Mapping[str, Hashable],
           s: HalvingSettings) -> list[str]:
    """The ids kept from `candidates` (order preserved): per bracket the ``s.kept(n)`` best by
    :func:`rank_key` on `metrics[id]`."""
    by: dict[Hashable, list[str]] = {}
    for rid in candidates:
        by.setdefault(brackets[rid], []).append(rid)
    keep: set[str] = set()
    for ids in by.values():
        ranked = sorted(ids, key=lambda r: rank_key(s.signal, metrics[r], r))
        keep.update(ranked[:s.kept(len(ids))])
    return [r for r in candidates if r in keep]


@dataclasses.dataclass
class HalvingResult:
    """Final records (scalars) of the runs that reached the last rung, every candidate's
    metrics at every rung it reached ``{run_id: {epoch: metrics}}``, the model-steps trained by
    this call (stored states and records cost nothing) and how many populations were trained."""
    records: list[dict]
    rung_metrics: dict[str, dict[int, dict]]
    model_steps: int
    populations: int
    seconds: float


def _bucket(n: int) -> int:
    """Population size trained for `n` runs: a power of two up to 64, then a multiple of 64
    (few compiled shapes, at most 1/8 of the work wasted on padding copies)."""
    return runner.bucket_size(n) if n <= 64 else -(-n // 64) * 64


def _rung_metrics(state: runs.PopulationState) -> list[dict]:
    x_all, y_all = data.load(state.configs[0]["dataset"])
    m = train.evaluate(state.pop.params, x_all, y_all)
    div = np.asarray(state.pop.diverged)
    return [{"accuracy": float(m["accuracy"][i]), "loss": float(m["loss"][i]), "diverged": bool(div[i])}
            for i in range(len(state.ids))]


def run_halving(configs: Sequence[Mapping[str, Any]], store_path: str, s: HalvingSettings,
                bracket: Callable[[dict], Hashable] = lambda c: 0, log: Log = print,
                after_population: Callable[[int, int], None] | None = None,
                allow_numeric_path_change: bool = False) -> HalvingResult:
    """Successive halving over `configs` (all with ``epochs == s.rungs[-1]``), ranking within
    ``bracket(config)``; everything read from and written to the store at `store_path`.
    A store of another numeric path is refused (``numeric path: ...``) unless
    `allow_numeric_path_change` (then the records written are marked, as the sweep runner does).

    `after_population(rung_epoch, runs)` is called after each population is stored (tests
    simulate a kill by raising there)."""
    plan = plan_lib.Plan(configs)
    cfg_of = dict(zip(plan.ids, plan.configs))
    for c in plan.configs:
        if int(c["epochs"]) != s.rungs[-1]:
            raise ValueError(f"rungs: the last rung must be the runs' epochs ({c['epochs']}), got {s.rungs[-1]}")
        if not runs.resumable(c["method"]):
            raise ValueError(f"method {c['method']!r} cannot be trained in prefixes")
    brackets = {rid: bracket(c) for rid, c in cfg_of.items()}
    _, differs = runner.check_numeric_path(store_path, allow_change=allow_numeric_path_change)
    t0, steps, pops = time.perf_counter(), 0, 0
    alive = list(plan.ids)
    history: dict[str, dict[int, dict]] = {rid: {} for rid in alive}
    final: dict[str, dict] = {}
    with Store(store_path) as st:
        here = numeric_path_lib.store_path()
        if numeric_path_lib.differences(st.claim_numeric_path(here), here) and not allow_numeric_path_change:
            raise ValueError(f"numeric path: store {store_path} was written on another numeric path")
        differs = differs or bool(numeric_path_lib.differences(st.numeric_path(), here))
        for k, rung in enumerate(s.rungs):
            last = k == len(s.rungs) - 1
            stored = store_lib.partial_metrics(st, alive)
            for (rid, ep), m in stored.items():
                if ep in s.rungs:
                    history[rid][ep] = m
            done = st.done_ids(alive) if last else {r for r in alive if rung in history[r]}
            todo = [r for r in alive if r not in done]
            # each run restarts from its latest stored earlier rung
            start = {r: max([0] + [e for e in s.rungs[:k] if e in history[r]]) for r in todo}
            groups: dict[tuple, list[str]] = {}
            for r in todo:
                groups.setdefault((start[r], runs.program_key(cfg_of[r])), []).append(r)
            n_pops = sum(math.ceil(len(g) / s.population_size) for g in groups.values())
            if todo:
                log(f"halving: rung {rung} epochs: {len(alive)} runs, {len(done)} stored, "
                    f"{len(todo)} to train in {n_pops} populations")
            for (ep0, _), ids in groups.items():
                for i in range(0, len(ids), s.population_size):
                    part = ids[i:i + s.population_size]
                    padded = runner.pad_configs([cfg_of[r] for r in part], _bucket(len(part)))
                    pad_ids = part + [part[-1]] * (len(padded) - len(part))
                    if ep0 == 0:
                        state = runs.prepare_population(padded, s.chunk_steps)
                    else:
                        saved = store_lib.read_partials(st, part, ep0)
                        leaves = [np.stack(a) for a in zip(*[saved[r] for r in pad_ids])]
                        state = runs.restore_population(padded, leaves, ep0, chunk_steps=s.chunk_steps)
                    state = runs.advance_population(state, rung)
                    n = len(part)
                    if last:
                        recs = runs.finish_population(state)[:n]
                        for rec in recs:
                            rec["halving"] = {"rungs": list(s.rungs), "passed": list(s.rungs[:-1]),
                                              "keep": float(s.keep), "signal": s.signal}
                        st.write_records(runner._with_numeric_path(recs, differs))
                    else:
                        ms = _rung_metrics(state)[:n]
                        host = runs.population_leaves(state)
                        store_lib.write_partials(st, [(r, rung, m, [a[j] for a in host])
                                                      for j, (r, m) in enumerate(zip(part, ms))])
                        for r, m in zip(part, ms):
                            history[r][rung] = m
                    steps += n * (rung - ep0) * state.tcfg.steps_per_epoch(len(data.load(padded[0]["dataset"])[0]))
                    pops += 1
                    if after_population is not None:
                        after_population(rung, n)
            if last:
                for rec in st.records(alive):
                    final[rec["run_id"]] = rec
                    history[rec["run_id"]][rung] = {"accuracy": rec["accuracy"], "loss": rec["loss"],
                                                    "diverged": rec["diverged"]}
            else:
                alive = select(alive, {r: history[r][rung] for r in alive}, brackets, s)
    return HalvingResult([final[r] for r in alive if r in final], history, steps, pops,
                         time.perf_counter() - t0)


# ----------------------------------------------------------------------------- analysis

def frontier(records: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The Pareto frontier of (model nnz, accuracy) over finished, non-diverged records: for
    each nnz whose best accuracy beats every sparser record's, that best record's
    ``{"model_nnz", "accuracy", "run_id"}``, ascending nnz (ties at one nnz: lowest run id)."""
    best: dict[int, tuple[float, str]] = {}
    for r in records:
        acc = r.get("accuracy")
        if r.get("diverged") or acc is None or not math.isfinite(float(acc)):
            continue
        n, key = int(r["model_nnz"]), (float(acc), r["run_id"])
        if n not in best or (key[0], _neg(key[1])) > (best[n][0], _neg(best[n][1])):
            best[n] = key
    out, top = [], -math.inf
    for n in sorted(best):
        acc, rid = best[n]
        if acc > top:
            out.append({"model_nnz": n, "accuracy": acc, "run_id": rid})
            top = acc
    return out


def _neg(run_id: str) -> tuple:
    """Order so that a smaller run id compares larger (ties go to the lowest id)."""
    return tuple(-ord(ch) for ch in run_id)


def sparsest_reaching(records: Sequence[Mapping[str, Any]], target: float) -> dict | None:
    """The record with the fewest model nnz whose accuracy exceeds `target` (strictly, as the
    paper's search); among those the most accurate (then lowest run id). None if none does."""
    from sparsejax.config import reaches
    ok = [r for r in records if not r.get("diverged") and r.get("accuracy") is not None
          and reaches(float(r["accuracy"]), target)]
    if not ok:
        return None
    return min(ok, key=lambda r: (int(r["model_nnz"]), -float(r["accuracy"]), r["run_id"]))


def would_cut(rung_metrics: Mapping[str, Mapping[int, Mapping[str, Any]]], brackets: Mapping[str, Hashable],
              winner: str, s: HalvingSettings) -> int | None:
    """On a search trained exhaustively (every candidate's metrics at every rung), the rung at
    which halving with settings `s` would have cut `winner`, or None if it survives to the end.
    The simulation is exactly :func:`select` applied rung after rung."""
    alive = [r for r in rung_metrics if brackets[r] == brackets[winner]]
    for rung in s.rungs[:-1]:
        alive = select(alive, {r: rung_metrics[r][rung] for r in alive}, brackets, s)
        if winner not in alive:
            return rung
    return None


def audit(rung_metrics: Mapping[str, Mapping[int, Mapping[str, Any]]], brackets: Mapping[str, Hashable],
          rungs: Sequence[int], keeps: Sequence[float], signals: Sequence[str] = SIGNALS) -> list[dict]:
    """How often halving would have cut each bracket's final winner (its best run at the last
    rung, by accuracy), on a search trained exhaustively (every run has metrics at every rung):
    one row per (signal, keep) with ``{"signal", "keep", "brackets", "cut_at": {rung: n},
    "kept": n}``."""
    final = rungs[-1]
    full = {r: m for r, m in rung_metrics.items() if all(e in m for e in rungs)}
    by: dict[Hashable, list[str]] = {}
    for r in full:
        by.setdefault(brackets[r], []).append(r)
    winners = [min(ids, key=lambda r: rank_key("accuracy", full[r][final], r)) for ids in by.values()]
    out = []
    for signal in signals:
        for keep in keeps:
            s = HalvingSettings(rungs=tuple(rungs), keep=keep, signal=signal)
            cuts = [would_cut(full, brackets, w, s) for w in winners]
            out.append({"signal": signal, "keep": float(keep), "brackets": len(winners),
                        "cut_at": {int(e): sum(c == e for c in cuts) for e in rungs[:-1]},
                        "kept": sum(c is None for c in cuts)})
    return out


def final_top_ranks(rung_metrics: Mapping[str, Mapping[int, Mapping[str, Any]]], brackets: Mapping[str, Hashable],
                    rungs: Sequence[int], top: int = 5, signal: str = "accuracy") -> dict[Hashable, list[dict]]:
    """On an exhaustive search: for each bracket, its `top` best runs at the last rung (by
    accuracy) with their 1-based rank by `signal` at every earlier rung and the bracket size:
    ``{bracket: [{"run_id", "final": accuracy, "ranks": {rung: rank}, "n": size}, ...]}``. A run
    of rank q survives a rung with keep fraction f iff q <= ceil(f · n) (one rung)."""
    final = rungs[-1]
    full = {r: m for r, m in rung_metrics.items() if all(e in m for e in rungs)}
    by: dict[Hashable, list[str]] = {}
    for r in full:
        by.setdefault(brackets[r], []).append(r)
    out = {}
    for b, ids in by.items():
        order = {e: {r: i + 1 for i, r in enumerate(sorted(ids, key=lambda r: rank_key(signal, full[r][e], r)))}
                 for e in rungs[:-1]}
        best = sorted(ids, key=lambda r: rank_key("accuracy", full[r][final], r))[:top]
        out[b] = [{"run_id": r, "final": full[r][final].get("accuracy"), "n": len(ids),
                   "ranks": {e: order[e][r] for e in rungs[:-1]}} for r in best]
    return out
