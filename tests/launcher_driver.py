"""Run many launcher invocations fast: import JAX once, then fork one child per invocation.

    python tests/launcher_driver.py CASES.json RESULTS.json

CASES.json is a list of ``{"module": "experiments.train", "args": [...], "cwd": DIR, "out": DIR}``.
Each child changes to ``cwd``, sends stdout/stderr to files under ``out`` and runs the module
as ``__main__`` (as ``python -m`` would, so absl parses ``args``); the parent records the exit
status and both streams. Used by tests/test_launcher_errors.py: a subprocess per case would
pay the ~2 s JAX import each time.
"""
from __future__ import annotations

import json
import os
import runpy
import sys
import warnings


def _child(case: dict) -> None:
    out = case["out"]
    os.makedirs(out, exist_ok=True)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        f = os.open(os.path.join(out, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.chdir(case["cwd"])
    sys.argv = [case["module"], *case["args"]]
    code = 0
    try:
        runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:  # a traceback is a failure the test reports
        import traceback
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(cases_path: str, results_path: str) -> None:
    warnings.simplefilter("default")
    import jax  # noqa: F401  (the expensive imports, shared by every child)
    import jax.numpy  # noqa: F401
    from absl import app, flags, logging  # noqa: F401
    from sparsejax import mlp, runs  # noqa: F401
    from sparsejax.sweep import flags as _f, plan, runner, store  # noqa: F401
    with open(cases_path) as fh:
        cases = json.load(fh)
    results = []
    for case in cases:
        pid = os.fork()
        if pid == 0:
            _child(case)
        _, status = os.waitpid(pid, 0)
        read = lambda name: open(os.path.join(case["out"], name), encoding="utf-8", errors="replace").read()
        results.append({"rc": os.waitstatus_to_exitcode(status), "stdout": read("stdout"), "stderr": read("stderr")})
    with open(results_path, "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
