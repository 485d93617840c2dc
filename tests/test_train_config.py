"""`python -m experiments.train --config=FILE` retrains exactly one claimed run."""
import json
import os
import subprocess
import sys

import pytest

from sparsejax.jobs import train as train_launcher
from sparsejax import runs

CFG = {"method": "snip", "widths": [4, 4, 4], "budget": 12, "epochs": 1, "lr": 0.1, "schedule": "cosine"}


@pytest.fixture(scope="module")
def winner(tmp_path_factory):
    (rec,) = runs.run_population([CFG])
    path = tmp_path_factory.mktemp("winners") / "toy.json"
    path.write_text(json.dumps({"name": "toy", "target": 0.5, "accuracy": rec["accuracy"],
                                "model_nnz": rec["model_nnz"], "config": rec["config"]}))
    return path, rec


def test_retrain_reproduces_the_claim(winner):
    path, rec = winner
    out = train_launcher.retrain(str(path))
    assert out["reproduced"] is True
    assert out["run_id"] == rec["run_id"] and out["accuracy"] == rec["accuracy"]
    assert (out["method"], out["init"], out["widths"]) == ("snip", "random", [4, 4, 4])
    assert out["numeric_path"]["kernel"] in ("fused", "xla")


def test_a_wrong_claim_is_not_reproduced(winner, tmp_path):
    path, rec = winner
    doc = json.loads(path.read_text())
    doc["model_nnz"] += 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert train_launcher.retrain(str(bad))["reproduced"] is False


@pytest.mark.parametrize("content,needle", [
    ("not json", "is not a JSON file"),
    ("[1, 2]", "must hold a JSON object"),
    (json.dumps({"config": CFG, "accuracy": "high", "model_nnz": 3}), "needs a number 'accuracy'"),
    (json.dumps({"config": {**CFG, "budget": 10_000}, "accuracy": 0.9, "model_nnz": 3}), "budget: must be in"),
    (json.dumps({**CFG, "colour": 1}), "colour: unknown config field"),
])
def test_bad_config_files_name_the_flag(tmp_path, content, needle):
    f = tmp_path / "c.json"
    f.write_text(content)
    with pytest.raises(ValueError, match="^--config: .*" + needle):
        train_launcher.load_claim(str(f))


def test_cli_prints_one_json_line(winner, tmp_path):
    path, rec = winner
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--config={path}"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["reproduced"] is True and out["model_nnz"] == rec["model_nnz"]
    bad = subprocess.run([sys.executable, "-m", "experiments.train", f"--config={path}", "--epochs=2"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--config" in bad.stderr


def _store_cli(*args, cwd):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "experiments.store", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_store_winner_writes_a_claim_that_retrains_on_the_same_numeric_path(winner, tmp_path):
    """``experiments.store winner`` turns a stored run into a winners file carrying its numeric
    path; retraining it reproduces the numbers and finds no path difference."""
    from sparsejax.sweep.store import Store
    _, rec = winner
    store = tmp_path / "s.sqlite"
    with Store(str(store)) as st:
        st.write_records([rec])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "toy_claim.json"
    args = [f"--store={store}", f"--run_id={rec['run_id']}", "--name=toy_claim", "--target=0.5", f"--out={out}"]
    proc = _store_cli("winner", *args, cwd=root)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["numeric_path"] == rec["numeric_path"] and doc["model_nnz"] == rec["model_nnz"]
    assert sorted(doc) == ["accuracy", "config", "model_nnz", "name", "numeric_path", "target"]
    got = train_launcher.retrain(str(out))
    assert got["reproduced"] is True and got["numeric_path_differences"] == []
    # another path is named in the retrain's output
    doc["numeric_path"] = {**doc["numeric_path"], "cpu_isa": "elsewhere"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    assert train_launcher.retrain(str(other))["numeric_path_differences"] == [
        f"cpu_isa: 'elsewhere' -> {rec['numeric_path']['cpu_isa']!r}"]
    # bad input: one line, exit 2, nothing written
    before = sorted(os.listdir(tmp_path))
    for bad, needle in [(args, "exists"),
                        ([a if not a.startswith("--run_id") else "--run_id=nope" for a in args[:-1]]
                         + [f"--out={tmp_path / 'x.json'}"], "not in"),
                        ([a if not a.startswith("--target") else "--target=0.9999" for a in args[:-1]]
                         + [f"--out={tmp_path / 'y.json'}"], "does not pass the target"),
                        ([a for a in args if not a.startswith("--name")], "--name is required")]:
        res = _store_cli("winner", *bad, cwd=root)
        assert res.returncode == 2 and needle in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr
    assert sorted(os.listdir(tmp_path)) == before
