"""Training throughput in model-steps per second (one model, one minibatch step of 128).

Rows: populations P at width 16, then widths at a fixed P. Every row is timed against, in the
same run, a baseline that trains the same models one at a time (how the reference works: one
model per process, here one jitted model per call). The trainer's default step is timed, and
with ``--xla`` also its pure-XLA step (``vmap`` of ``grad``, what runs on accelerators). With ``--torch`` and torch installed, a
one-model-at-a-time PyTorch loop and a hand-batched PyTorch ``bmm`` loop are timed as peers.

    python benchmarks/throughput.py                     # the full table
    python benchmarks/throughput.py --populations=1024,4096 --widths=16 --steps=200 --json
    python benchmarks/throughput.py --small             # the small-shape table (issue 17)

The small-shape table times, per shape and P, medians of ``--repeats`` timed calls of the
trainer's chunk: the fused step as ``auto`` picks it (models in SIMD lanes at these widths), the
same with one data order for the whole population (a shared ``data_seed``: the minibatch is
gathered once per step), the previous one-model-at-a-time fused step (layout "models"), the XLA
step, and the hand-batched PyTorch ``bmm`` peer (benchmarks/torch_peer.py) in the interpreter
``--torch_python`` names (torch is not a project dependency; by default this interpreter, when
it can import torch).
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sparsejax import data, mlp, train
from sparsejax.kernels import cpu as cpu_kernel

FLAGS = flags.FLAGS
flags.DEFINE_list("populations", ["1", "64", "256", "1024", "4096"], "population sizes timed at width 16")
flags.DEFINE_list("widths", ["16", "64", "256"], "widths timed at --width_population")
flags.DEFINE_integer("width_population", 64, "population size of the width rows")
flags.DEFINE_integer("steps", 100, "timed steps per row (after a warm-up call that compiles)")
flags.DEFINE_integer("baseline_steps", 100, "timed steps of the one-model-at-a-time baseline")
flags.DEFINE_bool("json", False, "print one JSON object per row instead of a table")
flags.DEFINE_bool("torch", False, "also time PyTorch peers (needs torch installed)")
flags.DEFINE_bool("xla", False, "also time the trainer's pure-XLA step (kernel='xla')")
flags.DEFINE_bool("small", False, "print the small-shape table instead (see --small_shapes)")
flags.DEFINE_list("small_shapes", ["3-3-3", "3-2-2", "6-3-2", "7-3-3", "16-16-16"], "hidden widths of the small table")
flags.DEFINE_list("small_populations", ["1024", "4096"], "population sizes of the small table")
flags.DEFINE_string("torch_python", None, "a Python with torch for the small table's PyTorch peer "
                    "(default: this one, if it imports torch)")
flags.DEFINE_integer("repeats", 3, "timed calls per cell of the small table (the median is reported)")


def _population(p: int, width: int) -> train.Population:
    widths = (width,) * 3
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(0), p), widths)
    return train.make_population(params, None, 0.05, "cosine", train.model_keys(0, np.arange(p)))


def time_population(p: int, width: int, steps: int, kernel: str = "auto") -> float:
    """Model-steps/s of the population trainer: P models × `steps` steps in one jitted chunk."""
    x, y = data.cubist_spiral()
    x, y = jnp.asarray(x), jnp.asarray(y)
    cfg = train.TrainConfig(widths=(width,) * 3, epochs=max(1, math.ceil(steps / 390)), chunk_steps=steps,
                            kernel=kernel)
    fn = train.chunk_fn(cfg, None, steps)
    pop = fn(_population(p, width), x, y, jnp.int32(0), jnp.int32(0))  # compile + warm up
    jax.block_until_ready(pop)
    t0 = time.perf_counter()
    pop = fn(pop, x, y, jnp.int32(steps), jnp.int32(0))
    jax.block_until_ready(pop)
    return p * steps / (time.perf_counter() - t0)


def time_shape(p: int, widths: tuple[int, ...], steps: int, kernel: str, repeats: int,
               one_order: bool = False) -> float:
    """Median model-steps/s over `repeats` timed chunks of `steps` steps (after a warm-up call
    that compiles). `kernel` is a resolved trainer kernel: "fused" (layout as auto picks it),
    "fused_models" (the one-model-at-a-time layout, forced) or "xla". `one_order`: every model
    on one data order (what runs sharing a data_seed get)."""
    x, y = data.cubist_spiral()
    x, y = jnp.asarray(x), jnp.asarray(y)
    cfg = train.TrainConfig(widths=widths, epochs=max(1, math.ceil(steps / 390)), chunk_steps=steps)
    fn = train._chunk_fn(cfg, None, steps, kernel)  # the resolved-kernel entry: forces a layout
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(0), p), widths)
    keys = train.model_keys(0, np.zeros(p, int) if one_order else np.arange(p))
    pop = train.make_population(params, None, 0.05, "cosine", keys)
    pop = fn(pop, x, y, jnp.int32(0), jnp.int32(0))
    jax.block_until_ready(pop)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pop = fn(pop, x, y, jnp.int32(steps), jnp.int32(0))
        jax.block_until_ready(pop)
        rates.append(p * steps / (time.perf_counter() - t0))
    return float(np.median(rates))


def torch_python() -> str | None:
    """The interpreter that runs the PyTorch peer: --torch_python, else this one if it has torch."""
    if FLAGS.torch_python:
        return FLAGS.torch_python
    return sys.executable if importlib.util.find_spec("torch") is not None else None


def torch_bmm(python: str, p: int, widths: tuple[int, ...], steps: int, repeats: int) -> float:
    """Median model-steps/s of the hand-batched PyTorch peer (benchmarks/torch_peer.py) at
    hidden widths `widths`, run by `python` (it gets the dataset through a temporary file)."""
    x, y = data.cubist_spiral()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.npz")
        np.savez(path, x=np.asarray(x), y=np.asarray(y))
        out = subprocess.run([python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_peer.py"),
                              f"--data={path}", f"--widths={','.join(map(str, widths))}", f"--population={p}",
                              f"--steps={steps}", f"--repeats={repeats}"], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["torch_bmm"])


def small_table() -> None:
    """The small-shape table (markdown rows, or JSON with --json)."""
    shapes = [tuple(int(v) for v in s.split("-")) for s in FLAGS.small_shapes]
    pops = [int(v) for v in FLAGS.small_populations]
    if any(w < 1 for s in shapes for w in s) or any(v < 1 for v in pops) or FLAGS.repeats < 1:
        raise app.UsageError("--small_shapes, --small_populations and --repeats must be positive integers")
    peer = torch_python()
    if not FLAGS.json:
        print(f"# sparsejax small shapes — {jax.devices()[0].device_kind} ({jax.default_backend()}, "
              f"{os.cpu_count()} cores), jax {jax.__version__}, {platform.processor() or platform.machine()}, "
              f"{datetime.date.today()}, {FLAGS.steps} steps per call, medians of {FLAGS.repeats}"
              + (f"; PyTorch peer run by {peer}" if peer else "; no torch (--torch_python): no PyTorch column"))
        print("| shape | P | fused step (auto) | layout | one data order | one-model layout | XLA step |"
              " lanes / one-model |" + (" PyTorch bmm | fused / PyTorch |" if peer else ""))
        print("|---|---:|---:|---|---:|---:|---:|---:|" + ("---:|---:|" if peer else ""))
    for shape in shapes:
        for p in pops:
            row = {"shape": list(shape), "population": p,
                   "layout": cpu_kernel.pick_layout((mlp.INPUT_DIM, *shape, mlp.OUTPUT_DIM)),
                   "fused": time_shape(p, shape, FLAGS.steps, "fused", FLAGS.repeats),
                   "fused_one_order": time_shape(p, shape, FLAGS.steps, "fused", FLAGS.repeats, one_order=True),
                   "fused_models": time_shape(p, shape, FLAGS.steps, "fused_models", FLAGS.repeats),
                   "xla": time_shape(p, shape, FLAGS.steps, "xla", FLAGS.repeats),
                   "device": jax.devices()[0].device_kind, "jax": jax.__version__, "date": str(datetime.date.today())}
            if peer:
                row["torch_bmm"] = torch_bmm(peer, p, shape, min(FLAGS.steps, 50), FLAGS.repeats)
            if FLAGS.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"| ({','.join(map(str, shape))}) | {p:,} | {row['fused']:,.0f} | {row['layout']} | "
                      f"{row['fused_one_order']:,.0f} | {row['fused_models']:,.0f} | {row['xla']:,.0f} | "
                      f"{row['fused'] / row['fused_models']:.1f}x |"
                      + (f" {row['torch_bmm']:,.0f} | {row['fused'] / row['torch_bmm']:.1f}x |" if peer else ""),
                      flush=True)


def torch_rows(p: int, width: int, steps: int) -> dict[str, float]:
    """PyTorch peers: one model at a time (as the reference) and a hand-batched bmm loop."""
    import torch
    torch.manual_seed(0)
    x, y = data.cubist_spiral()
    xt, yt = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))
    dims = [2, width, width, width, 1]
    out = {}
    model = torch.nn.Sequential(*[m for i in range(4) for m in
                                  ([torch.nn.Linear(dims[i], dims[i + 1])] + ([torch.nn.ReLU()] if i < 3 else []))])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    lossf = torch.nn.BCEWithLogitsLoss()
    n1 = max(20, steps // 5)
    t0 = time.perf_counter()
    for s in range(n1):
        idx = torch.randint(0, len(xt), (128,))
        opt.zero_grad()
        lossf(model(xt[idx])[:, 0], yt[idx]).backward()
        opt.step()
    out["torch_one_model"] = n1 / (time.perf_counter() - t0)
    try:  # the batched peer's loop, shared with the small table's subprocess
        from benchmarks import torch_peer
    except ImportError:  # run as a script: benchmarks/ itself is on sys.path
        import torch_peer
    out["torch_bmm"] = torch_peer.rate(np.asarray(x), np.asarray(y), [width] * 3, p, steps, repeats=1)
    return out


def main(argv):
    del argv
    if FLAGS.small:
        small_table()
        return
    pops = [int(v) for v in FLAGS.populations]
    widths = [int(v) for v in FLAGS.widths]
    if any(v < 1 for v in pops + widths) or FLAGS.steps < 1:
        raise app.UsageError("--populations, --widths and --steps must be positive integers")
    rows = [(p, 16) for p in pops] if 16 in widths else []
    rows += [(FLAGS.width_population, w) for w in widths if (FLAGS.width_population, w) not in rows]
    baselines = {w: time_population(1, w, FLAGS.baseline_steps) for w in sorted({w for _, w in rows})}
    if not FLAGS.json:
        print(f"# sparsejax throughput — {jax.devices()[0].device_kind} ({jax.default_backend()}, "
              f"{os.cpu_count()} cores), jax {jax.__version__}, step kernel {train.resolve_kernel('auto')!r} up to width {train.FUSED_MAX_WIDTH}, "
              f"{platform.processor() or platform.machine()}, {datetime.date.today()}")
        head = f"{'P':>6} {'width':>5} {'model-steps/s':>14} {'one-at-a-time':>14} {'ratio':>7}"
        if FLAGS.xla:
            head += f" {'XLA step':>10}"
        if FLAGS.torch:
            head += f" {'torch 1-model':>14} {'torch bmm':>12}"
        print(head)
    for p, w in rows:
        rate = time_population(p, w, FLAGS.steps)
        row = {"population": p, "width": w, "model_steps_per_s": rate,
               "baseline_model_steps_per_s": baselines[w], "ratio": rate / baselines[w],
               "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
               "kernel": train.resolve_kernel("auto", (w,) * 3), "jax": jax.__version__, "date": str(datetime.date.today())}
        if FLAGS.xla:
            row["xla_model_steps_per_s"] = time_population(p, w, FLAGS.steps, kernel="xla")
        if FLAGS.torch:
            row.update(torch_rows(p, w, min(FLAGS.steps, 50)))
        if FLAGS.json:
            print(json.dumps(row), flush=True)
        else:
            line = f"{p:>6} {w:>5} {rate:>14,.0f} {baselines[w]:>14,.0f} {rate / baselines[w]:>6.1f}x"
            if FLAGS.xla:
                line += f" {row['xla_model_steps_per_s']:>10,.0f}"
            if FLAGS.torch:
                line += f" {row['torch_one_model']:>14,.0f} {row['torch_bmm']:>12,.0f}"
            print(line, flush=True)


if __name__ == "__main__":
    app.run(main)
