"""One self-contained HTML report of a sweep store: every figure it can draw and our headline
numbers next to the paper's (SPEC §9).

:func:`build_report` loads the store as a table (:func:`sparsejax.analysis.pareto.load_table`),
fills connectivity counts from the stored masks and params where the records lack them, writes
every figure of :mod:`sparsejax.viz.figures` (PNG + SVG) into the output folder and then
``report.html``: figures embedded as data-URI PNGs (no network, no other file needed), tables of
headline numbers, the claimed winners (``experiments/winners/*.json``: a table with the command
that retrains each, and points on the Pareto figures next to the paper's bound) and the
training-loss curves of the sparsest runs. Every string that comes from the store or a winners
file is HTML-escaped.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sparsejax import fileio
from sparsejax.analysis import flops as flops_lib
from sparsejax.analysis import pareto
from sparsejax.analysis import winners as winners_lib
from sparsejax.viz import figures

TARGETS = figures.TARGETS
# SPEC §9, by (init, target) / (init, structure); init keys from paper_init().
PAPER_PHASE1 = {("random", 0.95): ((3, 3, 3), 37), ("random", 0.995): ((7, 3, 3), 61),
                ("bench95", 0.95): ((3, 2, 2), 26), ("bench995", 0.995): ((6, 3, 2), 50)}
PAPER_SEARCH = {("random", (3, 3, 3)): (0.95, 30, 0.9604), ("random", (7, 3, 3)): (0.995, 45, 0.9959),
                ("bench995", (6, 3, 2)): (0.995, 38, 0.9970), ("bench95", (3, 2, 2)): (0.95, 26, 0.9647)}
PAPER_FIRST_NNZ = {0.95: {"lth": 44, "synflow": 51, "rigl": 52, "search": 30},
                   0.995: {"gmp": 61, "iter_snip": 78, "rigl": 84, "search": 45}}
PAPER_MATCHES = (2, 18_954)
PAPER_AFTER_TRAINING = ((7, 3, 2), 42)
THEOREM_WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048)

Table = tuple[str, list[str], list[list[Any]]]  # (caption, header, rows)


def paper_init(name: str) -> str | None:
    """The paper's name for an init source: ``random``, ``bench95``, ``bench995`` or None."""
    low = str(name).lower()
    if low == "random":
        return "random"
    if "995" in low:
        return "bench995"
    if "95" in low:
        return "bench95"
    return None


def _pct(acc: float | None) -> str:
    return "—" if acc is None or not np.isfinite(acc) else f"{100 * acc:.2f}%"


def _cfg(c: Sequence[int] | None) -> str:
    return "—" if c is None else "(" + ",".join(str(int(d)) for d in c) + ")"


def _num(v: Any) -> str:
    return "—" if v is None else str(v)


# ----------------------------------------------------------------------------- headline numbers


def phase1_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Phase-1 selections per init and target; the paper's selections without runs here too."""
    out, seen = [], set()
    for init in sorted({r["init_name"] for r in rows if r.get("kind") == "structured"}):
        for t in TARGETS:
            sel = figures.phase1_selection(rows, t, init)
            paper = PAPER_PHASE1.get((paper_init(init), t))
            seen.add((paper_init(init), t))
            out.append([init, f"> {100 * t:g}%", _cfg(sel[0]) if sel else "none", _num(sel[1] if sel else None),
                        _pct(sel[2]) if sel else "—", _cfg(paper[0]) if paper else "—", _num(paper[1] if paper else None)])
    for (init, t), (cfg, nnz) in PAPER_PHASE1.items():
        if (init, t) not in seen:
            out.append([f"{init} (no runs)", f"> {100 * t:g}%", "—", "—", "—", _cfg(cfg), nnz])
    return ("Phase 1: the sparsest configuration whose best accuracy exceeds the target",
            ["init", "target", "ours: config", "ours: structured nnz", "ours: best accuracy",
             "paper: config", "paper: nnz"], out)


def search_winner(runs: Sequence[Mapping[str, Any]], target: float) -> Mapping[str, Any] | None:
    """Phase 2's winner: the fewest model nnz with accuracy > target, then the best accuracy."""
    ok = [r for r in runs if not r.get("diverged") and r.get("accuracy") is not None
          and r.get("model_nnz") is not None and r["accuracy"] > target]
    return min(ok, key=lambda r: (r["model_nnz"], -r["accuracy"])) if ok else None


def search_table(rows: Sequence[Mapping[str, Any]]) -> tuple[Table, list[Mapping[str, Any]]]:
    """Search winners per (init, structure) and target, the paper's next to them (and the
    paper's winners without runs here); also returns the winner rows (for after-training)."""
    groups: dict[tuple, list] = {}
    for r in rows:
        if r.get("kind") == "search" and r.get("structure") is not None:
            groups.setdefault((r["init_name"], tuple(int(d) for d in r["structure"])), []).append(r)
    out, winners, seen = [], [], set()
    for (init, structure), runs in sorted(groups.items()):
        paper = PAPER_SEARCH.get((paper_init(init), structure))
        seen.add((paper_init(init), structure))
        for t in TARGETS:
            win = search_winner(runs, t)
            if win is not None:
                winners.append({**win, "_target": t})
            mine = paper if paper and paper[0] == t else None
            out.append([init, _cfg(structure), f"> {100 * t:g}%", len(runs),
                        _num(win["model_nnz"] if win else None), _pct(win["accuracy"] if win else None),
                        _num(mine[1] if mine else None), _pct(mine[2] if mine else None)])
    for (init, structure), (t, nnz, acc) in PAPER_SEARCH.items():
        if (init, structure) not in seen:
            out.append([f"{init} (no runs)", _cfg(structure), f"> {100 * t:g}%", 0, "—", "—", nnz, _pct(acc)])
    return (("Phase 2: the sparsest model exceeding the target",
             ["init", "structure", "target", "runs", "ours: nnz", "ours: accuracy", "paper: nnz", "paper: accuracy"],
             out), winners)


def first_nnz_table(rows: Sequence[Mapping[str, Any]], width: int = 16, init: str = "random") -> Table:
    """Per method, the first model nnz whose accuracy reaches each target (width 16, random init)."""
    prune = [r for r in rows if r.get("kind") == "pruning" and r.get("width") == width and r.get("init_name") == init]
    search = [r for r in rows if r.get("kind") in pareto.SEARCH_KINDS and r.get("init_name") == init]
    out = []
    paper_methods = {m for t in TARGETS for m in PAPER_FIRST_NNZ[t] if m != "search"}
    methods = figures.ordered_methods({r["method"] for r in prune} | paper_methods)
    groups = [(m, [r for r in prune if r["method"] == m]) for m in methods]
    groups.append(("search", search))
    for m, runs in groups:
        x = pareto.column(runs, "model_nnz", diverged_nan=True)
        y = pareto.column(runs, "accuracy", diverged_nan=True)
        cells = [figures.SEARCH_LABEL + " (search)" if m == "search" else flops_lib.METHOD_LABELS.get(m, m), len(runs)]
        for t in TARGETS:
            cells += [_num(pareto.first_nnz_reaching(x, y, t) if runs else None), _num(PAPER_FIRST_NNZ[t].get(m))]
        out.append(cells)
    return (f"First model nnz reaching the target (width {width}, {init} init; accuracy ≥ target)",
            ["method", "runs", "ours ≥ 95%", "paper ≥ 95%", "ours ≥ 99.5%", "paper ≥ 99.5%"], out)


def matches_table(rows: Sequence[Mapping[str, Any]], init: str = "random") -> Table:
    """Pruning runs that match or beat the search (at ≥ 95 % and at ≥ 99.5 %)."""
    search = [r for r in rows if r.get("kind") in pareto.SEARCH_KINDS and r.get("init_name") == init]
    prune = [r for r in rows if r.get("kind") == "pruning" and r.get("init_name") == init and not r.get("diverged")
             and r.get("accuracy") is not None and r.get("model_nnz") is not None]
    bars = {}
    for t in TARGETS:
        ours = pareto.first_nnz_reaching(pareto.column(search, "model_nnz", True), pareto.column(search, "accuracy", True), t) if search else None
        bars[t] = (ours, "ours") if ours is not None else (PAPER_FIRST_NNZ[t]["search"], "paper")
    hits = [r for r in prune if any(r["accuracy"] > t and r["model_nnz"] <= bars[t][0] for t in TARGETS)]
    out = [[flops_lib.METHOD_LABELS.get(r["method"], r["method"]), _num(r.get("width")), r["model_nnz"], _pct(r["accuracy"]),
            r["run_id"]] for r in sorted(hits, key=lambda r: (r["model_nnz"], -r["accuracy"]))[:20]]
    caption = (f"Pruning runs matching the search ({init} init): {len(hits)} of {len(prune)} "
               f"(paper: {PAPER_MATCHES[0]} of {PAPER_MATCHES[1]:,}); bars: ≥ 95% at ≤ {bars[0.95][0]} nnz "
               f"({bars[0.95][1]} search), ≥ 99.5% at ≤ {bars[0.995][0]} nnz ({bars[0.995][1]} search)")
    return caption, ["method", "width", "model nnz", "accuracy", "run id"], out


def after_training_table(store_path: str, winners: Sequence[Mapping[str, Any]]) -> Table:
    """Magnitude pruning after training of the 99.5 % search winners (paper: (7,3,2), 42 nnz)."""
    from sparsejax import data
    from sparsejax.analysis.after_training import smallest_nnz_after_training
    from sparsejax.sweep.store import Store

    out = []
    with Store(store_path, create=False) as store:
        for win in (w for w in winners if w["_target"] == 0.995):
            rec = store.get(win["run_id"])
            if rec is None or rec.get("params") is None:
                continue
            x, y = data.load(win.get("dataset") or "cubist_spiral")
            res = smallest_nnz_after_training(rec["params"], rec.get("masks"), x, y, 0.995)
            bench995 = paper_init(win["init_name"]) == "random" and tuple(win["structure"]) == (7, 3, 3)
            paper = PAPER_AFTER_TRAINING if bench995 else None
            out.append([win["init_name"], _cfg(win["structure"]), win["model_nnz"], _pct(win["accuracy"]),
                        _cfg(res.active_units), _num(res.nnz), _pct(res.accuracy),
                        _cfg(paper[0]) if paper else "—", _num(paper[1] if paper else None)])
    if not out:
        out.append(["random (no 99.5% winner with params)", "—", "—", "—", "—", "—", "—",
                    _cfg(PAPER_AFTER_TRAINING[0]), PAPER_AFTER_TRAINING[1]])
    return ("Pruning the 99.5% search winner after training (global magnitude, no retraining; "
            "the smallest model nnz keeping ≥ 99.5%)",
            ["init", "structure", "trained nnz", "trained accuracy", "ours: config after pruning", "ours: nnz",
             "ours: accuracy", "paper: config", "paper: nnz"], out)


def flops_tables(rows: Sequence[Mapping[str, Any]]) -> tuple[Table, dict, dict]:
    ours = flops_lib.flops_table()
    fwd_bwd = flops_lib.flops_table(convention=flops_lib.FWD_BWD)
    measured_nnz = flops_lib.final_model_nnz_from_rows(rows)
    measured = flops_lib.flops_table(final_model_nnz=measured_nnz) if measured_nnz else {}
    out = []
    for m in flops_lib.TABLE1_METHODS:
        paper = flops_lib.PAPER_TABLE1[m]
        out.append([flops_lib.METHOD_LABELS[m], f"{paper:.1e}", f"{ours[m]:.2e}", f"{ours[m] / paper:.2f}",
                    f"{measured[m]:.2e}" if m in measured_nnz else "—",
                    f"{measured_nnz[m]:g}" if m in measured_nnz else "—", f"{fwd_bwd[m]:.2e}"])
    return (("Table 1: FLOPs to prune and train width 16 with 55 nonzero weights (model-tools convention: "
             "1 FLOP per nonzero parameter per sample, forward passes; see sparsejax.analysis.flops)",
             ["method", "paper", "ours", "ours / paper", "ours, measured nnz", "measured model nnz",
              "ours, fwd+bwd (2 FLOPs/param, backward 2×)"], out),
            ours, {m: measured[m] for m in measured_nnz if m in measured})


def summary_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    counts: dict[tuple, list[int]] = {}
    for r in rows:
        key = (r.get("kind"), r.get("method"), r.get("init_name"))
        c = counts.setdefault(key, [0, 0])
        c[0] += 1
        c[1] += bool(r.get("diverged"))
    out = [[k, m, i, n, d] for (k, m, i), (n, d) in sorted(counts.items(), key=lambda kv: tuple(map(str, kv[0])))]
    return "Runs in the store", ["kind", "method", "init", "runs", "diverged"], out


def paper_bounds(inits: Sequence[str]) -> dict[str, list[figures.Bound]]:
    """Per init name, the paper's search results for its paper init (the bound a claimed winner
    beats) as Pareto-figure points."""
    out: dict[str, list[figures.Bound]] = {}
    for init in inits:
        out[init] = [(nnz, acc, f"paper {_cfg(structure)}: {nnz}")
                     for (pinit, structure), (_, nnz, acc) in PAPER_SEARCH.items() if pinit == paper_init(init)]
    return out


def winners_table(winners: Sequence[winners_lib.Winner], stored: set[str]) -> Table:
    """The claimed winners next to the paper's bound (its search's sparsest model above the same
    target, same init kind): how sparse, how accurate, and the commands that retrain and view them."""
    out = []
    for w in winners:
        bound = [(nnz, acc) for (init, _), (t, nnz, acc) in PAPER_SEARCH.items()
                 if init == paper_init(w.init_name) and t == w.target]
        out.append([w.name, w.method_label(), f"> {100 * w.target:g}%", w.model_nnz, _pct(w.accuracy),
                    f"{bound[0][0]} nnz, {_pct(bound[0][1])}" if bound else "—", w.run_id,
                    "yes" if w.run_id in stored else "no", w.retrain_command(), w.view_command()])
    return ("Claimed winners (experiments/winners/*.json)",
            ["name", "method / search", "target", "model nnz", "accuracy", "paper's bound", "run id", "in this store",
             "retrain", "view its network"], out)


def winners_html(winners: Sequence[winners_lib.Winner], problems: Sequence[str], stored: set[str]) -> str:
    """The winners section: the table (or a note that there is none) and one line per winner
    file that could not be used."""
    parts = ["<h2>Claimed winners</h2>"]
    if winners:
        parts.append(render_table(winners_table(winners, stored)))
    else:
        parts.append("<p>No winner could be read.</p>")
    parts += [f'<p class="problem">{_e(p)}</p>' for p in problems]
    return "\n".join(parts)


def sparsest_runs(rows: Sequence[Mapping[str, Any]], target: float, init: str = "random") -> dict[str, Mapping[str, Any]]:
    """Per pruning method (any width) and for the search (key ``search``), the sparsest run of
    `init` above `target` (most accurate among equally sparse, then lowest run id)."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        if r.get("init_name") != init or r.get("diverged") or r.get("accuracy") is None or r.get("model_nnz") is None:
            continue
        key = "search" if r.get("kind") in pareto.SEARCH_KINDS else r["method"] if r.get("kind") == "pruning" else None
        if key is None or not r["accuracy"] > target:
            continue
        rank = (r["model_nnz"], -r["accuracy"], str(r["run_id"]))
        if key not in out or rank < (out[key]["model_nnz"], -out[key]["accuracy"], str(out[key]["run_id"])):
            out[key] = r
    return out


def loss_curve_panels(store_path: str, rows: Sequence[Mapping[str, Any]],
                      winners: Sequence[winners_lib.Winner] = ()) -> dict[str, list[figures.Curve]]:
    """Per target, the stored training-loss curves of the sparsest run above it of every method
    and of the search (random init), and of the winners of that target stored here. Runs stored
    before curves were kept have none and are left out."""
    from sparsejax.sweep.store import Store

    panels: dict[str, list[figures.Curve]] = {}
    with Store(store_path, create=False) as store:
        for t in TARGETS:
            picks = sparsest_runs(rows, t)
            curves = []
            for key in figures.ordered_methods([k for k in picks if k != "search"]) + ["search"]:
                r = picks.get(key)
                rec = store.get(r["run_id"]) if r is not None else None
                if rec is not None and rec.get("loss_curve") is not None:
                    who = f"{figures.SEARCH_LABEL} (search)" if key == "search" else flops_lib.METHOD_LABELS.get(key, key)
                    color = figures.SEARCH_COLOR if key == "search" else figures.method_color(key)
                    curves.append((f"{who}: {r['model_nnz']} nnz, {_pct(r['accuracy'])}", rec["loss_curve"], color))
            for w in winners:
                rec = store.get(w.run_id) if w.target == t else None
                if rec is not None and rec.get("loss_curve") is not None:
                    curves.append((f"winner {w.name}: {w.model_nnz} nnz", rec["loss_curve"], figures.WINNER_COLOR))
            panels[f"sparsest run > {100 * t:g}% (random init)"] = curves
    return panels


# ----------------------------------------------------------------------------- HTML


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;
     padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f4f4f4}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}code{background:#f4f4f4;padding:0 .2em}
.finding{background:#f3f8ff;border:1px solid #b6d0f0;border-radius:6px;padding:.2em 1em .6em}
.finding h2{margin-top:.6em}
.problem{color:#a00}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_table(table: Table) -> str:
    caption, header, body = table
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in body)
    if not body:
        rows = f'<tr><td colspan="{len(header)}">no runs of this kind in the store</td></tr>'
    return f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_figure(title: str, png_path: str, svg_path: str | None) -> str:
    with open(png_path, "rb") as fh:
        data = base64.b64encode(fh.read()).decode("ascii")
    link = f' (<a href="{_e(os.path.basename(svg_path))}">SVG</a>)' if svg_path else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(title)}">'
            f"<figcaption>{_e(title)}{link}</figcaption></figure>")


def finding_html(found: Mapping[str, Any], links: Sequence[tuple[str, str]] = (), notes: Sequence[str] = ()) -> str:
    """The finding section that opens the report: the sparsest search model above the target
    next to every pruning method's sparsest one (``pareto.finding``), the sentence, links
    (``(text, href)``, e.g. the side-by-side viewer page) and free-text notes (HTML-escaped)."""
    t = found["target"]
    rows = []
    s = found["search"]
    rows.append(["combinatorial search (phase 1 + 2)", *(_row_cells(s))])
    for m, r in sorted(found["methods"].items(), key=lambda kv: (kv[1] is None, kv[1]["model_nnz"] if kv[1] else 0)):
        rows.append([f"{flops_lib.METHOD_LABELS.get(m, m)} ({found['runs'][m]} runs)", *_row_cells(r)])
    table = (f"Sparsest model above {100 * t:g} % accuracy", ["who", "model nnz", "accuracy", "run"], rows)
    parts = ['<section class="finding"><h2>The finding</h2>', f"<p><b>{_e(found['sentence'])}</b></p>",
             render_table(table)]
    if links:
        parts.append("<p>" + " · ".join(f'<a href="{_e(href)}">{_e(text)}</a>' for text, href in links) + "</p>")
    parts += [f"<p>{_e(n)}</p>" for n in notes]
    parts.append("</section>")
    return "\n".join(parts)


def _row_cells(r: Mapping[str, Any] | None) -> list[str]:
    if r is None:
        return ["—", "none above the target", ""]
    return [str(r["model_nnz"]), _pct(r["accuracy"]), str(r.get("run_id", ""))]


def render_html(store_path: str, n_runs: int, tables: Sequence[Table], figs: Sequence[tuple[str, list[str]]],
                lead_html: str = "", winners_section: str = "") -> str:
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>sparsejax report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Sparsest models elude pruning: reproduction report</h1>",
             f"<p>Store <code>{_e(store_path)}</code>: {n_runs} runs. Generated {_e(when)}. "
             "Accuracies are on the full training set (SPEC §2); nnz are model nnz (weights + biases).</p>",
             lead_html,
             "<h2>Headline numbers: ours next to the paper's</h2>"]
    parts += [render_table(t) for t in tables]
    parts.append(winners_section)
    parts.append("<h2>Figures</h2>")
    if not figs:
        parts.append("<p>No figure could be drawn from this store.</p>")
    for title, paths in figs:
        png = next((p for p in paths if p.endswith(".png")), None)
        svg = next((p for p in paths if p.endswith(".svg")), None)
        if png:
            parts.append(render_figure(title, png, svg))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def numeric_path_table(store_path: str) -> Table:
    """What computed the numbers: the store's numeric path and the runs of each path found in
    its records (backend, kernel, library and code versions, compaction, CPU; see
    ``sparsejax.sweep.numeric_path``)."""
    from sparsejax.sweep.store import Store, numeric_paths
    with Store(store_path, create=False) as st:
        paths = numeric_paths(st)
    keys = ("backend", "kernel", "compaction", "jax", "jaxlib", "numpy", "code", "cpu_isa", "cpu_model")
    fmt = lambda p: [("—" if p is None else str(p.get(k, "—"))) for k in keys]
    rows = [["store meta", *fmt(paths["meta"])]]
    rows += [[f"{g['runs']} runs" + (" (differs from the store's)" if (g["numeric_path"] or {}).get("differs_from_store")
                                     else ""), *fmt(g["numeric_path"])] for g in paths["records"]]
    return ("Numeric path: what computed these numbers (records with no path were written before "
            "paths were recorded)", ["", *keys], rows)


def _group_paths(paths: Sequence[str]) -> list[list[str]]:
    """Paths grouped by stem ([png, svg] per figure), in order."""
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(os.path.splitext(p)[0], []).append(p)
    return list(groups.values())


def build_report(store_path: str, out_dir: str, mc_trials: int = 2000, connectivity: bool = True,
                 after_training: bool = True, theorem_widths: Sequence[int] = THEOREM_WIDTHS,
                 log: Callable[[str], None] = lambda s: None, lead_html: str = "",
                 extra_files: Sequence[str] = (), winners_dir: str | None = None) -> str:
    """Write every figure and ``report.html`` into `out_dir`; returns the report's path.
    ``lead_html`` opens the page (the main job's finding, :func:`finding_html`); ``extra_files``
    are pages written beside it (kept by the manifest); ``winners_dir`` holds the winners files
    (default: the repository's ``experiments/winners``). Raises ``StoreError`` (before anything
    is written) when `store_path` is not a store."""
    rows = pareto.load_table(store_path)
    log(f"loaded {len(rows)} runs")
    if connectivity:
        n = pareto.add_connectivity(rows, store_path)
        log(f"connectivity computed for {n} runs")
    os.makedirs(out_dir, exist_ok=True)
    tables: list[Table] = [summary_table(rows), phase1_table(rows)]
    search, winners = search_table(rows)
    tables += [search, first_nnz_table(rows), matches_table(rows)]
    if after_training:
        tables.append(after_training_table(store_path, winners))
    flops_t, ours, measured = flops_tables(rows)
    tables.append(flops_t)
    tables.append(numeric_path_table(store_path))
    winners, problems = winners_lib.load_winners(winners_dir)
    for p in problems:
        log(p)

    figs: list[tuple[str, list[str]]] = []
    written: list[str] = []

    def add(title: str, paths: list[str]) -> None:
        written.extend(paths)
        for group in _group_paths([p for p in paths if not p.endswith(".csv")]):
            name = os.path.basename(os.path.splitext(group[0])[0])
            figs.append((f"{title} [{name}]", group))

    add("Figure 5: phase 1 of the combinatorial search", figures.phase1_scatter(rows, out_dir))
    inits = sorted({str(r.get("init_name")) for r in rows} | {w.init_name for w in winners})
    add("Figures 8, 11, 13, 16, 17: Pareto frontiers per method and width, with the paper's bound (crosses) and "
        "the claimed winners (diamonds)",
        figures.pareto_frontiers(rows, out_dir, winners=winners, bounds=paper_bounds(inits)))
    add("Training loss per epoch of the sparsest run above each target, per method, and of the stored winners",
        figures.loss_curves(loss_curve_panels(store_path, rows, winners), out_dir))
    add("Figures 20–24: best run per nnz, per method", figures.method_scatters(rows, out_dir))
    add("Effective vs direct nonzeros", figures.effective_vs_direct(rows, out_dir))
    add("Overparameterisation: the sparsest model above each target vs width, per method",
        figures.first_nnz_vs_width(rows, out_dir))
    add("Disconnected weights vs width", figures.disconnected_vs_width(rows, out_dir))
    add("Table 1: FLOPs", figures.flops_chart(ours, out_dir, measured=measured or None))
    counts = tuple(int(c) for c in flops_lib.erk_layer_counts((16, 16, 16), 55))
    widths = [w for w in theorem_widths if w >= max(counts[-1], -(-counts[0] // 2))]
    add("Theorem L.1: random pruning disconnects wide networks",
        figures.theorem_plot(out_dir, counts, widths, trials=mc_trials))
    log(f"wrote {len(figs)} figures")
    path = os.path.join(out_dir, "report.html")
    page = render_html(store_path, len(rows), tables, figs, lead_html=lead_html,
                       winners_section=winners_html(winners, problems, {str(r["run_id"]) for r in rows}))
    fileio.atomic_write_text(path, page)
    _replace_manifest(out_dir, [path, *written, *extra_files])
    return path


MANIFEST = "report-files.txt"


def _replace_manifest(out_dir: str, written: Sequence[str]) -> None:
    """Delete the files an earlier report listed in `out_dir`'s manifest that this one did not
    write again (figures of an earlier store must not linger in a reused folder), then list
    the new ones. Only plain names from our own manifest are ever deleted."""
    manifest = os.path.join(out_dir, MANIFEST)
    new = {os.path.basename(p) for p in written}
    try:
        with open(manifest, encoding="utf-8") as fh:
            old = {line.strip() for line in fh if line.strip()}
    except OSError:
        old = set()
    for name in sorted(old - new):
        stale = os.path.join(out_dir, name)
        if name == os.path.basename(name) and not name.startswith(".") and os.path.isfile(stale):
            os.remove(stale)
    fileio.atomic_write_text(manifest, "".join(f"{n}\n" for n in sorted(new)))
