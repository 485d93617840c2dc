r"""Export or merge sweep stores.

  python -m experiments.store export --store=S.sqlite --format=csv|jsonl [--out=FILE]
  python -m experiments.store merge --store=DEST.sqlite --inputs=A.sqlite,B.sqlite

``export`` writes the flat table (stdout without ``--out``; a file is written atomically).
``merge`` copies every run of the inputs into DEST (created if missing), never twice, and
prints the counts. Bad input gives one line on stderr and exit status 2, with nothing written.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from absl import app, flags

from sparsejax.sweep import store as store_lib

COMMANDS = ("export", "merge")

_STORE = flags.DEFINE_string("store", None, "Store file (export: read; merge: destination).")
_FORMAT = flags.DEFINE_string("format", "csv", "export: csv or jsonl.")
_OUT = flags.DEFINE_string("out", None, "export: output file (default: stdout).")
_INPUTS = flags.DEFINE_list("inputs", [], "merge: comma-separated source store files.")


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


def run_export(store: str | None, fmt: str, out: str | None) -> int:
    """Check the flags, then export the store's flat table to ``out`` or stdout."""
    if fmt not in store_lib.FORMATS:
        raise CliError(f"--format={fmt!r} is not supported; allowed: {', '.join(store_lib.FORMATS)}")
    path = _check_store(store, "--store", must_exist=True)
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise CliError(f"--out={out}: its directory does not exist")
    n = store_lib.export(path, out if out else sys.stdout, fmt)
    if out:
        print(f"exported {n} runs to {out}", file=sys.stderr)
    return 0


def run_merge(store: str | None, inputs: Sequence[str]) -> int:
    """Check the flags, then merge ``inputs`` into ``store`` and print the counts as JSON."""
    inputs = [p for p in inputs if p]
    if not inputs:
        raise CliError("--inputs is required for merge: a comma-separated list of store files")
    dest = _check_store(store, "--store", must_exist=False)
    for src in inputs:
        _check_store(src, "--inputs", must_exist=True)
        if os.path.exists(dest) and os.path.samefile(src, dest):
            raise CliError(f"--inputs={src}: is the destination --store itself")
    print(json.dumps(store_lib.merge(dest, inputs)))
    return 0


def run(argv: Sequence[str]) -> int:
    """Dispatch the subcommand in ``argv[1]``; bad input → one stderr line and status 2."""
    try:
        if len(argv) != 2 or argv[1] not in COMMANDS:
            got = " ".join(argv[1:]) or "nothing"
            raise CliError(f"command: got {got!r}; use exactly one of: {', '.join(COMMANDS)}")
        if argv[1] == "export":
            return run_export(_STORE.value, _FORMAT.value, _OUT.value)
        return run_merge(_STORE.value, _INPUTS.value)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: Sequence[str]) -> int:
    return run(argv)


if __name__ == "__main__":
    app.run(main)
