r"""Regenerate every figure a sweep store allows and one self-contained HTML report.

  python -m experiments.figures --store=S.sqlite --out=DIR [--mc_trials=2000] [--noconnectivity]
  python -m experiments.figures --preset=demo      # reads out/demo/store.sqlite, writes into out/demo

Writes ``DIR/*.png``, ``DIR/*.svg``, ``DIR/table1_flops.csv`` and ``DIR/report.html`` (figures
embedded, our headline numbers next to the paper's), each atomically with mode 0644, then prints
the report's path. Figures an earlier report left in DIR are removed. Bad input (no store, a file
that is not a store, a store without runs, an unusable --out) gives one line on stderr and exit
status 2, with nothing written; --dry_run checks the input and says what would be written.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Sequence

from absl import flags

from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import store as store_lib

sweep_flags.define_common_flags(
    store_help="Sweep store file to read (default with --preset: out/<preset>/store.sqlite).",
    preset_help="Read out/<preset>/store.sqlite and write into out/<preset> (a launcher's preset, "
                "e.g. demo, paper, smoke, bench95, bench995); explicit --store/--out win.",
    dry_run_help="Check the input and print what would be written; write nothing.")
_OUT = flags.DEFINE_string("out", None, "Output folder (created if missing; default with --preset: out/<preset>).")
_MC_TRIALS = flags.DEFINE_integer("mc_trials", 2000, "Monte Carlo trials per width for the Theorem L.1 figure.")
_CONNECTIVITY = flags.DEFINE_boolean("connectivity", True,
                                     "Compute effective/direct counts from stored masks where records lack them.")
_AFTER_TRAINING = flags.DEFINE_boolean("after_training", True,
                                       "Magnitude-prune the 99.5% search winner after training for the report.")
FLAGS = flags.FLAGS


def check(store: str | None, out: str | None, mc_trials: int, preset: str | None = None) -> tuple[str, str, int]:
    """Validate the flags without writing anything; returns (store, out, runs in the store)."""
    if preset is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", preset):
        raise ValueError(f"--preset: {preset!r} is not a preset name (letters, digits, _ and -)")
    if preset:
        store = store or os.path.join(sweep_flags.preset_out(preset), "store.sqlite")
        out = out or sweep_flags.preset_out(preset)
    if not store:
        raise ValueError("--store: required (a sweep store file), or --preset")
    if not out:
        raise ValueError("--out: required (the folder for the figures and report.html), or --preset")
    if mc_trials < 1:
        raise ValueError(f"--mc_trials: must be >= 1, got {mc_trials}")
    if not os.path.exists(store):
        raise ValueError(f"--store: {store}: no such file")
    sweep_flags.check_store_path(store)
    try:
        with store_lib.Store(store, create=False) as st:
            n = st.count()
    except store_lib.StoreError as err:
        raise ValueError(f"--store={store}: {err}") from None
    if n == 0:
        raise ValueError(f"--store={store}: the store holds no runs; nothing to draw")
    sweep_flags.check_output_dir("out", out)
    return store, out, n


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise ValueError(f"arguments: unexpected {' '.join(argv[1:])!r}; use --store and --out")
    store, out, n = check(FLAGS.store, _OUT.value, _MC_TRIALS.value, FLAGS.preset)
    if FLAGS.dry_run:
        print(f"would write the figures and report.html of {n} runs of {store} into {out}")
        return 0
    from sparsejax.viz import report  # heavy imports only once the input is known to be good

    path = report.build_report(store, out, mc_trials=_MC_TRIALS.value, connectivity=_CONNECTIVITY.value,
                               after_training=_AFTER_TRAINING.value,
                               log=lambda s: print(s, file=sys.stderr, flush=True))
    print(path)
    return 0


if __name__ == "__main__":
    sweep_flags.run(main)
