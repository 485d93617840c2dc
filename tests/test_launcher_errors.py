"""Every bad launch is ONE line on stderr, exit status 2, and no file written; --help works.

All launches run in one driver process that imports JAX once and forks a child per launch
(tests/launcher_driver.py); each launch gets its own empty working folder plus the input files
it needs, and the folder's listing (names, sizes, mtimes) must be the same afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(REPO, "tests", "launcher_driver.py")


# ----------------------------------------------------------------------------- inputs

def _good_state() -> dict:
    from sparsejax import mlp
    rng = np.random.default_rng(0)
    dims = (mlp.INPUT_DIM, 16, 16, 16, mlp.OUTPUT_DIM)
    return {f"{name}.{k}": (rng.standard_normal((dims[l + 1], dims[l])) if k == "weight"
                            else rng.standard_normal(dims[l + 1])).astype(np.float32)
            for l, name in enumerate(mlp.TORCH_NAMES_4) for k in ("weight", "bias")}


def _npz(kind: str):
    def make(d: str) -> None:
        state = _good_state()
        key = "first_layer.weight"
        if kind == "nan":
            state[key][0, 0] = np.nan
        elif kind == "int":
            state = {k: v.astype(np.int64) for k, v in state.items()}
        elif kind == "complex":
            state[key] = state[key].astype(np.complex64) + 1j
        elif kind == "float16":
            state[key] = state[key].astype(np.float16)
        np.savez(os.path.join(d, f"{kind}.npz"), **state)
    return make


def _empty_store(d: str) -> None:
    from sparsejax.sweep.store import Store
    Store(os.path.join(d, "empty.sqlite"), create=True).close()


def _folder(d: str) -> None:
    os.mkdir(os.path.join(d, "d"))


def _file(d: str) -> None:
    with open(os.path.join(d, "f"), "w") as fh:
        fh.write("x")


# id -> (module, args ("{d}" is the working folder), setups, text the error line must contain)
BAD = {
    "comb_search_huge_width": ("experiments.comb_search", ["--width=1000", "--dry_run"], [], "--width"),
    "prune_sweep_huge_width_range": ("experiments.prune_sweep", ["--widths=1..10000000", "--dry_run"], [],
                                     "--widths"),
    "prune_sweep_huge_budget_range": ("experiments.prune_sweep", ["--budgets=1..10000000", "--dry_run"], [],
                                      "--budgets"),
    "prune_sweep_negative_data_seed": ("experiments.prune_sweep", ["--data_seed=-1", "--dry_run"], [], "--data_seed"),
    "comb_search_negative_data_seed": ("experiments.comb_search", ["--data_seed=-3", "--dry_run"], [], "--data_seed"),
    "prune_sweep_init_dev_null": ("experiments.prune_sweep", ["--init=/dev/null", "--dry_run"], [], "--init"),
    "comb_search_init_dev_null": ("experiments.comb_search", ["--phase=2", "--config=3,2,2", "--init=/dev/null",
                                                              "--dry_run"], [], "--init"),
    "view_npz_dev_null": ("experiments.view", ["--npz=/dev/null"], [], "/dev/null"),
    "train_output_is_folder": ("experiments.train", ["--output={d}/d", "--epochs=1"], [_folder], "--output"),
    "view_port_out_of_range": ("experiments.view", ["--npz={d}/good.npz", "--serve", "--port=99999"],
                               [_npz("good")], "--port"),
    "reproduce_out_below_a_file": ("experiments.reproduce", ["--out={d}/f/sub", "--dry_run"], [_file], "--out"),
    "prune_sweep_store_dev_null": ("experiments.prune_sweep", ["--store=/dev/null", "--preset=smoke"], [],
                                   "--store"),
    "prune_sweep_store_dev_null_dry": ("experiments.prune_sweep", ["--store=/dev/null", "--dry_run"], [],
                                       "--store"),
    "comb_search_store_dev_null": ("experiments.comb_search", ["--store=/dev/null", "--preset=smoke"], [],
                                   "--store"),
    "train_store_dev_null": ("experiments.train", ["--store=/dev/null", "--epochs=1"], [], "--store"),
    "figures_store_dev_null": ("experiments.figures", ["--store=/dev/null", "--out={d}/o"], [], "--store"),
    "init_with_nan": ("experiments.prune_sweep", ["--init={d}/nan.npz", "--dry_run"], [_npz("nan")], "NaN"),
    "init_int": ("experiments.prune_sweep", ["--init={d}/int.npz", "--dry_run"], [_npz("int")], "dtype int64"),
    "init_complex": ("experiments.comb_search", ["--phase=2", "--config=3,2,2", "--init={d}/complex.npz",
                                                 "--dry_run"], [_npz("complex")], "dtype complex"),
    "init_float16": ("experiments.prune_sweep", ["--init={d}/float16.npz", "--dry_run"], [_npz("float16")],
                     "dtype float16"),
    "fullwidth_digit_prune": ("experiments.prune_sweep", ["--widths=\uff14", "--dry_run"], [], "--widths"),
    "fullwidth_digit_train": ("experiments.train", ["--widths=\uff14", "--dry_run"], [], "--widths"),
    "fullwidth_digit_float": ("experiments.train", ["--lrs=0.\uff11", "--dry_run"], [], "--lrs"),
    "figures_empty_store": ("experiments.figures", ["--store={d}/empty.sqlite", "--out={d}/o"], [_empty_store],
                            "no runs"),
    "budget_above_every_width": ("experiments.prune_sweep", ["--widths=4", "--budgets=30,5000", "--dry_run"], [],
                                 "--budgets: 5000"),
    "method_without_any_budget": ("experiments.prune_sweep", ["--methods=dense,gmp", "--widths=4",
                                                              "--budgets=1000", "--dry_run"], [], "--methods: gmp"),
    "store_export_out_is_folder": ("experiments.store", ["export", "--store={d}/empty.sqlite", "--out={d}/d"],
                                   [_empty_store, _folder], "--out"),
}
# launches that must succeed (checked by their own tests below)
GOOD = {
    "explicit_drops_are_reported": ("experiments.prune_sweep", ["--methods=dense,gmp", "--widths=4,16",
                                                                "--budgets=30,100", "--dry_run"], []),
    "paper_grid_drops_silently": ("experiments.prune_sweep", ["--preset=paper_random", "--methods=gmp",
                                                              "--dry_run"], []),
    "train_density_one": ("experiments.train", ["--densities=0.5,1.0", "--widths=2", "--seeds=0", "--epochs=1",
                                                "--dry_run"], []),
    "train_diverging_lr": ("experiments.train", ["--lrs=50", "--masks=dense", "--widths=2", "--seeds=0",
                                                 "--epochs=1", "--output={d}/t.jsonl"], []),
}
LAUNCHERS = {  # launcher -> names its --help must show besides the common flags
    "experiments.train": ["readme", "smoke", "--population_size"],
    "experiments.comb_search": ["smoke", "bench95", "paper995", "--population_size"],
    "experiments.prune_sweep": ["smoke", "paper_random", "bench995", "--population_size"],
    "experiments.reproduce": ["demo", "paper", "--out"],
    "experiments.figures": ["--out"],
    "experiments.view": ["--out", "--port"],
    "experiments.store": ["--out", "--format", "--inputs"],
}
HELP = {f"help_{m.split('.')[1]}": (m, ["--help"], []) for m in LAUNCHERS}
KNOWN_GAPS: dict[str, str] = {}  # launches whose fix is in a file this suite's author does not own


def _listing(root: str) -> list[tuple]:
    out = []
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(base, name)
            st = os.lstat(p)
            out.append((os.path.relpath(p, root), st.st_size, st.st_mtime_ns))
    return sorted(out)


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    """Run every launch once; {case id: (result, folder, listing before)}."""
    root = tmp_path_factory.mktemp("launches")
    cases, meta = [], {}
    journal_before = os.path.exists("/dev/null-journal")
    for cid, spec in {**BAD, **GOOD, **HELP}.items():
        module, args, setups = spec[0], spec[1], spec[2]
        d = root / cid
        d.mkdir()
        for setup in setups:
            setup(str(d))
        before = _listing(str(d))
        cases.append({"module": module, "args": [a.replace("{d}", str(d)) for a in args], "cwd": str(d),
                      "out": str(root / f"_streams_{cid}")})
        meta[cid] = (str(d), before)
    cases_path, results_path = root / "_cases.json", root / "_results.json"
    cases_path.write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, DRIVER, str(cases_path), str(results_path)], check=True, cwd=REPO, env=env,
                   timeout=600)
    results = json.loads(results_path.read_text())
    assert os.path.exists("/dev/null-journal") == journal_before  # --store=/dev/null wrote nothing beside it
    return {cid: (res, *meta[cid]) for cid, res in zip(meta, results)}


@pytest.mark.parametrize("cid", sorted(BAD))
def test_bad_launch_is_one_line_exit_2_nothing_written(launches, cid):
    if cid in KNOWN_GAPS:
        pytest.xfail(KNOWN_GAPS[cid])
    res, folder, before = launches[cid]
    lines = res["stderr"].splitlines()
    assert res["rc"] == 2, res
    assert len(lines) == 1 and lines[0].startswith("error: "), res["stderr"]
    assert BAD[cid][3] in lines[0], lines[0]
    assert res["stdout"] == ""
    assert _listing(folder) == before


@pytest.mark.parametrize("cid", sorted(HELP))
def test_help_lists_the_common_flags_and_presets_and_exits_0(launches, cid):
    res, folder, before = launches[cid]
    assert res["rc"] == 0 and res["stderr"] == "", res
    for needle in ["--store", "--preset", "--[no]dry_run", *LAUNCHERS[HELP[cid][0]]]:  # absl shows booleans so
        assert needle in res["stdout"], (needle, res["stdout"][:3000])
    assert _listing(folder) == before


def test_explicit_flags_report_their_dropped_combinations(launches):
    res, folder, before = launches["explicit_drops_are_reported"]
    assert res["rc"] == 0, res
    assert res["stderr"].splitlines() == [
        "note: dropped 1 (method, width, budget) combinations whose budget is at or above the width's weight "
        "count: (gmp, 4, 100)"]
    # dense once per width + gmp: (4, 30), (16, 30), (16, 100) x 3 lrs x 3 schedules
    assert "runs: total=45 " in res["stdout"]
    assert _listing(folder) == before


def test_preset_grid_drops_budgets_silently(launches):
    res, _, _ = launches["paper_grid_drops_silently"]
    assert res["rc"] == 0 and res["stderr"] == "", res


def test_diverging_run_is_null_in_jsonl_not_nan(launches):
    res, folder, _ = launches["train_diverging_lr"]
    assert res["rc"] == 0, res

    def no_constants(token: str):
        raise AssertionError(f"non-JSON constant {token} in the JSONL")
    text = open(os.path.join(folder, "t.jsonl"), encoding="utf-8").read()
    rows = [json.loads(line, parse_constant=no_constants) for line in text.splitlines()]
    assert len(rows) == 1 and rows[0]["diverged"] is True
    assert oct(os.stat(os.path.join(folder, "t.jsonl")).st_mode & 0o777) == "0o644"


def test_density_one_is_the_dense_network(launches):
    res, folder, before = launches["train_density_one"]
    assert res["rc"] == 0 and res["stderr"] == "", res
    assert res["stdout"].startswith("runs: total=2;"), res["stdout"]
    assert _listing(folder) == before
