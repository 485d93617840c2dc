"""The fused masked-MLP SGD step on the CPU: a C++ XLA FFI custom call.

XLA's CPU backend runs a population of tiny matrices as batched dots and separate elementwise
passes over (P, 128, width) arrays, which is bound by memory traffic and per-op overhead. The
kernel in ``mlp_sgd_step.cc`` does a whole step for one model at a time (forward, backward,
masked SGD with momentum and weight decay) with everything in L1, models split across XLA's
intra-op thread pool. Its numbers equal the XLA path up to float32 summation order.

The source is compiled once per machine with the system C++ compiler into a cache folder
(``$SPARSEJAX_CACHE`` or ``~/.cache/sparsejax``) keyed by the source, the jaxlib version and the
CPU's flags; :func:`available` says whether that worked and :func:`why_unavailable` why not.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

TARGET = "sparsejax_mlp_sgd_step"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp_sgd_step.cc")
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-std=c++17", "-shared", "-fPIC", "-w"]


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((l for l in f if l.startswith("flags")), platform.processor())
    except OSError:
        return platform.processor() + platform.machine()


def _cache_dir() -> str:
    return os.environ.get("SPARSEJAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "sparsejax"))


@functools.lru_cache(maxsize=1)
def _build() -> tuple[str | None, str]:
    """(path of the shared library, "") or (None, reason)."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        return None, "no C++ compiler found (set CXX or install g++)"
    with open(SOURCE, "rb") as f:
        src = f.read()
    key = hashlib.sha256(src + jaxlib.__version__.encode() + _cpu_signature().encode() + " ".join(FLAGS).encode())
    out_dir = _cache_dir()
    lib = os.path.join(out_dir, f"mlp_sgd_step-{key.hexdigest()[:16]}.so")
    if os.path.exists(lib):
        return lib, ""
    try:
        os.makedirs(out_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so")
        os.close(fd)
        cmd = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", SOURCE, "-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            os.unlink(tmp)
            return None, f"compiling the CPU kernel failed: {proc.stderr.strip()[-500:]}"
        os.replace(tmp, lib)  # atomic: concurrent processes never load a half-written library
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"compiling the CPU kernel failed: {e}"
    return lib, ""


@functools.lru_cache(maxsize=1)
def _register() -> str:
    lib, why = _build()
    if lib is None:
        return why
    try:
        handle = ctypes.cdll.LoadLibrary(lib)
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(handle.SparsejaxMlpSgdStep), platform="cpu")
    except (OSError, AttributeError, ValueError) as e:
        return f"loading the CPU kernel failed: {e}"
    return ""


def available() -> bool:
    """Whether the fused CPU step can be used in this process (builds it on first call)."""
    return _register() == ""


def why_unavailable() -> str:
    return _register()


def sgd_step(params, masks, momentum, x_all, y_all, round_keys_Px4, start, lr_P,
             batch_size: int, momentum_coef: float, weight_decay: float):
    """(params, momentum) after one masked SGD step of every model. Model p trains on positions
    [start, start + batch_size) of the keyed permutation with round keys ``round_keys_Px4[p]``
    (exactly :func:`sparsejax.shuffle.permute`), gathered from ``x_all``/``y_all`` inside the
    kernel; otherwise the same contract as ``train.sgd_update`` applied to ``grad(mlp.loss)``."""
    why = _register()
    if why:
        raise RuntimeError(why)
    flat_in = [x_all.astype(jnp.float32), y_all.astype(jnp.float32), round_keys_Px4.astype(jnp.uint32),
               jnp.reshape(start, (1,)).astype(jnp.int32), lr_P.astype(jnp.float32)]
    out_types, aliases = [], {}
    for l, (p, m, b) in enumerate(zip(params, masks, momentum)):
        first = len(flat_in)
        flat_in += [p["w"], p["b"], b["w"], b["b"], m["w"], m["b"]]
        out_types += [jax.ShapeDtypeStruct(p["w"].shape, jnp.float32), jax.ShapeDtypeStruct(p["b"].shape, jnp.float32)] * 2
        # parameters and momentum are updated in place (each model reads its own entries before
        # writing them), so the scan carry needs no fresh buffers every step
        aliases.update({first + k: 4 * l + k for k in range(4)})
    outs = jax.ffi.ffi_call(TARGET, out_types, vmap_method="sequential", input_output_aliases=aliases)(
        *flat_in, momentum=np.float32(momentum_coef), weight_decay=np.float32(weight_decay),
        batch=np.int64(batch_size))
    new_params = tuple({"w": outs[4 * l], "b": outs[4 * l + 1]} for l in range(len(params)))
    new_mom = tuple({"w": outs[4 * l + 2], "b": outs[4 * l + 3]} for l in range(len(params)))
    return new_params, new_mom
