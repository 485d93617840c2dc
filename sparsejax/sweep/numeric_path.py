"""The numeric path of a run: what, besides its config, decides the numbers it produces.

Two machines given the same run config can still compute different numbers: float summation
order differs between the fused C++ CPU step and XLA's step (and between backends), and masks
are discrete decisions on those floats, so a run trained on another path can end with another
mask and another accuracy. The run id names the config only; the numeric path is recorded next
to it, in every record and in the store's meta, so a store never silently mixes paths (see
``runner.run_sweep``: resuming into a store of another path is refused unless explicitly
allowed, and records written then are marked).

A path is a flat dict of strings:

* ``backend``: ``jax.default_backend()`` ("cpu", "gpu", "tpu");
* ``kernel``: in a record, the step kernel actually used (``train.resolve_kernel`` of "auto" for
  the trained widths); in the store meta, the rule "auto" follows on this machine (which kernel
  for which widths), since one store holds many widths;
* ``jax``, ``jaxlib``, ``numpy``: library versions;
* ``code``: the package version, ``+g<commit sha>`` when the source is a git checkout, else
  ``+unknown`` (uncommitted edits are not detected). ``SPARSEJAX_CODE_VERSION`` in the
  environment replaces it (for builds that stamp their own version, and for tests that must
  not see a commit land between a kill and a resume);
* ``compaction``: reserved for population compaction (None until the trainer compacts).

Not covered (documented limitation): the CPU model. The fused kernel is built with
``-march=native`` and XLA compiles for the host, so two CPUs with different vector units could
still sum in another order.
"""
from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import subprocess
from typing import Any, Mapping, Sequence

import numpy as np

CODE_VERSION_ENV = "SPARSEJAX_CODE_VERSION"
PACKAGE = "sparsejax"
# keys whose difference makes two paths differ ("compaction" included: None == None)
KEYS = ("backend", "kernel", "jax", "jaxlib", "numpy", "code", "compaction")


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The HEAD commit of the checkout holding this package, or None if it is not one."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        proc = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and len(sha) == 40 else None


def code_version() -> str:
    """``<package version>+g<sha>`` (git checkout) or ``<package version>+unknown``."""
    stamped = os.environ.get(CODE_VERSION_ENV)
    if stamped:
        return stamped
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    sha = _git_commit()
    return f"{version}+g{sha}" if sha else f"{version}+unknown"


def environment(compaction: str | None = None) -> dict[str, Any]:
    """The path without its kernel: backend, library and code versions, compaction."""
    import jax  # late: the store imports this module and must not pay for jax when reading
    import jaxlib

    return {"backend": jax.default_backend(), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "numpy": np.__version__, "code": code_version(),
            "compaction": compaction}


def kernel_rule() -> str:
    """What ``train.resolve_kernel("auto", widths)`` picks on this machine, as one string."""
    from sparsejax import train  # late: train imports the kernels (and may build one)

    small = train.resolve_kernel("auto", (1,))
    large = train.resolve_kernel("auto", (train.FUSED_MAX_WIDTH + 1,))
    if small == large:
        return small
    return f"{small} up to width {train.FUSED_MAX_WIDTH}, else {large}"


def record_path(widths: Sequence[int], kernel: str = "auto",
                compaction: str | None = None) -> dict[str, Any]:
    """The numeric path of a run trained at ``widths`` with step ``kernel`` (resolved)."""
    from sparsejax import train

    return {**environment(compaction), "kernel": train.resolve_kernel(kernel, tuple(widths))}


COMPACTION_RULE = ("pruning-at-init runs: hidden layers compacted to 4,8,16,32,64,128, one group per bucket of "
                   "the widest layer (runs.compactable, widths >= 32)")


def store_path(compaction: str | None = COMPACTION_RULE) -> dict[str, Any]:
    """The numeric path a store's meta records: the environment and the kernel rule."""
    return {**environment(compaction), "kernel": kernel_rule()}


def dumps(path: Mapping[str, Any]) -> str:
    """Canonical JSON text of a path (sorted keys), as stored."""
    return json.dumps(dict(path), sort_keys=True, separators=(",", ":"))


def loads(text: str | None) -> dict[str, Any] | None:
    """The path stored as ``text`` (None stays None)."""
    return None if text is None else json.loads(text)


def differences(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """``key: stored -> current`` for every key of ``KEYS`` that differs (empty: same path)."""
    if stored is None:
        return ["the store records no numeric path"]
    return [f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in KEYS
            if stored.get(k) != current.get(k)]
