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
