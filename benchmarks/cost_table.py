"""Measure the per-shape throughput table of ``sparsejax.sweep.cost`` on this machine.

    PYTHONPATH=. python benchmarks/cost_table.py                 # the default shapes
    PYTHONPATH=. python benchmarks/cost_table.py --shapes=3-3-3,16-16-16 --steps=390

Each shape is timed with ``benchmarks.throughput.time_shape`` (median of ``--repeats`` chunks
of ``--steps`` steps (flags of benchmarks/throughput.py) at ``--population`` models, after a warm-up call that compiles) on the
step kernel ``auto`` resolves to for it, which is what a sweep trains with. It prints the
load average next to the numbers (the machine may be shared) and the ``MEASURED`` entries to
paste into ``sparsejax/sweep/cost.py``.
"""
from __future__ import annotations

import datetime
import os

import jax
from absl import app, flags

from benchmarks import throughput
from sparsejax import train

FLAGS = flags.FLAGS
flags.DEFINE_list("shapes", ["3-3-3", "4-4-4", "7-3-3", "16-16-16", "32-32-32", "64-64-64"],
                  "hidden widths to time (d1-d2-d3)")
flags.DEFINE_integer("population", 1024, "models per timed population")


def main(argv):
    del argv
    load = os.getloadavg()
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"{jax.default_backend()}, jax {jax.__version__}, P={FLAGS.population}, steps={FLAGS.steps}, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    for text in FLAGS.shapes:
        shape = tuple(int(v) for v in text.split("-"))
        kernel = train.resolve_kernel("auto", shape)
        rate = throughput.time_shape(FLAGS.population, shape, FLAGS.steps, kernel, FLAGS.repeats)
        print(f"    {shape}: {rate:,.0f},  # {kernel}", flush=True)
    print(f"# load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    app.run(main)
