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
* ``compaction``: the compaction rule (records: what the run used);
* ``cpu_isa``: the host CPU's vector instruction set, as the compilers see it (``cpu_isa()``:
  ``x86-64-v4`` with AVX-512, ``x86-64-v3`` with AVX2+FMA, ``x86-64-v2``, ``aarch64+sve``, …).
  The fused kernel is built with ``-march=native`` and XLA compiles for the host's vector unit,
  so the same config sums in another order on another ISA; measured: one sfp run at width 128
  (id ``fe55efef5e353a9e``) ended at 95.33 % on an AVX2 EPYC and 86.40 % on an AVX-512 one.
  A store written before this key existed records none, so resuming it reports the key as a
  difference (unknown is not the same).

Recorded but not compared: ``cpu_model`` (the CPU's name). Two models with one ISA run the
same instructions; the model is kept so a surprising difference can be traced.
"""
from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import subprocess
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from sparsejax import hostcpu

CODE_VERSION_ENV = "SPARSEJAX_CODE_VERSION"
PACKAGE = "sparsejax"
# keys whose difference makes two paths differ ("compaction" included: None == None)
KEYS = ("backend", "kernel", "jax", "jaxlib", "numpy", "code", "compaction", "cpu_isa")

# x86-64 micro-architecture levels (the psABI's), highest first: the flags (as /proc/cpuinfo
# names them) that each level adds and that change what a vectorising compiler emits
_X86_LEVELS = (("x86-64-v4", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
               ("x86-64-v3", ("avx", "avx2", "fma", "bmi2")),
               ("x86-64-v2", ("sse4_2", "popcnt", "ssse3")))


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


def isa_level(machine: str, flags: Collection[str]) -> str:
    """The vector ISA of a CPU of architecture ``machine`` with feature ``flags`` (pure)."""
    machine = machine.lower()
    if machine in ("x86_64", "amd64"):
        for level, needs in _X86_LEVELS:
            if all(f in flags for f in needs):
                return level
        return "x86-64"
    if machine in ("aarch64", "arm64"):
        extras = [f for f in ("sve2", "sve") if f in flags][:1]
        return "+".join(["aarch64", *extras])
    return machine or "unknown"


@functools.lru_cache(maxsize=1)
def cpu() -> tuple[str, str]:
    """(ISA level, model name) of this host's CPU (see the module docstring)."""
    model, flags = hostcpu.cpuinfo()
    return isa_level(platform.machine(), flags), model or platform.processor() or "unknown"


def environment(compaction: str | None = None) -> dict[str, Any]:
    """The path without its kernel: backend, library and code versions, compaction."""
    import jax  # late: the store imports this module and must not pay for jax when reading
    import jaxlib

    return {"backend": jax.default_backend(), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "numpy": np.__version__, "code": code_version(),
            "compaction": compaction, "cpu_isa": cpu()[0], "cpu_model": cpu()[1]}


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
