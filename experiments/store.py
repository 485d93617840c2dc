r"""Export, merge or verify sweep stores.

  python -m experiments.store export --store=S.sqlite --format=csv|jsonl [--out=FILE]
  python -m experiments.store merge --store=DEST.sqlite --inputs=A.sqlite,B.sqlite
  python -m experiments.store verify --store=S.sqlite
  python -m experiments.store winner --store=S.sqlite --run_id=ID --name=NAME --target=0.95 \
      [--out=experiments/winners/NAME.json]

``export`` writes the flat table (stdout without ``--out``; a file is written atomically),
including each run's numeric path (``numeric_path.*`` columns). ``merge`` copies every
verified run of the inputs into DEST (created if missing), never twice, and prints the counts
as JSON; rows whose id does not hash from their config (or that are damaged) are never kept,
and any such row or any conflict (same id, other numbers or masks) is listed on stderr and
ends with a summary line and exit status 1. ``verify`` checks every record's checksum, id and
blobs plus SQLite's integrity check, prints a summary, and exits 0 if clean, 1 if damage was
found. ``winner`` writes the winners file of one stored run (its full resolved config, accuracy,
model nnz and numeric path; default ``experiments/winners/<name>.json``, atomically, never over
an existing file): ``python -m experiments.train --config=FILE`` retrains it. Stores are read read-only (read-only media work). Bad input gives one line on stderr
and exit status 2, with nothing written. ``--dry_run`` checks the input and says what export or
merge would write, writing nothing; this tool has no presets (``--preset`` is refused).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from absl import flags

from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import store as store_lib

COMMANDS = ("export", "merge", "verify", "winner")
EXIT_DAMAGE = 1
SHOWN_PROBLEMS = 20  # problem lines printed before "... and N more"

sweep_flags.define_common_flags(
    store_help="Store file (export, verify: read; merge: destination).",
    dry_run_help="Check the input and print what export, merge or winner would write; write nothing.",
    preset_help="Not used: this tool has no presets (a value is refused).")
_FORMAT = flags.DEFINE_string("format", "csv", "export: csv or jsonl.")
_OUT = flags.DEFINE_string("out", None, "export: output file (default: stdout); winner: the winners file "
                           "(default: experiments/winners/<name>.json).")
_INPUTS = flags.DEFINE_list("inputs", [], "merge: comma-separated source store files.")
_RUN_ID = flags.DEFINE_string("run_id", None, "winner: the stored run to claim.")
_NAME = flags.DEFINE_string("name", None, "winner: the claim's name (the file's stem).")
_TARGET = flags.DEFINE_float("target", None, "winner: the accuracy the run passes (strictly), in (0, 1].")


class CliError(Exception):
    """Bad command-line input: reported as one line on stderr."""


def _check_store(path: str | None, flag: str, must_exist: bool) -> str:
    """Validate a store path without modifying anything; return it."""
    if not path:
        raise CliError(f"{flag} is required: a sweep store file")
    if not os.path.exists(path):
        if must_exist:
            raise CliError(f"{flag}={path}: no such file")
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise CliError(f"{flag}={path}: its directory does not exist")
        return path
    try:
        store_lib.Store(path, create=False).close()
    except store_lib.StoreError as err:
        raise CliError(f"{flag}={path}: {err}") from None
    return path


def run_export(store: str | None, fmt: str, out: str | None, dry_run: bool = False) -> int:
    """Check the flags, then export the store's flat table to ``out`` or stdout."""
    if fmt not in store_lib.FORMATS:
        raise CliError(f"--format={fmt!r} is not supported; allowed: {', '.join(store_lib.FORMATS)}")
    path = _check_store(store, "--store", must_exist=True)
    if out and os.path.isdir(out):
        raise CliError(f"--out={out}: is a folder; give a file path for the exported table")
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise CliError(f"--out={out}: its directory does not exist")
    if dry_run:
        with store_lib.Store(path, create=False) as st:
            n = st.count()
        print(f"dry run: would export {n} runs as {fmt} to {out or 'stdout'}")
        return 0
    n = store_lib.export(path, out if out else sys.stdout, fmt)
    if out:
        print(f"exported {n} runs to {out}", file=sys.stderr)
    return 0


def _print_problems(problems: Sequence[str]) -> None:
    """The first SHOWN_PROBLEMS lines on stderr, then how many more there were."""
    for line in problems[:SHOWN_PROBLEMS]:
        print(line, file=sys.stderr)
    if len(problems) > SHOWN_PROBLEMS:
        print(f"... and {len(problems) - SHOWN_PROBLEMS} more", file=sys.stderr)


def run_merge(store: str | None, inputs: Sequence[str], dry_run: bool = False) -> int:
    """Check the flags, then merge ``inputs`` into ``store`` and print the counts as JSON;
    status 1 (problems and a summary line on stderr) on any conflict or rejected row."""
    inputs = [p for p in inputs if p]
    if not inputs:
        raise CliError("--inputs is required for merge: a comma-separated list of store files")
    dest = _check_store(store, "--store", must_exist=False)
    for src in inputs:
        _check_store(src, "--inputs", must_exist=True)
        if os.path.exists(dest) and os.path.samefile(src, dest):
            raise CliError(f"--inputs={src}: is the destination --store itself")
    if dry_run:
        n = 0
        for src in inputs:
            with store_lib.Store(src, create=False) as st:
                n += st.count()
        print(f"dry run: would merge {n} records from {len(inputs)} stores into {dest}")
        return 0
    counts = store_lib.merge(dest, inputs)
    print(json.dumps({**counts, "rejected": counts.rejected}))
    if counts.ok:
        return 0
    _print_problems(counts.problems)
    print(f"merge: {counts['conflicts']} conflicting runs (the first copy kept), "
          f"{counts.rejected} rows rejected (id does not match config, or damaged) and not kept; "
          f"{counts['inserted']} runs inserted", file=sys.stderr)
    return EXIT_DAMAGE


def run_verify(store: str | None) -> int:
    """Check every record of ``store`` (read-only); status 0 if clean, 1 if damage found."""
    path = _check_store(store, "--store", must_exist=True)
    report = store_lib.verify(path)
    problems = [f"run {rid}: {'; '.join(found)}" for rid, found in report["damaged"]]
    problems += [f"sqlite integrity: {line}" for line in report["integrity"]]
    _print_problems(problems)
    unchecked = (f"; {report['unchecksummed']} records have no checksum (schema 1 store: opening it "
                 "for writing adds them)" if report["unchecksummed"] else "")
    status = "ok" if report["ok"] else "DAMAGED"
    print(f"verify: {status}: {report['records']} records, {len(report['damaged'])} damaged, "
          f"sqlite integrity {'ok' if not report['integrity'] else 'FAILED'}{unchecked}")
    return 0 if report["ok"] else EXIT_DAMAGE


def run_winner(store: str | None, run_id: str | None, name: str | None, target: float | None,
               out: str | None, dry_run: bool = False) -> int:
    """Check the flags, then write the winners file of run ``run_id`` of ``store``."""
    from sparsejax import fileio
    from sparsejax.analysis import winners as winners_lib
    path = _check_store(store, "--store", must_exist=True)
    for flag, value in (("--run_id", run_id), ("--name", name), ("--target", target)):
        if value in (None, ""):
            raise CliError(f"{flag} is required for winner")
    out = out or os.path.join(winners_lib.DEFAULT_DIR, f"{name}.json")
    if os.path.exists(out):
        raise CliError(f"--out={out}: exists; a claim is never overwritten (remove it first)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise CliError(f"--out={out}: its directory does not exist")
    with store_lib.Store(path, create=False) as st:
        found = st.records([run_id])  # scalars only: a claim needs no masks or params
    if not found:
        raise CliError(f"--run_id={run_id}: not in {path}")
    record = found[0]
    try:
        doc = winners_lib.winner_doc(record, name, target)
    except ValueError as err:
        raise CliError(f"winner: {' '.join(str(err).split())}") from None
    if dry_run:
        print(f"dry run: would write {out}: {doc['accuracy']:.4f} at {doc['model_nnz']} model nnz")
        return 0
    fileio.atomic_write_text(out, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(json.dumps({"wrote": out, "run_id": run_id, "accuracy": doc["accuracy"], "model_nnz": doc["model_nnz"]}))
    return 0


def run(argv: Sequence[str]) -> int:
    """Dispatch the subcommand in ``argv[1]``; bad input → one stderr line and status 2."""
    try:
        if len(argv) != 2 or argv[1] not in COMMANDS:
            got = " ".join(argv[1:]) or "nothing"
            raise CliError(f"command: got {got!r}; use exactly one of: {', '.join(COMMANDS)}")
        fv = flags.FLAGS
        if fv.preset:
            raise CliError(f"--preset={fv.preset}: experiments.store has no presets")
        if argv[1] == "export":
            return run_export(fv.store, _FORMAT.value, _OUT.value, fv.dry_run)
        if argv[1] == "verify":
            return run_verify(fv.store)
        if argv[1] == "winner":
            return run_winner(fv.store, _RUN_ID.value, _NAME.value, _TARGET.value, _OUT.value, fv.dry_run)
        return run_merge(fv.store, _INPUTS.value, fv.dry_run)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except store_lib.StoreError as err:  # damage found while reading (DamagedRecordError, ...)
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_DAMAGE


def main(argv: Sequence[str]) -> int:
    return run(argv)


if __name__ == "__main__":
    sweep_flags.run(main)
