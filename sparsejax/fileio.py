"""Atomic output files with ordinary permissions.

Every file a launcher writes for the user (JSONL, figures, report pages) goes through
:func:`atomic_write`: the content is written to a temporary file in the target's folder and
renamed over the target, so a kill leaves either the old file or the new one, never a
truncated one. ``tempfile.mkstemp`` creates files with mode 0600; outputs are ordinary
documents, so the temporary file gets ``0666 & ~umask`` (0644 with the usual umask) first.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable


def default_mode() -> int:
    """``0666`` minus the process umask (what ``open(path, "w")`` would give)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Any:
    """``write(tmp_path)`` writes the content to a temporary path next to ``path``; it is then
    given the default mode and renamed to ``path``. Returns what ``write`` returns. On any
    failure (or interrupt) the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{base[:40]}-", suffix=ext, dir=folder)
    os.close(fd)
    try:
        result = write(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return result


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8) into ``path`` atomically, mode 0644 under the usual umask."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    atomic_write(path, write)
