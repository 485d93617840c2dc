"""The Python API (``import sparsejax as sj``): lazy, documented, and the README's example runs."""
import os
import re
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_example() -> str:
    """The first ```python block under the README's "## Python API" heading."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = text.split("## Python API", 1)[1]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "README's Python API section has no ```python block"
    return m.group(1)


def test_import_is_lazy_and_every_entry_point_resolves_with_a_docstring():
    code = ("import sys, sparsejax as sj\n"
            "assert 'jax' not in sys.modules, 'import sparsejax loaded jax'\n"
            "for name in sj.__all__:\n"
            "    obj = getattr(sj, name)\n"
            "    assert (obj.__doc__ or '').strip(), name\n"
            "from sparsejax.search import eligible_masks, MaskSpace, run_phase2, halving\n"
            "import sparsejax.search as s\n"
            "assert s.eligible_masks is eligible_masks and halving.__name__ == 'sparsejax.search.halving'\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_unknown_attribute_is_an_attribute_error():
    import sparsejax
    import sparsejax.search
    for mod in (sparsejax, sparsejax.search):
        try:
            getattr(mod, "no_such_entry_point")
        except AttributeError:
            continue
        raise AssertionError(f"{mod.__name__}.no_such_entry_point resolved")


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md#python-api", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out.splitlines()
    # the example prints: the records' (model nnz, accuracy); the mask counts; the store's run count
    pairs = eval(out[0])  # noqa: S307 (our own README's output)
    assert len(pairs) == 2 and all(0.0 <= acc <= 1.0 for _, acc in pairs)
    assert out[1] == "(8, 3, 2) 25992"  # eligible 2->3 masks (SPEC count); (3,3,3) product size
    assert out[2] == "2 runs in the store"
    assert os.path.exists(tmp_path / "example.sqlite") and os.path.exists(tmp_path / "model.html")
    assert np.isfinite([nnz for nnz, _ in pairs]).all()


def test_readme_train_command_in_reduced_form(tmp_path):
    """README: ``python -m experiments.train --preset=readme`` (here 1 epoch instead of 5): six
    models (3 densities x 2 seeds), one JSON line each; density 1.0 is the dense network and
    learns (above chance), and the store it fills verifies clean."""
    import json
    out, store = tmp_path / "t.jsonl", tmp_path / "t.sqlite"
    proc = subprocess.run([sys.executable, "-m", "experiments.train", "--preset=readme", "--epochs=1",
                           f"--output={out}", f"--store={store}"], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    dense = [r for r in rows if r["config"]["method"] == "dense"]
    assert len(dense) == 2 and all(r["accuracy"] > 0.55 for r in dense), dense
    proc = subprocess.run([sys.executable, "-m", "experiments.store", "verify", f"--store={store}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("verify: ok: 6 records"), proc.stdout + proc.stderr
