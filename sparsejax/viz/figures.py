"""Publication figures from a table of runs (:func:`sparsejax.analysis.pareto.load_table`).

Every figure has a builder ``fig_<name>(...) -> Figure | None`` (None when the table lacks the
runs it needs; tests inspect the returned figure) and a writer ``<name>(rows, out_dir, ...) ->
list[str]`` that saves PNG and SVG (one figure per init source where that applies) and returns
the written paths, ``[]`` when there is nothing to draw. Figures use matplotlib's object API
(``Figure`` without pyplot, the Agg canvas), so nothing global is touched.

Figures (paper numbering where there is one): phase-1 scatter (Fig. 5), Pareto frontiers of
accuracy vs model nnz per method with the search's models (Figs 8, 11, 13, 16, 17: one panel per
width), per-method scatters of the best run per nnz (Figs 20–24), Table 1 FLOPs, effective vs
direct nnz per method, disconnected weights vs width, and Theorem L.1.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import re
import zlib
from typing import Any, Callable, Mapping, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
import numpy as np

from sparsejax import fileio, mlp
from sparsejax.analysis import flops as flops_lib
from sparsejax.analysis import pareto
from sparsejax.search.product import select_sparsest

TARGETS = (0.95, 0.995)


def method_order() -> tuple[str, ...]:
    """Figure order, from the registry: the pruning methods in registration order, then random
    and dense (the baselines)."""
    from sparsejax.pruning import registry
    last = [n for n in ("random", "dense") if n in registry.REGISTRY]
    return tuple([n for n in registry.names() if n not in last] + last)


METHOD_ORDER = method_order()
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f", "#393b79")
# the paper's nine pruning methods, random and dense keep the palette; later methods get a hashed colour
METHOD_COLORS = dict(zip(METHOD_ORDER[:9] + METHOD_ORDER[-2:], _PALETTE))
SEARCH_LABEL = "Comb."
SEARCH_COLOR = "#000000"
BOUND_COLOR = "#000000"
WINNER_COLOR = "#c2185b"
STYLE = {
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.2,
    "lines.markersize": 3.5, "savefig.dpi": 200, "savefig.bbox": "tight", "svg.fonttype": "none",
}


# ----------------------------------------------------------------------------- helpers


def text(value: Any) -> str:
    """A store string made safe for a matplotlib label ("$" would start mathtext)."""
    return str(value).replace("$", r"\$")


def slug(value: Any) -> str:
    """A file-name-safe form of a label, distinct for distinct labels.

    A label that is already safe is kept as is (``random``, ``bench95_init``); any other gets
    a short hash of the original appended, so ``p+q`` and ``p_q`` never share a file name.
    """
    raw = str(value)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._")[:60] or "x"
    if safe == raw:
        return safe
    return f"{safe}-{hashlib.sha1(raw.encode('utf-8')).hexdigest()[:8]}"


def method_label(method: str) -> str:
    return text(flops_lib.METHOD_LABELS.get(method, method))


def method_color(method: str) -> str:
    return METHOD_COLORS.get(method, _PALETTE[zlib.crc32(str(method).encode()) % len(_PALETTE)])


def ordered_methods(methods: Sequence[str]) -> list[str]:
    known = [m for m in method_order() if m in methods]
    return known + sorted(set(methods) - set(known))


def save(fig: Figure, out_dir: str, stem: str) -> list[str]:
    """Write `fig` as ``<stem>.png`` and ``<stem>.svg`` under `out_dir`; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    with matplotlib.rc_context(STYLE):
        for ext in ("png", "svg"):
            path = os.path.join(out_dir, f"{stem}.{ext}")
            # atomic (a kill never leaves a truncated image) and mode 0644
            fileio.atomic_write(path, lambda tmp, ext=ext: fig.savefig(
                tmp, format=ext, metadata={"Date": None} if ext == "svg" else None))
            paths.append(path)
    return paths


def save_per_init(rows: Sequence[Mapping[str, Any]], kind: str, out_dir: str, stem: str,
                  build: Callable[[str], Figure | None]) -> list[str]:
    """``build(init)`` for every init source with runs of `kind`, saved as ``<stem>_<init>``."""
    paths = []
    for init in _inits(rows, kind):
        fig = build(init)
        if fig is not None:
            paths += save(fig, out_dir, f"{stem}_{slug(init)}")
    return paths


def _styled(builder):
    """Run a figure builder under :data:`STYLE` (rc values are read when artists are made)."""
    @functools.wraps(builder)
    def wrapped(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return builder(*args, **kwargs)
    return wrapped


def _figure(n_panels: int, ncols: int | None = None, panel: tuple[float, float] = (3.2, 2.5)) -> tuple[Figure, list]:
    ncols = ncols or (2 if n_panels == 4 else min(3, n_panels))
    nrows = -(-n_panels // ncols)
    # room for the outside legend and a title wider than one panel
    fig = Figure(figsize=(max(panel[0] * ncols + 1.6, 6.4), panel[1] * nrows + 0.4), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def _width_axis(ax, widths: Sequence[int]) -> None:
    """Log-2 x axis with a plain tick at every width drawn; one width gets an octave of room on
    each side (not a degenerate axis), many widths get slanted labels that do not collide."""
    ws = sorted({int(w) for w in widths})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ws, [str(w) for w in ws])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if len(ws) == 1:
        ax.set_xlim(ws[0] / 2, ws[0] * 2)
    elif len(ws) > 6:
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.set_xlabel("width")


def nice_log_ticks(lo: float, hi: float) -> list[int]:
    """Round tick values (1, 2, 3, 5 × 10^k) spanning [lo, hi] on a log axis, at least two, so
    a narrow range (phase 1 at D = 4: nnz 7 … 57) is not labelled by a lone "10"."""
    lo, hi = max(float(lo), 1.0), max(float(hi), 1.0)
    cands = [m * 10 ** k for k in range(0, 7) for m in (1, 2, 3, 5)]
    inside = [c for c in cands if lo <= c <= hi]
    if len(inside) > 8:
        inside = [c for c in inside if str(c)[0] in "15"]
    if len(inside) < 2:
        below = [c for c in cands if c < lo][-1:] if lo > 1 else []
        above = [c for c in cands if c > hi][:1]
        inside = below + inside + above
    return inside


def _legend_outside(fig: Figure, axes: Sequence) -> None:
    """One figure legend (right, outside) with every labelled artist of `axes`, once each."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside right upper")


def _points(rows: Sequence[Mapping[str, Any]], x_key: str = "model_nnz", y_key: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the rows, diverged runs and missing values dropped."""
    x = pareto.column(rows, x_key, diverged_nan=True)
    y = pareto.column(rows, y_key, diverged_nan=True)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _inits(rows: Sequence[Mapping[str, Any]], kind: str | Sequence[str]) -> list[str]:
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    names = {r.get("init_name", "random") for r in rows if r.get("kind") in kinds}
    return sorted(names, key=lambda n: (n != "random", n))


def _target_lines(ax, targets: Sequence[float], colors: Sequence[str] | None = None) -> None:
    """Dotted horizontal lines at the targets, each labelled ("95 %") at the left edge (where
    accuracy-vs-nnz plots are empty: nothing is that sparse and that accurate)."""
    for i, t in enumerate(targets):
        color = colors[i] if colors else "#555555"
        ax.axhline(100 * t, color=color, lw=0.7, ls=":", zorder=0)
        ax.text(0.005, 100 * t, f"{100 * t:g} %", transform=ax.get_yaxis_transform(), ha="left", va="bottom",
                fontsize=6.5, color=color, zorder=1)


def _search_frontier(ax, rows: Sequence[Mapping[str, Any]], init: str) -> bool:
    """Draw the combinatorial search's frontier (every search run of `init`: phase 1's structured
    models and phase 2's masks); True if drawn."""
    x, y = _points([r for r in rows if r.get("kind") in pareto.SEARCH_KINDS and r.get("init_name") == init])
    if x.size == 0:
        return False
    f = pareto.pareto_frontier(x, y)
    ax.plot(x[f], 100 * y[f], color=SEARCH_COLOR, marker="*", ms=6, drawstyle="steps-post",
            label=SEARCH_LABEL, zorder=5)
    return True


# ----------------------------------------------------------------------------- Figure 5


def phase1_best(rows: Sequence[Mapping[str, Any]], init: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """(configs (U, 3), best accuracy (U,)) of the phase-1 runs of `init` (diverged runs: NaN)."""
    runs = [r for r in rows if r.get("kind") == "structured" and r.get("init_name") == init
            and r.get("structure") is not None]
    if not runs:
        return np.zeros((0, 3), np.int64), np.zeros((0,))
    cfg = np.asarray([r["structure"] for r in runs], np.int64)
    acc = pareto.column(runs, "accuracy", diverged_nan=True)
    uniq, inv = np.unique(cfg, axis=0, return_inverse=True)
    best = np.full(len(uniq), -np.inf)
    np.maximum.at(best, inv.reshape(-1), np.where(np.isnan(acc), -np.inf, acc))
    return uniq, np.where(np.isfinite(best), best, np.nan)


def phase1_selection(rows: Sequence[Mapping[str, Any]], target: float, init: str = "random") -> tuple[tuple[int, ...], int, float] | None:
    """(configuration, structured nnz, best accuracy) selected by phase 1 for `target` (the
    sparsest configuration whose best accuracy EXCEEDS it, as Algorithm 1), or None."""
    cfg, best = phase1_best(rows, init)
    if len(cfg) == 0:
        return None
    sel = select_sparsest(cfg, best, target)
    if sel is None:
        return None
    i = int(np.flatnonzero((cfg == np.asarray(sel)).all(axis=1))[0])
    return tuple(int(d) for d in sel), mlp.structured_nnz(sel), float(best[i])


@_styled
def fig_phase1(rows: Sequence[Mapping[str, Any]], init: str = "random", targets: Sequence[float] = TARGETS) -> Figure | None:
    """Figure 5: structured nnz vs best accuracy of every configuration; targets and selections."""
    cfg, best = phase1_best(rows, init)
    ok = np.isfinite(best)
    if not ok.any():
        return None
    nnz = np.asarray([mlp.structured_nnz(c) for c in cfg])
    fig, (ax,) = _figure(1, panel=(4.6, 3.2))
    ax.scatter(nnz[ok], 100 * best[ok], s=6, color="#7f7f7f", alpha=0.5, lw=0, label="configurations")
    marks = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e")
    _target_lines(ax, targets, marks)
    for t, color in zip(targets, marks):
        sel = phase1_selection(rows, t, init)
        if sel is None:
            continue
        c, n, a = sel
        ax.scatter([n], [100 * a], marker="*", s=90, color=color, edgecolor="black", lw=0.5, zorder=5,
                   label=f"sparsest > {100 * t:g}%: {c}, {n} nnz, {100 * a:.2f}%")
    ax.set_xscale("log")
    ticks = nice_log_ticks(nnz[ok].min(), nnz[ok].max())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(ticks[0], nnz[ok].min()) / 1.08, max(ticks[-1], nnz[ok].max()) * 1.08)
    ax.set_xlabel("structured nnz (weights + biases)")
    ax.set_ylabel("best accuracy (%)")
    ax.set_title(f"Phase 1 of the combinatorial search ({text(init)} init)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=1, fontsize=7)  # never over points
    return fig


def phase1_scatter(rows: Sequence[Mapping[str, Any]], out_dir: str, targets: Sequence[float] = TARGETS) -> list[str]:
    """Figure 5 for every init source with phase-1 runs."""
    return save_per_init(rows, "structured", out_dir, "fig05_phase1", lambda init: fig_phase1(rows, init, targets))


# ----------------------------------------------------------------------------- Figures 8, 11, 13, 16, 17


def _pruning_rows(rows: Sequence[Mapping[str, Any]], init: str, width: int | None = None) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("kind") == "pruning" and r.get("init_name") == init
            and (width is None or r.get("width") == width)]


def _widths(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    return sorted({int(r["width"]) for r in rows if r.get("width") is not None})


Bound = tuple[int, float, str]  # (model nnz, accuracy, label): a reference point such as the paper's search


LABEL_OFFSETS = ((-4, -14), (-4, -26), (-4, -38), (-4, -50))  # points, below-left (sparse and less accurate: empty)


def _claims(ax, width: int, winners: Sequence[Any], bound: Sequence[Bound]) -> None:
    """The paper's bound (black crosses) and the claimed winners of this panel's width (red
    diamonds), each named by a label on a leader line (staggered in nnz order, so neighbours
    do not overprint); the x axis gains room on the left for the target labels."""
    points = [(nnz, acc, label, BOUND_COLOR) for nnz, acc, label in bound]
    points += [(w.model_nnz, w.accuracy, f"{w.name}: {w.model_nnz}", WINNER_COLOR) for w in winners
               if w.width in (None, width)]
    if not points:
        return
    for nnz, acc, _, color in points:
        winner = color == WINNER_COLOR
        ax.scatter([nnz], [100 * acc], marker="D" if winner else "X", s=40 if winner else 55, color=color,
                   edgecolor="black" if winner else None, lw=0.6, zorder=7,
                   label="claimed winners" if winner else "paper's bound")
    for k, (nnz, acc, label, color) in enumerate(sorted(points, key=lambda p: (p[0], p[1]))):
        ax.annotate(text(label), (nnz, 100 * acc), xytext=LABEL_OFFSETS[k % len(LABEL_OFFSETS)],
                    textcoords="offset points", fontsize=6, color=color, ha="right", va="center",
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": color})
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo - 0.15 * (hi - lo), hi)


@_styled
def fig_pareto(rows: Sequence[Mapping[str, Any]], init: str = "random", targets: Sequence[float] = TARGETS,
               widths: Sequence[int] | None = None, winners: Sequence[Any] = (),
               bound: Sequence[Bound] = ()) -> Figure | None:
    """Pareto frontiers of accuracy vs model nnz, one line per method, one panel per width,
    with the combinatorial search's frontier (phase 2 of the same init), the paper's `bound`
    points and the claimed `winners` of this init (:class:`sparsejax.analysis.winners.Winner`,
    in the panel of their width) in every panel. None when there is neither a pruning run nor
    a winner to draw."""
    prune = _pruning_rows(rows, init)
    mine = [w for w in winners if w.init_name == init]
    widths = list(widths) if widths is not None else sorted(set(_widths(prune))
                                                            | {w.width for w in mine if w.width is not None})
    if not (prune or mine) or not widths:
        return None
    fig, axes = _figure(len(widths))
    for ax, w in zip(axes, widths):
        here = _pruning_rows(prune, init, w)
        for m in ordered_methods({str(r["method"]) for r in here}):
            x, y = _points([r for r in here if r["method"] == m])
            if x.size == 0:
                continue
            f = pareto.pareto_frontier(x, y)
            ax.plot(x[f], 100 * y[f], marker="o", drawstyle="steps-post", color=method_color(m), label=method_label(m))
        _search_frontier(ax, rows, init)
        _claims(ax, w, mine, bound)
        _target_lines(ax, targets)
        ax.set_title(f"width {w}")
        ax.set_xlabel("model nnz (weights + biases)")
        ax.set_ylabel("accuracy (%)")
    _legend_outside(fig, axes)
    fig.suptitle(f"Pareto frontiers of pruning vs the combinatorial search ({text(init)} init)")
    return fig


def pareto_frontiers(rows: Sequence[Mapping[str, Any]], out_dir: str, targets: Sequence[float] = TARGETS,
                     winners: Sequence[Any] = (), bounds: Mapping[str, Sequence[Bound]] | None = None) -> list[str]:
    """Figures 8/11/17 (random init) and 13/16 (fixed inits): one file per init source with
    pruning runs or winners; `bounds` maps an init name to its paper's bound points."""
    paths = []
    for init in sorted(set(_inits(rows, "pruning")) | {w.init_name for w in winners}, key=lambda n: (n != "random", n)):
        fig = fig_pareto(rows, init, targets, winners=winners, bound=(bounds or {}).get(init, ()))
        if fig is not None:
            paths += save(fig, out_dir, f"pareto_{slug(init)}")
    return paths


# ----------------------------------------------------------------------------- Figures 20-24


@_styled
def fig_method_scatter(rows: Sequence[Mapping[str, Any]], init: str, width: int,
                       targets: Sequence[float] = TARGETS) -> Figure | None:
    """Figures 20–24: per method, the best run at every model nnz; the search's frontier shown."""
    here = _pruning_rows(rows, init, width)
    methods = ordered_methods({str(r["method"]) for r in here})
    if not methods:
        return None
    fig, axes = _figure(len(methods), ncols=min(3, len(methods)), panel=(2.8, 2.2))
    for ax, m in zip(axes, methods):
        x, y = pareto.best_per_nnz(*_points([r for r in here if r["method"] == m]))
        ax.scatter(x, 100 * y, s=9, color=method_color(m), label=method_label(m), zorder=4)
        _search_frontier(ax, rows, init)
        _target_lines(ax, targets)
        ax.set_title(method_label(m))
        ax.set_xlabel("model nnz")
        ax.set_ylabel("best accuracy (%)")
    _legend_outside(fig, axes)
    fig.suptitle(f"Best run per model nnz, width {width} ({text(init)} init)")
    return fig


def method_scatters(rows: Sequence[Mapping[str, Any]], out_dir: str, targets: Sequence[float] = TARGETS) -> list[str]:
    """One scatter figure per (init source, width)."""
    paths = []
    for init in _inits(rows, "pruning"):
        for w in _widths(_pruning_rows(rows, init)):
            fig = fig_method_scatter(rows, init, w, targets)
            if fig is not None:
                paths += save(fig, out_dir, f"scatter_{slug(init)}_w{w}")
    return paths


# ----------------------------------------------------------------------------- Table 1


@_styled
def fig_flops(ours: Mapping[str, float], paper: Mapping[str, float] = flops_lib.PAPER_TABLE1,
              measured: Mapping[str, float] | None = None) -> Figure | None:
    """Table 1 as horizontal bars (log scale): the paper, our model, our model with measured nnz."""
    methods = [m for m in flops_lib.TABLE1_METHODS if m in ours] + [m for m in ours if m not in flops_lib.TABLE1_METHODS]
    if not methods:
        return None
    series = [("paper (Table 1)", paper, "#bbbbbb"), ("ours (model)", ours, "#0877bd")]
    if measured:
        series.append(("ours (measured nnz)", measured, "#f59322"))
    fig, (ax,) = _figure(1, panel=(5.2, 0.17 * len(methods) * len(series) + 0.9))
    y = np.arange(len(methods))
    h = 0.8 / len(series)
    for i, (label, values, color) in enumerate(series):
        vals = np.asarray([values.get(m, np.nan) for m in methods], float)
        bars = ax.barh(y + (i - (len(series) - 1) / 2) * h, np.where(np.isfinite(vals), vals, 0), height=h,
                       color=color, label=label)
        ax.bar_label(bars, [f"{v:.1e}" if np.isfinite(v) else "" for v in vals], padding=2, fontsize=6)
    ax.set_yticks(y, [method_label(m) for m in methods])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(right=ax.get_xlim()[1] * 3)  # room for the value labels
    ax.set_xlabel("FLOPs to prune and train (width 16, 55 nonzero weights)")
    ax.legend(loc="lower right")
    return fig


def flops_chart(ours: Mapping[str, float], out_dir: str, paper: Mapping[str, float] = flops_lib.PAPER_TABLE1,
                measured: Mapping[str, float] | None = None) -> list[str]:
    """Table 1 as a bar chart (PNG, SVG) and a CSV table."""
    fig = fig_flops(ours, paper, measured)
    if fig is None:
        return []
    paths = save(fig, out_dir, "table1_flops")
    path = os.path.join(out_dir, "table1_flops.csv")
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["method", "paper", "ours_model", "ours_measured_nnz"])
    for m in ours:
        out.writerow([m, paper.get(m, ""), f"{ours[m]:.4g}", f"{measured[m]:.4g}" if measured and m in measured else ""])
    fileio.atomic_write_text(path, buf.getvalue())
    return paths + [path]


# ----------------------------------------------------------------------------- connectivity


def _connectivity_rows(rows: Sequence[Mapping[str, Any]], init: str) -> list[Mapping[str, Any]]:
    return [r for r in _pruning_rows(rows, init)
            if r.get("direct_model_nnz") is not None and r.get("effective_model_nnz") is not None]


@_styled
def fig_effective_vs_direct(rows: Sequence[Mapping[str, Any]], init: str = "random") -> Figure | None:
    """Effective vs direct model nnz per method (points coloured by width; y = x dashed)."""
    conn = _connectivity_rows(rows, init)
    methods = ordered_methods({str(r["method"]) for r in conn})
    if not methods:
        return None
    widths = _widths(conn)
    cmap = matplotlib.colormaps["viridis"]
    colors = {w: cmap(i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    fig, axes = _figure(len(methods), ncols=min(3, len(methods)), panel=(2.8, 2.4))
    for ax, m in zip(axes, methods):
        mine = [r for r in conn if r["method"] == m]
        for w in widths:
            x, y = _points([r for r in mine if r.get("width") == w], "direct_model_nnz", "effective_model_nnz")
            if x.size:
                ax.scatter(x, y, s=7, color=colors[w], alpha=0.7, lw=0, label=f"width {w}")
        x, _ = _points(mine, "direct_model_nnz", "effective_model_nnz")
        if x.size:
            hi = float(x.max())
            ax.plot([0, hi], [0, hi], color="#555555", ls="--", lw=0.7)
        ax.set_title(method_label(m))
        ax.set_xlabel("direct model nnz")
        ax.set_ylabel("effective model nnz")
    _legend_outside(fig, axes)
    fig.suptitle(f"Effective (on an input→output path) vs direct nonzeros ({text(init)} init)")
    return fig


def effective_vs_direct(rows: Sequence[Mapping[str, Any]], out_dir: str) -> list[str]:
    return save_per_init(rows, "pruning", out_dir, "effective_vs_direct", lambda init: fig_effective_vs_direct(rows, init))


def disconnected_by_width(rows: Sequence[Mapping[str, Any]], init: str = "random") -> dict[str, dict[str, np.ndarray]]:
    """Per method: widths, mean and standard error of disconnected weights (direct − effective
    weight nnz), and the fraction of runs with layer collapse."""
    conn = [r for r in _pruning_rows(rows, init)
            if r.get("direct_weight_nnz") is not None and r.get("effective_weight_nnz") is not None]
    out = {}
    for m in ordered_methods({str(r["method"]) for r in conn}):
        mine = [r for r in conn if r["method"] == m]
        ws, mean, se, collapse = [], [], [], []
        for w in _widths(mine):
            at = [r for r in mine if r.get("width") == w]
            d = np.asarray([float(r["direct_weight_nnz"]) - float(r["effective_weight_nnz"]) for r in at])
            ws.append(w)
            mean.append(d.mean())
            se.append(d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0)
            collapse.append(np.mean([bool(r.get("layer_collapse")) for r in at]))
        out[m] = {"width": np.asarray(ws), "mean": np.asarray(mean), "stderr": np.asarray(se),
                  "collapse": np.asarray(collapse)}
    return out


@_styled
def fig_disconnected_vs_width(rows: Sequence[Mapping[str, Any]], init: str = "random") -> Figure | None:
    """Disconnected weights and layer collapse vs width, one line per method."""
    data = disconnected_by_width(rows, init)
    if not data:
        return None
    fig, (ax_d, ax_c) = _figure(2, ncols=2, panel=(3.4, 2.7))
    for m, d in data.items():
        ax_d.errorbar(d["width"], d["mean"], yerr=d["stderr"], marker="o", capsize=2, color=method_color(m),
                      label=method_label(m))
        ax_c.plot(d["width"], 100 * d["collapse"], marker="o", color=method_color(m), label=method_label(m))
    widths = sorted({int(w) for d in data.values() for w in d["width"]})
    for ax in (ax_d, ax_c):
        _width_axis(ax, widths)
    # all-zero data must not give a degenerate axis (matplotlib's ±0.04 around 0)
    top_d = max([float(np.nanmax(np.asarray(d["mean"]) + np.nan_to_num(np.asarray(d["stderr"]))))
                 for d in data.values()] + [0.0])
    top_c = max([float(np.nanmax(100 * np.asarray(d["collapse"]))) for d in data.values()] + [0.0])
    ax_d.set_ylim(0, max(1.0, 1.15 * top_d))
    ax_c.set_ylim(0, max(5.0, min(100.0, 1.15 * top_c) if top_c < 100 else 102.0))
    ax_d.set_ylabel("disconnected weights (direct − effective)")
    ax_c.set_ylabel("runs with layer collapse (%)")
    ax_d.set_title("weights off every input→output path")
    ax_c.set_title("no input→output path at all")
    _legend_outside(fig, [ax_c])
    fig.suptitle(f"Overparameterisation and disconnected paths ({text(init)} init)")
    return fig


def disconnected_vs_width(rows: Sequence[Mapping[str, Any]], out_dir: str) -> list[str]:
    return save_per_init(rows, "pruning", out_dir, "disconnected_vs_width",
                         lambda init: fig_disconnected_vs_width(rows, init))


@_styled
def fig_first_nnz_vs_width(rows: Sequence[Mapping[str, Any]], init: str = "random",
                           targets: Sequence[float] = TARGETS) -> Figure | None:
    """The paper's overparameterisation finding: per target, the fewest model nonzeros of any run
    above it vs width, one line per method (``analysis.pareto.sparsest_by_width``); a width where
    no run reaches the target is an open marker at the top ("never")."""
    tables = {t: pareto.sparsest_by_width(rows, t, init) for t in targets}
    if not any(tables.values()):
        return None
    fig, axes = _figure(len(targets), ncols=len(targets), panel=(3.4, 2.7))
    reached = [r["model_nnz"] for tab in tables.values() for per in tab.values() for r in per.values() if r]
    top = 1.2 * max(reached) if reached else 100.0
    widths = sorted({w for tab in tables.values() for per in tab.values() for w in per})
    for ax, t in zip(axes, targets):
        for m in ordered_methods(tables[t]):
            per = tables[t][m]
            ws = sorted(per)
            ys = [per[w]["model_nnz"] if per[w] else np.nan for w in ws]
            ax.plot(ws, ys, marker="o", color=method_color(m), label=method_label(m))
            never = [w for w in ws if per[w] is None]
            ax.plot(never, [top] * len(never), linestyle="none", marker="o", markerfacecolor="none",
                    color=method_color(m))
        ax.axhline(top, color="0.8", lw=0.8, zorder=0)
        ax.text(widths[0] if widths else 1, top, " never", va="bottom", fontsize=7, color="0.4")
        _width_axis(ax, widths)
        ax.set_ylim(0, top * 1.1)
        ax.set_ylabel(f"fewest model nnz above {100 * t:g} %")
        ax.set_title(f"target {100 * t:g} %")
    _legend_outside(fig, [axes[-1]])
    fig.suptitle(f"Overparameterisation: sparsest model reaching the target vs width ({text(init)} init)")
    return fig


def first_nnz_vs_width(rows: Sequence[Mapping[str, Any]], out_dir: str) -> list[str]:
    return save_per_init(rows, "pruning", out_dir, "first_nnz_vs_width",
                         lambda init: fig_first_nnz_vs_width(rows, init))


# ----------------------------------------------------------------------------- Theorem L.1


@_styled
def fig_theorem(curve: Mapping[str, np.ndarray], counts: Sequence[int]) -> Figure | None:
    """P(no input→output path) vs width: Monte Carlo (±2 s.e.), the exact probability that the
    two middle layers are disconnected, the bound and the paper's printed expression."""
    if len(curve.get("width", [])) == 0:
        return None
    fig, (ax,) = _figure(1, panel=(4.6, 3.0))
    w = curve["width"]
    ax.errorbar(w, curve["mc"], yerr=2 * curve["mc_stderr"], marker="o", capsize=2, color="#0877bd",
                label="Monte Carlo (±2 s.e.), whole network")
    ax.plot(w, curve["pair"], marker="s", color="#2ca02c", label="exact, middle layers disconnected")
    ax.plot(w, curve["bound"], marker="^", color="#f59322", label=r"bound $((w-n_\ell+1-n_{\ell+1})/w)^{n_\ell}$")
    ax.plot(w, curve["paper_bound"], ls="--", color="#7f7f7f", label=r"paper's expression (exponent $n_\ell-1$)")
    _width_axis(ax, w)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("width w")
    ax.set_ylabel("P(no input→output path)")
    ax.set_title(f"Theorem L.1: random pruning, per-layer counts {tuple(int(c) for c in counts)}")
    fig.legend(loc="outside lower center", ncols=2)
    return fig


def theorem_plot(out_dir: str, counts: Sequence[int] = (10, 18, 18, 9),
                 widths: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024, 2048),
                 trials: int = 2000, seed: int = 0) -> list[str]:
    """Theorem L.1 figure (default counts: RigL's ERK split of 55 weights at width 16)."""
    from sparsejax.analysis import theorem
    fig = fig_theorem(theorem.curve(widths, counts, trials, seed), counts)
    return save(fig, out_dir, "theorem_L1") if fig is not None else []


# ----------------------------------------------------------------------------- training curves

Curve = tuple[str, np.ndarray, str]  # (label, (E,) mean minibatch training loss per epoch, colour)


@_styled
def fig_loss_curves(panels: Mapping[str, Sequence[Curve]]) -> Figure | None:
    """Training loss per epoch (log scale), one panel per title of `panels`, one line per curve
    (LTH's curves hold all its rounds' epochs); None when no panel has a curve."""
    panels = {title: curves for title, curves in panels.items() if curves}
    if not panels:
        return None
    fig, axes = _figure(len(panels), ncols=min(2, len(panels)), panel=(3.6, 2.6))
    for ax, (title, curves) in zip(axes, panels.items()):
        for label, curve, color in curves:
            loss_E = np.asarray(curve, np.float64).reshape(-1)
            ax.plot(np.arange(1, loss_E.size + 1), loss_E, color=color, label=text(label))
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean minibatch training loss")
        ax.set_title(text(title))
        ax.legend(fontsize=6)
    fig.suptitle("Training loss per epoch (BCE, mean over each epoch's minibatches)")
    return fig


def loss_curves(panels: Mapping[str, Sequence[Curve]], out_dir: str) -> list[str]:
    """:func:`fig_loss_curves` saved as ``loss_curves`` (PNG, SVG); [] when there is no curve."""
    fig = fig_loss_curves(panels)
    return save(fig, out_dir, "loss_curves") if fig is not None else []
