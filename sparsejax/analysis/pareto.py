"""Pareto frontiers of accuracy versus nonzeros, and the store as a flat table of runs.

The paper's Figures 8, 11, 13, 16 and 17 draw, per method, the *upper-left* frontier of
(model nnz, accuracy): the sparsest model for every accuracy level. Its headline numbers are "the
first nnz reaching 95 % / 99.5 %". Both are computed here on plain arrays, so they work on any
table; :func:`load_table` turns a sweep store into such a table (one dict per run, every config
field resolved, connectivity metrics from the record's ``metrics`` merged in).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sparsejax import mlp
from sparsejax.sweep import identity
from sparsejax.sweep.store import Store

SEARCH_KINDS = ("structured", "search")
# Connectivity fields a record's metrics may carry (sparsejax.connectivity.connectivity_stats).


def _finite_points(nnz: Sequence[float], acc: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nnz_P = np.asarray(nnz, np.float64).reshape(-1)
    acc_P = np.asarray(acc, np.float64).reshape(-1)
    if nnz_P.shape != acc_P.shape:
        raise ValueError(f"nnz and acc must have the same length, got {nnz_P.shape} and {acc_P.shape}")
    ok_P = np.isfinite(nnz_P) & np.isfinite(acc_P)
    return nnz_P, acc_P, ok_P


def pareto_frontier(nnz: Sequence[float], acc: Sequence[float]) -> np.ndarray:
    """Indices of the upper-left frontier, sorted by nnz (then by index).

    A point is on the frontier iff no other point has nnz <= and acc >= with at least one of the
    two strict. So identical points are all kept (neither dominates the other), and of several
    points with the same nnz only those with the highest accuracy survive. Points with a
    non-finite nnz or accuracy (diverged runs) are never on it.
    """
    nnz_P, acc_P, ok_P = _finite_points(nnz, acc)
    idx = np.flatnonzero(ok_P)
    if idx.size == 0:
        return np.zeros((0,), np.int64)
    order = idx[np.lexsort((idx, -acc_P[idx], nnz_P[idx]))]  # nnz up, acc down, index up
    keep, best_below = [], -np.inf  # best accuracy among strictly smaller nnz
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and nnz_P[order[j]] == nnz_P[order[i]]:
            j += 1
        group = order[i:j]
        top = acc_P[group[0]]
        if top > best_below:
            keep.extend(int(g) for g in group if acc_P[g] == top)
            best_below = top
        i = j
    return np.asarray(keep, np.int64)


def first_nnz_reaching(nnz: Sequence[float], acc: Sequence[float], target: float) -> float | None:
    """The smallest nnz whose accuracy exceeds `target` (strictly, as ``config.reaches`` and the
    paper's search; same scale as `acc`), or None."""
    nnz_P, acc_P, ok_P = _finite_points(nnz, acc)
    hit = ok_P & (acc_P > target)
    if not hit.any():
        return None
    best = float(np.min(nnz_P[hit]))
    return int(best) if best.is_integer() else best


def best_per_nnz(nnz: Sequence[float], acc: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(unique nnz ascending, best accuracy at each): the paper's per-nnz scatter (Figs 20–24)."""
    nnz_P, acc_P, ok_P = _finite_points(nnz, acc)
    if not ok_P.any():
        return np.zeros((0,)), np.zeros((0,))
    uniq, inv = np.unique(nnz_P[ok_P], return_inverse=True)
    best = np.full(len(uniq), -np.inf)
    np.maximum.at(best, inv, acc_P[ok_P])
    return uniq, best


# ----------------------------------------------------------------------------- the table


def init_name(init: str | None) -> str:
    """A short label of an init source: ``random`` or the init file's stem (``bench995_init``)."""
    if not init or init == "random":
        return "random"
    return os.path.splitext(os.path.basename(str(init)))[0] or str(init)


def run_kind(method: str) -> str:
    """``structured`` / ``search`` (the combinatorial search), ``dense``, or ``pruning``."""
    if method in SEARCH_KINDS or method == "dense":
        return method
    return "pruning"


def trained_width(cfg: Mapping[str, Any]) -> int | None:
    """The width a pruning run trained at (``optimal_width`` if set), None if widths differ."""
    if cfg.get("optimal_width") is not None:
        return int(cfg["optimal_width"])
    widths = [int(w) for w in (cfg.get("widths") or [])]
    return widths[0] if widths and len(set(widths)) == 1 else None


def series_name(method: str, method_params: Mapping[str, Any] | None) -> str:
    """A method's series in tables and figures: its registry name, with the parameters that
    differ from its defaults in brackets (``sfp[mean_replace=True]``), so a variant is never
    pooled with the defaults."""
    if not method_params:
        return str(method)
    return f"{method}[{','.join(f'{k}={method_params[k]}' for k in sorted(method_params))}]"


def series_parts(series: str) -> tuple[str, str]:
    """The inverse of :func:`series_name`: (registry name, the bracketed parameters without
    brackets; "" for the defaults)."""
    method, _, params = str(series).partition("[")
    return method, params[:-1] if params.endswith("]") else params


def table_row(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One record (without blobs) as a flat row.

    Keys: ``run_id``, ``status``, every resolved config field (``method``, ``widths``, ``budget``,
    ``lr``, ``schedule``, ``init``, ``structure``, ``mask_index``, ...), the metric columns
    (``accuracy``, ``loss``, ``weight_nnz``, ``model_nnz``, ``diverged``, ...), then the record's
    ``metrics`` (a nested ``connectivity`` dict is merged flat), and derived fields ``kind``,
    ``width``, ``init_name`` and, for phase-1 runs, ``structured_nnz``. ``method`` is the
    series (:func:`series_name`: a variant's parameters in brackets), ``method_name`` the
    registry name. Fields already set are
    never overwritten by metrics.
    """
    cfg = identity.resolve(rec.get("config") or {})
    row: dict[str, Any] = {"run_id": rec.get("run_id"), "status": rec.get("status", "done")}
    row.update(cfg)
    for key in ("accuracy", "loss", "weight_nnz", "model_nnz", "diverged", "train_seconds"):
        row[key] = rec.get(key)
    metrics = dict(rec.get("metrics") or {})
    nested = metrics.pop("connectivity", None)
    for source in (metrics, nested if isinstance(nested, Mapping) else {}):
        for key, value in source.items():
            row.setdefault(key, value)
    row["kind"] = run_kind(str(cfg["method"]))
    row["method_name"] = str(cfg["method"])  # the registry name; "method" names the series
    row["method"] = series_name(cfg["method"], cfg.get("method_params"))
    row["width"] = trained_width(cfg)
    row["init_name"] = init_name(cfg.get("init"))
    if row["kind"] == "structured" and cfg.get("structure") is not None:
        row["structured_nnz"] = mlp.structured_nnz(cfg["structure"])
    return row


def load_table(store_path: str | os.PathLike) -> list[dict]:
    """Every run of the store at `store_path` as a flat row (see :func:`table_row`).
    Raises ``StoreError`` for a path that is not a store (nothing is created)."""
    with Store(store_path, create=False) as store:
        return [table_row(rec) for rec in store.iter_records(with_blobs=False)]


def select(rows: Iterable[Mapping[str, Any]], **equal: Any) -> list[dict]:
    """Rows whose fields equal every given value (a tuple/list value matches as a list)."""
    def norm(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v
    want = {k: norm(v) for k, v in equal.items()}
    return [dict(r) for r in rows if all(norm(r.get(k)) == v for k, v in want.items())]


def column(rows: Sequence[Mapping[str, Any]], key: str, diverged_nan: bool = False) -> np.ndarray:
    """One numeric field as float64 (None → NaN; with `diverged_nan`, diverged runs → NaN)."""
    out = np.full((len(rows),), np.nan)
    for i, r in enumerate(rows):
        v = r.get(key)
        if v is None or (diverged_nan and r.get("diverged")):
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            pass
    return out


def _connectivity_of(blobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Connectivity stats (plain Python values) of same-shaped networks given as store blobs."""
    import jax  # deferred: loading a table needs no JAX
    from sparsejax import connectivity
    from sparsejax.analysis.after_training import as_layers

    params = [as_layers(b["params"]) for b in blobs]
    masks = [as_layers(b["masks"]) for b in blobs]
    pad = (1 << max(0, len(blobs) - 1).bit_length()) - len(blobs)  # few sizes: few compiles
    params, masks = params + params[-1:] * pad, masks + masks[-1:] * pad
    stack = lambda trees: jax.tree.map(lambda *a: np.stack(a).astype(np.float32), *trees)
    stats = connectivity.connectivity_stats_population(stack(params), stack(masks))
    return connectivity.stats_records(stats)[:len(blobs)]


def add_connectivity(rows: list[dict], store_path: str | os.PathLike, kinds: Sequence[str] = ("pruning", "dense"),
                     batch: int = 1024) -> int:
    """Fill the connectivity fields (direct/effective/folded counts, active units, layer
    collapse, paths) of the rows of `kinds` that lack ``effective_model_nnz``, from the stored
    masks and params; returns how many rows were filled. Rows without blobs are left alone."""
    todo = [r for r in rows if r.get("kind") in kinds and r.get("effective_model_nnz") is None]
    if not todo:
        return 0
    by_id = {r["run_id"]: r for r in todo}
    filled = 0
    with Store(store_path, create=False) as store:
        ids = list(by_id)
        for start in range(0, len(ids), batch):
            groups: dict[tuple, list[dict]] = {}
            for rec in store.records(ids[start:start + batch], with_blobs=True):
                if rec.get("params") is None or rec.get("masks") is None:
                    continue
                shape = tuple(sorted((k, np.shape(v)) for k, v in rec["params"].items()))
                groups.setdefault(shape, []).append(rec)
            for recs in groups.values():
                for rec, stats in zip(recs, _connectivity_of(recs)):
                    row = by_id[rec["run_id"]]
                    for key, value in stats.items():
                        if row.get(key) is None:
                            row[key] = value
                    filled += 1
    return filled


# ----------------------------------------------------------------------------- the finding


def sparsest_above(rows: Iterable[Mapping[str, Any]], target: float) -> Mapping[str, Any] | None:
    """The row with the fewest model nnz whose accuracy exceeds ``target`` (strictly, as the
    search's selection does; diverged runs never count), ties to the higher accuracy."""
    ok = [r for r in rows if not r.get("diverged") and r.get("accuracy") is not None
          and np.isfinite(r["accuracy"]) and r["accuracy"] > target and r.get("model_nnz") is not None]
    return min(ok, key=lambda r: (r["model_nnz"], -r["accuracy"], r.get("run_id", ""))) if ok else None


def finding(rows: Sequence[Mapping[str, Any]], target: float, init: str = "random") -> dict[str, Any]:
    """The paper's claim on a table of runs: the sparsest search model above ``target`` (phase 1's
    structured models and phase 2's masks alike) next to the sparsest model of every pruning
    method above it, and a sentence saying by how much the search wins (or does not).

    Returns ``{"target", "search": row | None, "methods": {method: row | None}, "runs": {method:
    count}, "best_pruned": row | None, "sentence": str}``.
    """
    mine = [r for r in rows if r.get("init_name", "random") == init]
    search = sparsest_above([r for r in mine if r.get("kind") in SEARCH_KINDS], target)
    prune = [r for r in mine if r.get("kind") == "pruning"]
    methods = sorted({r["method"] for r in prune})
    per = {m: sparsest_above([r for r in prune if r["method"] == m], target) for m in methods}
    runs = {m: sum(1 for r in prune if r["method"] == m) for m in methods}
    hits = [r for r in per.values() if r is not None]
    best = min(hits, key=lambda r: (r["model_nnz"], -r["accuracy"])) if hits else None
    pct = f"{100 * target:g} %"
    if search is None:
        sentence = f"No search model exceeds {pct} in this store, so it shows no finding yet."
    elif best is None:
        sentence = (f"The search's sparsest model above {pct} has {search['model_nnz']} nonzeros; no pruning "
                    f"method ({len(methods)} tried, {sum(runs.values())} runs) reaches {pct} at all.")
    else:
        d = int(best["model_nnz"]) - int(search["model_nnz"])
        if d > 0:
            sentence = (f"The search's sparsest model above {pct} has {search['model_nnz']} nonzeros, "
                        f"{d} fewer ({100 * d / best['model_nnz']:.0f} % fewer) than the sparsest pruned model "
                        f"above {pct} ({best['model_nnz']}, {best['method']}).")
        elif d == 0:
            sentence = (f"The search and the best pruning method ({best['method']}) tie at {search['model_nnz']} "
                        f"nonzeros above {pct}.")
        else:
            sentence = (f"Here pruning wins: {best['method']} reaches {pct} with {best['model_nnz']} nonzeros, "
                        f"{-d} fewer than the search's {search['model_nnz']}.")
    return {"target": float(target), "search": search, "methods": per, "runs": runs, "best_pruned": best,
            "sentence": sentence}


def sparsest_by_width(rows: Iterable[Mapping[str, Any]], target: float,
                      init: str = "random") -> dict[str, dict[int, Mapping[str, Any] | None]]:
    """The paper's overparameterisation table: per pruning method and trained width, the row of
    :func:`sparsest_above` (None where no run of that width exceeds ``target``). Only widths a
    method has runs at appear; methods and widths ascending."""
    out: dict[str, dict[int, Mapping[str, Any] | None]] = {}
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("kind") == "pruning" and r.get("init_name", "random") == init and r.get("width") is not None:
            groups.setdefault((str(r["method"]), int(r["width"])), []).append(r)
    for (method, width) in sorted(groups):
        out.setdefault(method, {})[width] = sparsest_above(groups[(method, width)], target)
    return out
