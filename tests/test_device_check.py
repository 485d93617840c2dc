"""benchmarks/device_check.py on the CPU at its smallest scale: every section, the correctness
check against the committed CPU-XLA reference, and a failing section reported while the rest run."""
import json
import os

import pytest

from benchmarks import device_check

SMALL = ["--scale=0.01", "--kernels=auto", "--shapes=3x3x3", "--deadline_s=1200"]  # a bound, not a target


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dc")
    lines: list[str] = []
    result, path = device_check.run_check([f"--out={out}", *SMALL], echo=lines.append)
    return out, result, path


def test_every_section_runs_and_passes(small_run):
    out, result, path = small_run
    assert os.path.dirname(path) == str(out) and os.listdir(out) == [os.path.basename(path)]
    with open(path) as f:
        stored = json.load(f)
    assert set(stored["sections"]) == set(device_check.SECTIONS)
    for name in device_check.SECTIONS:
        assert stored["sections"][name]["status"] == "ok", (name, stored["sections"][name])
    assert stored["passed"] and stored["dry_run"]
    corr = stored["sections"]["correctness"]["result"]
    assert corr["passed"] and corr["kernels"]
    for kernel, res in corr["kernels"].items():
        assert res["runs"] >= 4 and res["max_abs_diff"] <= device_check.TOLERANCE, (kernel, res)
    sweep = stored["sections"]["sweep_slice"]["result"]
    assert sweep["stored"] == sweep["runs"] >= 8 and sweep["model_steps_per_s_end_to_end"] > 0
    rows = stored["sections"]["throughput"]["result"]["rows"]
    assert rows and all(r["best_model_steps_per_s"] > 0 and r["best_P"] == 1024 for r in rows)
    md = stored["markdown"]
    for needle in ("| section | status |", "Correctness", "Sweep slice", "Throughput", "3x3x3"):
        assert needle in md


def test_reference_mismatch_fails_the_check(small_run, tmp_path):
    """A reference whose numbers are off by more than the tolerance must fail the section."""
    with open(device_check.REFERENCE) as f:
        ref = json.load(f)
    for runs in ref["groups"].values():
        for rec in runs.values():
            rec["accuracy"] += 2e-4
    bad = tmp_path / "ref.json"
    bad.write_text(json.dumps(ref))
    out = tmp_path / "out"
    out.mkdir()
    result, _ = device_check.run_check([f"--out={out}", *SMALL, "--sections=correctness",
                                        f"--reference={bad}"], echo=lambda s: None)
    sec = result["sections"]["correctness"]
    assert sec["status"] == "failed" and not result["passed"]
    assert all(not k["passed"] and k["over_tolerance"] == k["runs"] for k in sec["result"]["kernels"].values())


def test_a_raising_section_is_reported_and_the_rest_run(small_run, tmp_path, monkeypatch):
    def boom(ctx):
        raise RuntimeError("injected failure")
    monkeypatch.setitem(device_check.SECTION_FNS, "sweep_slice", boom)
    result, path = device_check.run_check([f"--out={tmp_path}", *SMALL, "--sections=environment,sweep_slice,throughput"],
                                          echo=lambda s: None)
    secs = result["sections"]
    assert secs["sweep_slice"]["status"] == "failed"
    assert secs["sweep_slice"]["error"][-1] == "RuntimeError: injected failure"
    assert any("boom" in line for line in secs["sweep_slice"]["error"])
    assert secs["environment"]["status"] == "ok" and secs["throughput"]["status"] == "ok"
    assert secs["correctness"]["status"] == "not requested"
    assert not result["passed"] and os.path.exists(path)
    assert "| sweep_slice | failed |" in result["markdown"]


@pytest.mark.parametrize("argv", [["--scale=2"], ["--sections=nope"], ["--shapes=12"], [], ["--kernels=cuda"]])
def test_bad_input_exits_2_and_writes_nothing(argv, tmp_path, capsys):
    out = ["--out=" + str(tmp_path)] if argv else ["--out=" + str(tmp_path / "missing")]
    assert device_check.main(out + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("device_check: ")
    assert os.listdir(tmp_path) == []
