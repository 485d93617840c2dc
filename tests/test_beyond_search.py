"""Issue #15: sampling levels without replacement, configurations near the frontier, the Pareto
frontier on synthetic records, and the beyond_search launcher (bad inputs: one stderr line,
exit 2, nothing written; one tiny launch end to end that writes its winner)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sparsejax import mlp
from sparsejax.search import beyond, halving
from sparsejax.search.product import MaskSpace
from sparsejax.sweep import identity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(REPO, "tests", "launcher_driver.py")


def test_sample_level_is_uniform_without_replacement_deterministic_and_nested():
    space = MaskSpace((3, 3, 3))
    lv = space.nnz_levels()
    i = int(np.flatnonzero(lv.nnz == 28)[0])
    start, count = int(lv.start[i]), int(lv.count[i])
    a = beyond.sample_level(space, 28, 500, seed=3)
    assert len(a) == 500 == len(set(a.tolist()))                      # without replacement
    assert (a >= start).all() and (a < start + count).all()           # inside the level
    assert (space.model_nnz(a) == 28).all()                           # independent: decode nnz
    np.testing.assert_array_equal(a, beyond.sample_level(space, 28, 500, seed=3))  # deterministic
    np.testing.assert_array_equal(a[:100], beyond.sample_level(space, 28, 100, seed=3))  # nested
    assert not np.array_equal(a, beyond.sample_level(space, 28, 500, seed=4))
    np.testing.assert_array_equal(beyond.sample_level(space, 22, 10, seed=0), np.arange(lv.start[0], lv.start[0] + 2))
    # uniform: over many seeds every index of a small level is drawn about equally often
    hits = np.zeros(39)
    base = int(lv.start[1])
    for seed in range(600):
        hits[beyond.sample_level(space, 23, 13, seed) - base] += 1
    assert hits.sum() == 600 * 13 and hits.min() > 120 and hits.max() < 280  # mean 200
    with pytest.raises(ValueError, match="no level 5"):
        beyond.sample_level(space, 5, 1, 0)


def test_structures_near_is_every_configuration_within_the_slack():
    got = beyond.structures_near((3, 3, 3), 2, width=5, min_units=2)
    brute = sorted(((a, b, c) for a in range(2, 6) for b in range(2, 6) for c in range(2, 6)
                    if 2 * a + a * b + b * c + c + a + b + c + 1 <= 39), key=lambda t: (mlp.structured_nnz(t), t))
    assert got == brute and (3, 3, 3) in got and (3, 2, 2) in got


def test_mask_configs_seed_changes_the_run_id():
    cfgs = beyond.mask_configs((3, 2, 2), [5], [0.1], ["cosine"], [0, 1])
    assert len({identity.run_id(c) for c in cfgs}) == 2


def _rec(rid, nnz, acc, diverged=False):
    return {"run_id": rid, "model_nnz": nnz, "accuracy": acc, "diverged": diverged}


def test_frontier_and_sparsest_on_synthetic_records():
    recs = [_rec("a", 25, 0.90), _rec("b", 25, 0.93), _rec("c", 26, 0.92), _rec("d", 27, 0.951),
            _rec("e", 27, 0.951), _rec("f", 24, 0.99, diverged=True), _rec("g", 28, float("nan")),
            _rec("h", 29, 0.97), _rec("i", 23, 0.5)]
    assert halving.frontier(recs) == [
        {"model_nnz": 23, "accuracy": 0.5, "run_id": "i"}, {"model_nnz": 25, "accuracy": 0.93, "run_id": "b"},
        {"model_nnz": 27, "accuracy": 0.951, "run_id": "d"}, {"model_nnz": 29, "accuracy": 0.97, "run_id": "h"}]
    assert halving.sparsest_reaching(recs, 0.95)["run_id"] == "d"
    assert halving.sparsest_reaching(recs, 0.951) is not None and halving.sparsest_reaching(recs, 0.951)["run_id"] == "h"
    assert halving.sparsest_reaching(recs, 0.99) is None  # the diverged 0.99 does not count
    assert halving.frontier([]) == []


BAD = {
    "no_budget": (["--store={d}/s.sqlite"], "--budget_model_steps"),
    "target": (["--target=1.5", "--budget_model_steps=100", "--store={d}/s.sqlite"], "--target"),
    "structures": (["--structures=3x3", "--budget_model_steps=100", "--store={d}/s.sqlite"], "--structures"),
    "rungs": (["--rungs=5,3", "--budget_model_steps=100", "--store={d}/s.sqlite"], "rungs"),
    "keep": (["--keep=0", "--budget_model_steps=100", "--store={d}/s.sqlite"], "keep"),
    "levels": (["--min_nnz=29", "--max_nnz=25", "--budget_model_steps=100", "--store={d}/s.sqlite"], "--min_nnz"),
    "empty_levels": (["--structures=2x2x2", "--min_nnz=40", "--max_nnz=44", "--budget_model_steps=100",
                      "--store={d}/s.sqlite"], "no configuration"),
    "small_budget": (["--budget_model_steps=100", "--store={d}/s.sqlite", "--winners_dir={d}/w"],
                     "--budget_model_steps"),
    "store_dir": (["--budget_model_steps=100", "--store={d}"], "--store"),
    "winners_dir": (["--budget_model_steps=10000000", "--store={d}/s.sqlite", "--winners_dir=/dev/null/w"],
                    "--winners_dir"),
    "name": (["--budget_model_steps=10000000", "--store={d}/s.sqlite", "--name=a/b"], "--name"),
    "schedule": (["--schedules=linear", "--budget_model_steps=100", "--store={d}/s.sqlite"], "--schedules"),
}


def _listing(root):
    return sorted((os.path.relpath(os.path.join(b, n), root), os.lstat(os.path.join(b, n)).st_size)
                  for b, ds, fs in os.walk(root) for n in ds + fs)


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    root = tmp_path_factory.mktemp("beyond")
    cases = []
    good = ["--structures=2x2x2", "--min_nnz=16", "--max_nnz=16", "--masks_per_level=1", "--lrs=0.1",
            "--schedules=cosine", "--rungs=1,2", "--keep=1", "--reseed_top=0", "--target=0.3",
            "--budget_model_steps=100000", "--store={d}/s.sqlite", "--winners_dir={d}/w", "--name=tiny"]
    for cid, (args, _) in {**BAD, "good": (good, "")}.items():
        d = root / cid
        d.mkdir()
        cases.append({"module": "experiments.beyond_search", "args": [a.replace("{d}", str(d)) for a in args],
                      "cwd": str(d), "out": str(root / f"_streams_{cid}")})
    (root / "_cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, DRIVER, str(root / "_cases.json"), str(root / "_results.json")], check=True,
                   cwd=REPO, env=env, timeout=900)
    results = json.loads((root / "_results.json").read_text())
    return {c["cwd"].rsplit("/", 1)[1]: (r, c["cwd"]) for c, r in zip(cases, results)}


@pytest.mark.parametrize("cid", sorted(BAD))
def test_bad_launch_is_one_line_exit_2_nothing_written(launches, cid):
    res, folder = launches[cid]
    lines = res["stderr"].splitlines()
    assert res["rc"] == 2, res
    assert len(lines) == 1 and lines[0].startswith("error: ") and BAD[cid][1] in lines[0], res["stderr"]
    assert _listing(folder) == []


def test_tiny_launch_writes_its_winner(launches):
    res, folder = launches["good"]
    assert res["rc"] == 0, res["stderr"][-2000:]
    assert "frontier (model nnz: best accuracy): 16:" in res["stdout"]
    body = json.loads(open(os.path.join(folder, "w", "tiny.json")).read())
    assert set(body) == {"name", "target", "accuracy", "model_nnz", "config"}
    assert body["model_nnz"] == 16 and body["accuracy"] > 0.3 and body["target"] == 0.3
    from sparsejax.sweep.store import Store
    with Store(os.path.join(folder, "s.sqlite"), create=False) as st:
        rec = st.get(identity.run_id(body["config"]))
    assert rec["accuracy"] == body["accuracy"] and rec["metrics"]["halving"]["passed"] == [1]
