"""The fused masked-MLP SGD step on the CPU: a C++ XLA FFI custom call.

XLA's CPU backend runs a population of tiny matrices as batched dots and separate elementwise
passes over (P, 128, width) arrays, which is bound by memory traffic and per-op overhead. The
kernel in ``mlp_sgd_step.cc`` does whole steps (forward, backward, masked SGD with momentum and
weight decay; a whole chunk of steps per call) with everything in L1, work split across XLA's
intra-op thread pool, in one of two
layouts: small shapes (the search's (3,3,3), (7,3,3), ... up to width 32) run a vector's worth of
models in SIMD lanes, larger ones one model at a time. Its numbers equal the XLA path up to
float32 summation order (and FMA rounding).

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

from sparsejax import hostcpu

TARGET = "sparsejax_mlp_sgd_step"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp_sgd_step.cc")
# -march=native: the library is built per machine (the cache key holds the CPU's flags); the
# source picks 16 lanes under AVX-512, 8 under AVX and 4 otherwise, so any x86 (or other) CPU
# builds it. -ffp-contract=fast lets a*b+c become one FMA (a different rounding, not order).
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffp-contract=fast", "-std=c++17", "-shared",
         "-fPIC", "-w"]
LANES_MAX_WIDTH = 32   # the lanes layout's limits (kLanesMaxWidth, kLanesMaxLayers in the source)
LANES_MAX_LAYERS = 8
LANES_AUTO_MAX_WIDTH = 16  # "auto" picks lanes up to here: measured faster at 3..16 (benchmarks/RESULTS.md)
LAYOUTS = ("auto", "lanes", "models")


def _cpu_signature() -> str:
    """The build cache's key for this CPU: its feature flags (what -march=native compiles for)."""
    flags = hostcpu.cpuinfo()[1]
    return " ".join(sorted(flags)) if flags else platform.processor() + platform.machine()


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


def pick_layout(layer_dims: tuple[int, ...]) -> str:
    """"lanes" (models in SIMD lanes) when every layer size (input and output included) is at
    most LANES_AUTO_MAX_WIDTH and there are at most LANES_MAX_LAYERS layers, else "models" (one
    model at a time: a lane group's matrices outgrow L1 as the width grows)."""
    small = max(layer_dims) <= LANES_AUTO_MAX_WIDTH and len(layer_dims) - 1 <= LANES_MAX_LAYERS
    return "lanes" if small else "models"


def _lanes_fit(layer_dims: tuple[int, ...]) -> bool:
    return max(layer_dims) <= LANES_MAX_WIDTH and len(layer_dims) - 1 <= LANES_MAX_LAYERS


def pack_rows(x_all, y_all):
    """The dataset as the kernel reads it: one row per example, x then y then zeros, rows of a
    power-of-two number of floats (a row never straddles a cache line, so a model's example is
    one memory access). Build it once per training chunk, not per step."""
    n, i0 = int(x_all.shape[0]), int(x_all.shape[1])
    stride = 1 << i0.bit_length()  # the least power of two >= i0 + 1
    return jnp.concatenate([jnp.asarray(x_all, jnp.float32), jnp.reshape(y_all, (n, 1)).astype(jnp.float32),
                            jnp.zeros((n, stride - i0 - 1), jnp.float32)], axis=1)


def train_steps(params, masks, momentum, rows_all, round_keys_ExPx4, lr_ExP, loss_PxC, first_step, loss_col0,
                steps: int, steps_per_epoch: int, batch_size: int, momentum_coef: float, weight_decay: float,
                layout: str = "auto"):
    """(params, momentum, loss_PxC) after `steps` masked SGD steps of every model: steps
    ``first_step .. first_step + steps - 1`` of a run with `steps_per_epoch` steps per epoch, in
    one kernel call (a lane group's state stays lane-interleaved from the first step to the
    last, and XLA runs nothing between steps).

    Step t of model p trains on positions ``[(t % spe) B, (t % spe) B + B)`` of the keyed
    permutation with round keys ``round_keys_ExPx4[e, p]`` (exactly
    :func:`sparsejax.shuffle.permute`), gathered from ``rows_all`` (:func:`pack_rows` of the
    dataset) inside the kernel, with learning rate ``lr_ExP[e, p]``, where
    ``e = t // spe - first_step // spe`` is its epoch relative to the first step's; its minibatch
    loss (``mlp.loss`` before the step, up to float rounding; never feeds the update) is added to
    ``loss_PxC[p, loss_col0 + e]``. When every model has the same round keys (a shared
    ``data_seed``) the kernel draws each minibatch once for all. Each step is
    ``train.sgd_update`` applied to ``grad(mlp.loss)``, up to float32 summation order and FMA
    rounding. `layout` picks the implementation ("auto": :func:`pick_layout`); both give the
    same numbers up to that rounding. The kernel refuses keys, lr or loss with fewer epochs
    (columns) than the steps touch."""
    why = _register()
    if why:
        raise RuntimeError(why)
    if layout not in LAYOUTS:
        raise ValueError(f"layout: unknown {layout!r}; allowed: {', '.join(LAYOUTS)}")
    dims = (int(params[0]["w"].shape[1]),) + tuple(int(p["w"].shape[2]) for p in params)
    if rows_all.ndim != 2 or rows_all.shape[1] < dims[0] + 1:
        raise ValueError(f"rows_all: need (N, >= {dims[0] + 1}) rows from pack_rows, got shape {rows_all.shape}")
    n_models = int(params[0]["w"].shape[0])
    if (round_keys_ExPx4.ndim != 3 or round_keys_ExPx4.shape[1:] != (n_models, 4) or lr_ExP.shape != round_keys_ExPx4.shape[:2]
            or loss_PxC.ndim != 2 or loss_PxC.shape[0] != n_models):
        raise ValueError(f"need round keys (E, {n_models}, 4), lr (E, {n_models}) and loss ({n_models}, C); got "
                         f"{round_keys_ExPx4.shape}, {lr_ExP.shape}, {loss_PxC.shape}")
    if layout == "auto":
        layout = pick_layout(dims)
    elif layout == "lanes" and not _lanes_fit(dims):
        raise ValueError(f"layout 'lanes' supports layer sizes up to {LANES_MAX_WIDTH} and at most "
                         f"{LANES_MAX_LAYERS} layers, got {dims}")
    ctl = jnp.stack([jnp.asarray(first_step, jnp.int32), jnp.asarray(loss_col0, jnp.int32)])
    flat_in = [rows_all.astype(jnp.float32), round_keys_ExPx4.astype(jnp.uint32), ctl, lr_ExP.astype(jnp.float32),
               loss_PxC.astype(jnp.float32)]
    out_types, aliases = [], {}
    for l, (p, m, b) in enumerate(zip(params, masks, momentum)):
        first = len(flat_in)
        flat_in += [p["w"], p["b"], b["w"], b["b"], m["w"], m["b"]]
        out_types += [jax.ShapeDtypeStruct(p["w"].shape, jnp.float32), jax.ShapeDtypeStruct(p["b"].shape, jnp.float32)] * 2
        # parameters and momentum are updated in place (each model reads its own entries before
        # writing them), so the scan carry needs no fresh buffers every step
        aliases.update({first + k: 4 * l + k for k in range(4)})
    out_types.append(jax.ShapeDtypeStruct(loss_PxC.shape, jnp.float32))  # the loss sums, last, in place
    aliases[4] = len(out_types) - 1
    outs = jax.ffi.ffi_call(TARGET, out_types, vmap_method="sequential", input_output_aliases=aliases)(
        *flat_in, momentum=np.float32(momentum_coef), weight_decay=np.float32(weight_decay),
        batch=np.int64(batch_size), layout=np.int64(1 if layout == "lanes" else 0), steps=np.int64(steps),
        steps_per_epoch=np.int64(steps_per_epoch))
    new_params = tuple({"w": outs[4 * l], "b": outs[4 * l + 1]} for l in range(len(params)))
    new_mom = tuple({"w": outs[4 * l + 2], "b": outs[4 * l + 3]} for l in range(len(params)))
    return new_params, new_mom, outs[-1]
