"""Figures and the report from a small synthetic store (width-3/4 nets, fake accuracies), and the
``experiments.figures`` launcher end to end (subprocess)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sparsejax import mlp
from sparsejax.analysis import flops, pareto
from sparsejax.sweep.store import Store
from sparsejax.viz import figures, report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("gmp", "lth", "snip", "rigl")
HOSTILE_INIT = '/tmp/x<script>alert("x")&$bench995$_init.npz'  # the init name is the file's stem


def _net(rng: np.random.Generator, widths, density: float | None = None, masks=None):
    """A random network and masks (flat store blobs): weights kept with `density` (at least one
    per layer), biases by the pruning rule; or given `masks` (tuple of layers)."""
    params = [{"w": rng.normal(size=(i, o)).astype(np.float32), "b": rng.normal(size=(o,)).astype(np.float32)}
              for i, o in mlp.layer_shapes(widths)]
    if masks is None:
        wm = []
        for p in params:
            m = rng.random(p["w"].shape) < density
            m.flat[rng.integers(m.size)] = True
            wm.append(m.astype(np.float32))
        masks = mlp.masks_from_weights(wm, "out_degree")
    masks = [{k: np.asarray(v) > 0 for k, v in layer.items()} for layer in masks]
    masked = [{k: p[k] * masks[l][k] for k in ("w", "b")} for l, p in enumerate(params)]
    flat = lambda tree: {f"{l}/{k}": layer[k] for l, layer in enumerate(tree) for k in ("w", "b")}
    nnz = int(sum(np.count_nonzero(l["w"]) + np.count_nonzero(l["b"]) for l in masked))
    wnnz = int(sum(np.count_nonzero(l["w"]) for l in masked))
    return flat(masked), flat(masks), nnz, wnnz


def synthetic_records(seed: int = 0) -> list[dict]:
    """Phase-1 (structured) runs at width 3, phase-2 (search) runs of (3,3,3), pruning runs of 4
    methods at widths 3 and 4 (random init) and at width 3 from a hostile-named fixed init, and
    one dense run. Accuracy grows with nnz, with noise."""
    rng = np.random.default_rng(seed)
    recs = []

    def add(config, acc, net):
        params, masks, nnz, wnnz = net
        recs.append({"config": config, "accuracy": float(np.clip(acc, 0.4, 1.0)), "loss": 0.3,
                     "model_nnz": nnz, "weight_nnz": wnnz, "diverged": False, "params": params, "masks": masks})

    for d in ((1, 1, 1), (2, 2, 2), (3, 3, 3), (3, 2, 2), (2, 3, 3), (3, 3, 1)):
        for lr in (0.05, 0.1):
            acc = 0.55 + 0.45 * mlp.structured_nnz(d) / 37 - 0.01 * lr
            add({"method": "structured", "widths": (3, 3, 3), "structure": d, "lr": lr}, acc,
                _net(rng, (3, 3, 3), masks=mlp.structured_masks((3, 3, 3), d)))
    for i in range(12):
        net = _net(rng, (3, 3, 3), density=0.5 + 0.04 * i)
        add({"method": "search", "widths": (3, 3, 3), "structure": (3, 3, 3), "mask_index": i},
            0.6 + 0.4 * net[2] / 37 + rng.normal(0, 0.01), net)
    for init in ("random", HOSTILE_INIT):
        for width in ((3, 4) if init == "random" else (3,)):
            for m in METHODS:
                for budget in (8, 12, 16):
                    net = _net(rng, (width,) * 3, density=budget / mlp.weight_count((width,) * 3))
                    add({"method": m, "widths": (width,) * 3, "budget": budget, "init": init,
                         "lr": 0.05 if init == "random" else 0.1},
                        0.5 + 0.45 * net[2] / 40 + rng.normal(0, 0.02), net)
    add({"method": "dense", "widths": (3, 3, 3)}, 0.99, _net(rng, (3, 3, 3), density=1.0))
    recs[-2]["diverged"] = True
    recs[-2]["accuracy"] = 0.5
    return recs


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("figs") / "runs.sqlite")
    with Store(path) as st:
        st.write_records(synthetic_records())
    return path


@pytest.fixture(scope="module")
def rows(store_path) -> list[dict]:
    rows = pareto.load_table(store_path)
    assert pareto.add_connectivity(rows, store_path) == 2 * 3 * 4 + 4 * 3 + 1
    return rows


def _line_labels(fig) -> set[str]:
    return {line.get_label() for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_table_rows_resolve_configs_and_connectivity(rows):
    kinds = {r["kind"] for r in rows}
    assert kinds == {"structured", "search", "pruning", "dense"}
    gmp = pareto.select(rows, method="gmp", width=4)
    assert len(gmp) == 3 and all(r["epochs"] == 50 and r["schedule"] == "constant" for r in gmp)
    for r in pareto.select(rows, kind="pruning"):
        assert r["direct_model_nnz"] == r["model_nnz"]  # the masked params were stored
        assert r["effective_model_nnz"] <= r["direct_model_nnz"]
        assert len(r["active_units"]) == 3
    assert {r["init_name"] for r in rows} == {"random", pareto.init_name(HOSTILE_INIT)}


def test_phase1_figure_marks_selection(rows, tmp_path):
    fig = figures.fig_phase1(rows, "random")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[0] == "configurations"
    # best accuracy grows with nnz: (3,3,3) (37 nnz, the only config over 99.5%? no: none) —
    # the 95% selection is the sparsest config whose best accuracy exceeds 0.95
    sel = figures.phase1_selection(rows, 0.95, "random")
    assert sel is not None and any(str(sel[0]) in lab for lab in labels)
    assert figures.phase1_selection(rows, 0.9999, "random") is None
    paths = figures.phase1_scatter(rows, str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == ["fig05_phase1_random.png", "fig05_phase1_random.svg"]


def test_pareto_figure_has_one_panel_per_width_and_every_method(rows, tmp_path):
    fig = figures.fig_pareto(rows, "random")
    assert [ax.get_title() for ax in fig.axes] == ["width 3", "width 4"]
    expected = {flops.METHOD_LABELS[m] for m in METHODS} | {figures.SEARCH_LABEL}
    for ax in fig.axes:
        assert {l.get_label() for l in ax.get_lines() if not l.get_label().startswith("_")} == expected
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert set(legend_labels) == expected
    # every frontier (labelled line) rises in accuracy as nnz grows
    for line in fig.axes[0].get_lines():
        x, y = line.get_data()
        if len(x) > 1 and not line.get_label().startswith("_"):
            assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) > 0)
    paths = figures.pareto_frontiers(rows, str(tmp_path))
    assert {os.path.basename(p) for p in paths} >= {"pareto_random.png", "pareto_random.svg"}
    assert len(paths) == 4  # random and the fixed init


def test_scatter_connectivity_and_theorem_figures(rows, tmp_path):
    fig = figures.fig_method_scatter(rows, "random", 3)
    assert [ax.get_title() for ax in fig.axes] == [flops.METHOD_LABELS[m] for m in METHODS]
    assert all(len(ax.collections) == 1 for ax in fig.axes)  # one scatter per method panel
    fig = figures.fig_effective_vs_direct(rows, "random")
    assert len(fig.axes) == len(METHODS)
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"width 3", "width 4"}
    data = figures.disconnected_by_width(rows, "random")
    assert set(data) == set(METHODS) and all(list(d["width"]) == [3, 4] for d in data.values())
    fig = figures.fig_disconnected_vs_width(rows, "random")
    assert len(fig.axes[1].get_lines()) == len(METHODS)
    for target, ax in zip(figures.TARGETS, figures.fig_first_nnz_vs_width(rows, "random").axes):
        table = pareto.sparsest_by_width(rows, target)
        lines = {l.get_label(): l for l in ax.get_lines() if not l.get_label().startswith("_")}
        assert set(lines) == {flops.METHOD_LABELS[m] for m in table}
        for m, per in table.items():  # each method's line is its sparsest run per width (NaN: never)
            ys = [per[w]["model_nnz"] if per[w] else np.nan for w in sorted(per)]
            np.testing.assert_array_equal(lines[flops.METHOD_LABELS[m]].get_ydata(), ys)
    paths = figures.theorem_plot(str(tmp_path), counts=(2, 3, 3, 2), widths=(4, 8, 16), trials=200)
    assert len(paths) == 2 and all(os.path.getsize(p) > 0 for p in paths)


def test_figures_skip_when_runs_are_missing(tmp_path):
    only_dense = [{"kind": "dense", "method": "dense", "init_name": "random", "width": 3, "model_nnz": 40,
                   "accuracy": 0.9}]
    for writer in (figures.phase1_scatter, figures.pareto_frontiers, figures.method_scatters,
                   figures.effective_vs_direct, figures.disconnected_vs_width, figures.first_nnz_vs_width):
        assert writer(only_dense, str(tmp_path)) == []
        assert writer([], str(tmp_path)) == []
    assert figures.flops_chart({}, str(tmp_path)) == []
    assert os.listdir(tmp_path) == []


def test_flops_chart_and_headline_tables(rows, tmp_path):
    ours = flops.flops_table()
    fig = figures.fig_flops(ours)
    assert len(fig.axes[0].patches) == 2 * len(ours)
    paths = figures.flops_chart(ours, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["table1_flops.png", "table1_flops.svg", "table1_flops.csv"]
    caption, header, body = report.first_nnz_table(rows, width=3)
    listed = figures.ordered_methods(set(METHODS) | {"iter_snip", "synflow"})  # ours + the paper's
    assert [b[0] for b in body] == [flops.METHOD_LABELS[m] for m in listed] + ["Comb. (search)"]
    by_method = {b[0]: b for b in body}
    assert by_method["LTH"][3] == "44" and by_method["RigL"][5] == "84" and by_method["Iter SNIP"][1] == 0
    lth = pareto.select(rows, method="lth", width=3, init_name="random")
    x, y = pareto.column(lth, "model_nnz", True), pareto.column(lth, "accuracy", True)
    for col, t in ((2, 0.95), (4, 0.995)):
        assert by_method["LTH"][col] == report._num(pareto.first_nnz_reaching(x, y, t))
    table, winners = report.search_table(rows)
    assert table[2][0][1] == "(3,3,3)" and table[2][0][6] == "30"  # paper's BENCH-95


def test_launcher_writes_report(store_path, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "experiments.figures", f"--store={store_path}", f"--out={out}",
                           "--mc_trials=100"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip().splitlines()[-1]
    assert path == str(out / "report.html")
    page = open(path, encoding="utf-8").read()
    assert "Headline numbers" in page and "Phase 1: the sparsest configuration" in page
    assert "First model nnz reaching the target" in page and "Table 1: FLOPs" in page
    assert page.count("data:image/png;base64,") >= 6
    assert "<script" not in page  # the hostile init name is escaped everywhere
    assert "x&lt;script&gt;alert(&quot;x&quot;)&amp;$bench995$_init" in page
    assert re.search(r"<td>LTH</td><td>3\.4e\+09</td>", page)
    names = set(os.listdir(out))
    assert {"report.html", "pareto_random.png", "theorem_L1.svg", "table1_flops.csv"} <= names


@pytest.mark.parametrize("make_bad", ["missing", "not_a_store", "no_out"])
def test_launcher_bad_input_exits_2_writing_nothing(tmp_path, store_path, make_bad):
    out = tmp_path / "out"
    store = str(tmp_path / "missing.sqlite")
    if make_bad == "not_a_store":
        store = str(tmp_path / "bogus.sqlite")
        with open(store, "w") as fh:
            fh.write("not a database")
    args = [f"--store={store}", f"--out={out}"]
    if make_bad == "no_out":
        args = [f"--store={store_path}"]
    before = sorted(os.listdir(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "experiments.figures", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")
    assert proc.stdout == ""
    assert sorted(os.listdir(tmp_path)) == before


# ----------------------------------------------------------------------------- files

def test_slug_keeps_safe_names_and_separates_punctuation_variants():
    from sparsejax.viz.figures import slug
    assert slug("random") == "random" and slug("bench95_init") == "bench95_init"
    assert slug("p+q") != slug("p_q") == "p_q"
    assert slug("p+q").startswith("p_q-") and slug("p+q") == slug("p+q")


def test_figures_are_written_atomically_with_mode_0644(tmp_path):
    import stat
    from matplotlib.figure import Figure
    from sparsejax.viz.figures import save
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    old_umask = os.umask(0o022)
    try:
        paths = save(fig, str(tmp_path), "f")
    finally:
        os.umask(old_umask)
    assert sorted(os.listdir(tmp_path)) == ["f.png", "f.svg"]  # no temporary file left
    for p in paths:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    assert open(paths[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_manifest_removes_figures_of_an_earlier_report_only(tmp_path):
    from sparsejax.viz.report import MANIFEST, _replace_manifest
    for name in ("old.png", "keep.png", "mine.txt"):
        (tmp_path / name).write_text("x")
    _replace_manifest(str(tmp_path), [str(tmp_path / "old.png"), str(tmp_path / "keep.png")])
    _replace_manifest(str(tmp_path), [str(tmp_path / "keep.png")])
    assert sorted(os.listdir(tmp_path)) == sorted(["keep.png", "mine.txt", MANIFEST])


@pytest.mark.parametrize("widths", [(4,), (3, 4, 5, 6, 7, 8, 16)], ids=["one_width", "many_widths"])
def test_figures_are_legible_with_one_and_with_many_widths(tmp_path, widths):
    """Axes are never degenerate (one width: an octave of room; all-zero collapse: 0..5 %), every
    width drawn is a tick, the target lines are labelled, phase 1's log axis has >= 2 round ticks
    and its legend sits outside the axes (below), not over the points."""
    rng = np.random.default_rng(3)
    recs = []
    for w in widths:
        for m in ("gmp", "snip"):
            for budget in (8,):
                net = _net(rng, (w,) * 3, density=budget / mlp.weight_count((w,) * 3))
                params, masks, nnz, wnnz = net
                recs.append({"config": {"method": m, "widths": (w,) * 3, "budget": budget}, "accuracy": 0.9,
                             "loss": 0.3, "model_nnz": nnz, "weight_nnz": wnnz, "diverged": False,
                             "params": params, "masks": masks})
    for d in ((1, 1, 1), (2, 2, 2), (4, 2, 3), (4, 4, 4)):
        params, masks, nnz, wnnz = _net(rng, (4, 4, 4), masks=mlp.structured_masks((4, 4, 4), d))
        recs.append({"config": {"method": "structured", "widths": (4, 4, 4), "structure": d}, "loss": 0.3,
                     "accuracy": 0.5 + 0.48 * mlp.structured_nnz(d) / 57, "model_nnz": nnz, "weight_nnz": wnnz,
                     "diverged": False, "params": params, "masks": masks})
    path = str(tmp_path / "w.sqlite")
    with Store(path) as st:
        st.write_records(recs)
    rows = pareto.load_table(path)
    pareto.add_connectivity(rows, path)

    fig = figures.fig_disconnected_vs_width(rows, "random")
    for ax in fig.axes:
        lo, hi = ax.get_ylim()
        assert lo == 0 and hi >= 1, (lo, hi)  # not matplotlib's ±0.04 around an all-zero line
        assert [int(t) for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]] == list(widths)
        if len(widths) == 1:
            assert ax.get_xlim() == pytest.approx((widths[0] / 2, widths[0] * 2))
    fig = figures.fig_pareto(rows, "random")
    assert len(fig.axes) == len(widths)
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"95 %", "99.5 %"} <= texts  # the target lines are labelled
    fig = figures.fig_phase1(rows, "random")
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ticks) >= 2 and all(t.isdigit() for t in ticks), ticks
    assert ax.get_legend() is None and fig.legends  # the legend is the figure's, outside the axes
    for writer in (figures.disconnected_vs_width, figures.phase1_scatter):
        assert all(os.path.getsize(p) > 0 for p in writer(rows, str(tmp_path / "out")))


def test_nice_log_ticks():
    assert figures.nice_log_ticks(7, 57) == [10, 20, 30, 50]
    assert figures.nice_log_ticks(12, 18) == [10, 20]  # a narrow range still gets two ticks
    assert figures.nice_log_ticks(3, 2000) == [5, 10, 50, 100, 500, 1000]
