r"""Regenerate every figure a sweep store allows and one self-contained HTML report.

  python -m experiments.figures --store=S.sqlite --out=DIR [--mc_trials=2000] [--noconnectivity]

Writes ``DIR/*.png``, ``DIR/*.svg``, ``DIR/table1_flops.csv`` and ``DIR/report.html`` (figures
embedded, our headline numbers next to the paper's), then prints the report's path. Bad input
(no store, a file that is not a store, an unusable --out) gives one line on stderr and exit
status 2, with nothing written.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import app, flags

from sparsejax.sweep import store as store_lib

_STORE = flags.DEFINE_string("store", None, "Sweep store file to read.")
_OUT = flags.DEFINE_string("out", None, "Output folder (created if missing).")
_MC_TRIALS = flags.DEFINE_integer("mc_trials", 2000, "Monte Carlo trials per width for the Theorem L.1 figure.")
_CONNECTIVITY = flags.DEFINE_boolean("connectivity", True,
                                     "Compute effective/direct counts from stored masks where records lack them.")
_AFTER_TRAINING = flags.DEFINE_boolean("after_training", True,
                                       "Magnitude-prune the 99.5% search winner after training for the report.")


class CliError(Exception):
    """Bad command-line input: reported as one line on stderr."""


def check(store: str | None, out: str | None, mc_trials: int) -> tuple[str, str]:
    """Validate the flags without writing anything; returns (store, out)."""
    if not store:
        raise CliError("--store is required: a sweep store file")
    if not out:
        raise CliError("--out is required: the folder for the figures and report.html")
    if mc_trials < 1:
        raise CliError(f"--mc_trials must be >= 1, got {mc_trials}")
    try:
        store_lib.Store(store, create=False).close()
    except store_lib.StoreError as err:
        raise CliError(f"--store={store}: {err}") from None
    if os.path.exists(out) and not os.path.isdir(out):
        raise CliError(f"--out={out}: exists and is not a folder")
    return store, out


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])!r}; use --store and --out", file=sys.stderr)
        return 2
    try:
        store, out = check(_STORE.value, _OUT.value, _MC_TRIALS.value)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from sparsejax.viz import report  # heavy imports only once the input is known to be good

    try:
        path = report.build_report(store, out, mc_trials=_MC_TRIALS.value, connectivity=_CONNECTIVITY.value,
                                   after_training=_AFTER_TRAINING.value,
                                   log=lambda s: print(s, file=sys.stderr, flush=True))
    except (store_lib.StoreError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    app.run(main)
