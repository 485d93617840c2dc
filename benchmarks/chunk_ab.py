"""The fused CPU kernel's chunk calls against one kernel call per step, in one process.

    PYTHONPATH=. python benchmarks/chunk_ab.py                       # the defaults below
    PYTHONPATH=. python benchmarks/chunk_ab.py --shapes=3-3-3 --methods= --repeats=12

For each shape the trainer's chunk program (a hook-free chunk in one kernel call; with a
method's mask hook, the stretches between events in one call each) is timed against the same
steps run as one kernel call per step inside an XLA scan (``train._train_step``, what every
step cost before), alternating the two in one process so the machine's drift hits both alike.
Prints model-steps/s (medians), the ratio, and whether the two trained populations are
bit-identical at the end (they must be).
"""
from __future__ import annotations

import datetime
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sparsejax import data, mlp, train
from sparsejax.kernels import cpu as cpu_kernel
from sparsejax.pruning import registry

FLAGS = flags.FLAGS
flags.DEFINE_list("shapes", ["3-3-3", "3-2-2", "6-3-2", "7-3-3", "16-16-16"], "hidden widths (d1-d2-d3), no hook")
flags.DEFINE_list("methods", ["gmp", "rigl", "sfp"], "methods whose mask hook is timed at --hook_shape")
flags.DEFINE_string("hook_shape", "16-16-16", "hidden widths of the hooked runs")
flags.DEFINE_integer("population", 4096, "models per population (hooked runs: a quarter)")
flags.DEFINE_integer("steps", 100, "steps per timed chunk (hooked runs: 390, an epoch)")
flags.DEFINE_integer("repeats", 8, "timed chunks per variant")


def _per_step(cfg: train.TrainConfig, hook, steps: int):
    """The peer: `steps` one-step kernel calls in an XLA scan."""
    def run(pop, x_all, y_all, start, epoch_offset):
        d = (x_all, y_all, cpu_kernel.pack_rows(x_all, y_all), epoch_offset)
        return train._step_by_step(cfg, hook, "fused", d, pop, start + jnp.arange(steps))
    return jax.jit(run, donate_argnums=(0,))


def compare(shape: tuple[int, ...], p: int, steps: int, repeats: int, method: str | None) -> tuple[float, float, bool]:
    """(per-step model-steps/s, chunk model-steps/s, bit-identical)."""
    x, y = (jnp.asarray(a) for a in data.cubist_spiral())
    cfg = train.TrainConfig(widths=shape, epochs=50, chunk_steps=steps, kernel="fused")
    m = registry.instance(method) if method else None
    hook = m.hook(cfg, len(x)) if m else None
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(0), p), shape)

    def fresh():
        pop = train.make_population(params, None, 0.1, "cosine", train.model_keys(0, np.arange(p)))
        if m:
            budget = jnp.full((p,), mlp.weight_count(shape) // 4, jnp.int32)
            pop = m.prepare(pop._replace(hook_state=m.initial_hook_state(budget, jax.random.PRNGKey(1), shape)),
                            cfg, len(x))
        return train.with_loss_sums(pop, cfg.epochs)

    fns = {"per_step": _per_step(cfg, hook, steps), "chunk": train._chunk_fn(cfg, hook, steps, "fused")}
    pops = {k: f(fresh(), x, y, jnp.int32(0), jnp.int32(0)) for k, f in fns.items()}  # compiles
    jax.block_until_ready(pops)
    rates = {k: [] for k in fns}
    for i in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            pops[k] = f(pops[k], x, y, jnp.int32(steps * (1 + i)), jnp.int32(0))
            jax.block_until_ready(pops[k])
            rates[k].append(p * steps / (time.perf_counter() - t0))
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in
               zip(jax.tree.leaves(pops["per_step"]), jax.tree.leaves(pops["chunk"])))
    return float(np.median(rates["per_step"])), float(np.median(rates["chunk"])), same


def main(argv):
    del argv
    if not cpu_kernel.available():
        raise SystemExit(f"the fused CPU kernel is unavailable: {cpu_kernel.why_unavailable()}")
    print(f"# chunk calls vs one kernel call per step — {jax.default_backend()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"medians of {FLAGS.repeats}")
    print("| shape | hook | P | steps per chunk | one call per step | chunk calls | ratio | bit-identical |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    cases = [(s, None, FLAGS.population, FLAGS.steps) for s in FLAGS.shapes]
    cases += [(FLAGS.hook_shape, m, max(1, FLAGS.population // 4), 390) for m in FLAGS.methods if m]
    for text, method, p, steps in cases:
        shape = tuple(int(v) for v in text.split("-"))
        old, new, same = compare(shape, p, steps, FLAGS.repeats, method)
        print(f"| ({','.join(map(str, shape))}) | {method or '-'} | {p:,} | {steps} | {old:,.0f} | {new:,.0f} | "
              f"{new / old:.2f}x | {'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    app.run(main)
