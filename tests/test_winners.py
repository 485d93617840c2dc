"""The claimed winners (``experiments/winners/*.json``, issues #15 and #16) in the report, on its
Pareto figure next to the paper's bound, and in the viewer; damaged files are reported, never
fatal."""
from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sparsejax import config, mlp, train
from sparsejax.analysis import winners as winners_lib
from sparsejax.sweep import identity
from sparsejax.sweep.store import Store
from sparsejax.viz import figures, report, viewer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINNERS = os.path.join(REPO, "experiments", "winners")
# the paper's search (SPEC §9): random init, and the fixed BENCH-995 init's (6,3,2) subset
BOUND = {("random", 0.95): "30 nnz, 96.04%", ("random", 0.995): "45 nnz, 99.59%",
         ("bench995_init", 0.995): "38 nnz, 99.70%"}


def _tiny_winner(folder, name="tiny") -> str:
    """A winners file whose run retrains in a second: dense (3,3,3), one epoch of 12 steps."""
    cfg = dict(method="dense", widths=[3, 3, 3], lr=0.1, schedule="cosine", epochs=1, batch_size=4096)
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as fh:
        json.dump({"name": name, "target": 0.95, "accuracy": 0.6, "model_nnz": 40, "config": cfg}, fh)
    return path


def _damaged_folder(folder) -> None:
    for name in os.listdir(WINNERS):
        shutil.copy(os.path.join(WINNERS, name), folder)
    with open(os.path.join(folder, "broken.json"), "w") as fh:
        fh.write('{"name": "broken", "target": 0.95,')
    with open(os.path.join(folder, "no_config.json"), "w") as fh:
        json.dump({"name": "no_config", "target": 0.95, "accuracy": 0.9, "model_nnz": 3}, fh)
    with open(os.path.join(folder, "bad_method.json"), "w") as fh:
        json.dump({"name": "bad", "target": 0.95, "accuracy": 0.9, "model_nnz": 3, "config": {"method": "nope"}}, fh)


def test_repository_winners_load_with_their_run_ids(monkeypatch):
    monkeypatch.chdir(REPO)
    found, problems = winners_lib.load_winners()
    assert problems == []
    assert {w.name for w in found} >= {"beyond_95", "sfp_95", "sfp_995"}
    for w in found:
        with open(w.path) as fh:
            doc = json.load(fh)
        assert (w.target, w.accuracy, w.model_nnz) == (doc["target"], doc["accuracy"], doc["model_nnz"])
        assert w.run_id == identity.run_id(identity.resolve(doc["config"]))
        if doc["config"]["init"] == "random" or os.path.isfile(doc["config"]["init"]):
            assert w.run_id == identity.run_id(config.resolve(doc["config"]))
        assert w.retrain_command() == f"python -m experiments.train --config=experiments/winners/{w.name}.json"
    by_name = {w.name: w for w in found}
    assert by_name["beyond_95"].method_label() == "search (phase 2)" and by_name["beyond_95"].width == 16
    assert by_name["beyond_95"].run_id == "f137420d18e8740f"  # as experiments/RESULTS.md names it


def test_damaged_or_missing_winner_files_are_problems(tmp_path):
    _damaged_folder(tmp_path)
    found, problems = winners_lib.load_winners(str(tmp_path))
    assert len(found) == len(os.listdir(WINNERS))
    assert len(problems) == 3
    for name, why in (("broken.json", "cannot be read as JSON"), ("no_config.json", "config"),
                      ("bad_method.json", "method")):
        assert any(name in p and why in p for p in problems), (name, problems)
    assert winners_lib.load_winners(str(tmp_path / "nowhere")) == ([], [f"winners folder {tmp_path / 'nowhere'}: not found"])


def _rows() -> list[dict]:
    """Pruning rows at width 16 (GMP's frontier: 40 nnz 93 %, 50 nnz 96 %, 70 nnz 99.6 %)."""
    return [{"kind": "pruning", "init_name": "random", "width": 16, "method": "gmp", "model_nnz": n,
             "accuracy": a, "diverged": False, "run_id": f"g{n}"} for n, a in ((40, 0.93), (50, 0.96), (70, 0.996))]


def test_pareto_figure_draws_the_winners_and_the_paper_bound():
    found, _ = winners_lib.load_winners()
    assert any(w.init_name != "random" for w in found)  # a fixed-init winner is drawn on its own init's figure
    found = [w for w in found if w.init_name == "random"]
    bound = report.paper_bounds(["random"])["random"]
    assert sorted(b[:2] for b in bound) == [(30, 0.9604), (45, 0.9959)]
    fig = figures.fig_pareto(_rows(), "random", winners=found, bound=bound)
    # one panel per width holding runs or winners (width-64 sfp winners get their own)
    assert {ax.get_title() for ax in fig.axes} == {f"width {w}" for w in {16} | {w.width for w in found}}
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "claimed winners" in legend and "paper's bound" in legend
    notes = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {f"{w.name}: {w.model_nnz}" for w in found} <= notes
    assert {"paper (3,3,3): 30", "paper (7,3,3): 45"} <= notes
    points = {tuple(np.round(p, 4)) for ax in fig.axes for c in ax.collections for p in c.get_offsets()}
    assert {(w.model_nnz, round(100 * w.accuracy, 4)) for w in found} <= points
    # winners alone (a store without pruning runs) still give the figure
    assert figures.fig_pareto([], "random", winners=found) is not None
    assert figures.fig_pareto([], "random") is None


def test_report_lists_every_winner_and_reports_damaged_files(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    store = str(tmp_path / "s.sqlite")
    net = tuple({"w": np.asarray(l["w"]), "b": np.asarray(l["b"])}
                for l in mlp.init(train.jax.random.PRNGKey(0), (3, 3, 3)))
    with Store(store) as st:
        st.write_records([{"config": dict(method="gmp", widths=[3, 3, 3], budget=b, lr=0.1), "accuracy": a,
                           "model_nnz": 10 + b, "weight_nnz": b, "diverged": False, "params": net}
                          for b, a in ((10, 0.9), (14, 0.97))])
    folder = tmp_path / "winners"
    folder.mkdir()
    _damaged_folder(folder)
    out = tmp_path / "out"
    page = open(report.build_report(store, str(out), mc_trials=20, theorem_widths=(16,), after_training=False,
                                    winners_dir=str(folder)), encoding="utf-8").read()
    assert "Claimed winners" in page
    found, problems = winners_lib.load_winners(str(folder))
    for w in found:
        row = (f"<tr><td>{html.escape(w.name)}</td><td>{html.escape(w.method_label())}</td>"
               f"<td>&gt; {100 * w.target:g}%</td><td>{w.model_nnz}</td><td>{100 * w.accuracy:.2f}%</td>"
               f"<td>{BOUND[(w.init_name, w.target)]}</td><td>{w.run_id}</td><td>no</td><td>{html.escape(w.retrain_command())}</td>"
               f"<td>{html.escape(w.view_command())}</td></tr>")
        assert row in page
    for p in problems:
        assert html.escape(p) in page
    assert os.path.exists(out / "pareto_random.png")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[str, str]:
    """(a tiny winners file, a store holding its run)."""
    folder = tmp_path_factory.mktemp("tiny")
    path = _tiny_winner(str(folder))
    from sparsejax import runs
    store = str(folder / "s.sqlite")
    with Store(store) as st:
        st.write_records(runs.run_population([winners_lib.read_winner(path).config]))
    return path, store


def test_viewer_shows_a_winner_network_retrained_or_stored(tiny):
    path, store = tiny
    (spec,) = viewer.load_models(winner=path)
    win = winners_lib.read_winner(path)
    assert spec.name == f"tiny ({win.run_id})"
    assert spec.meta["claimed model_nnz"] == 40 and spec.meta["network"] == "retrained from the file's config"
    assert len(spec.loss_curve) == 1
    (stored,) = viewer.load_models(winner=path, store=store)
    assert stored.meta["network"].startswith("read from store")
    np.testing.assert_array_equal(stored.params["0/w"], np.asarray(spec.params[0]["w"]))  # the same run
    page = viewer.build_html([stored], sample_size=50, points=20, grid_size=16, unit_px=8, output_px=16)
    assert "claimed model_nnz" in page and win.run_id in page
    with pytest.raises(viewer.ViewerInputError, match="winner file"):
        viewer.load_models(winner=os.path.join(REPO, "README.md"))
    with pytest.raises(viewer.ViewerInputError, match="no run id"):
        viewer.load_models(winner=path, store=store, run_id="x")


def test_view_launcher_takes_a_winner(tiny, tmp_path):
    path, store = tiny
    out = tmp_path / "w.html"
    run = lambda *args: subprocess.run([sys.executable, "-m", "experiments.view", *args], cwd=REPO,  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    proc = run(f"--winner={path}", f"--store={store}", f"--out={out}", "--sample=50")
    assert proc.returncode == 0, proc.stderr
    assert "tiny (" in out.read_text(encoding="utf-8")
    bad = run(f"--winner={path}", f"--npz={path}")
    assert bad.returncode == 2 and "--winner" in bad.stderr
    dry = run(f"--winner={path}", "--dry_run", f"--out={tmp_path / 'dry.html'}")  # checks the file, trains nothing
    assert dry.returncode == 0 and "would write" in dry.stdout and not (tmp_path / "dry.html").exists()
