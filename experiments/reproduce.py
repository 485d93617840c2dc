"""The main job: search, prune, compare, report — the paper's study end to end.

    python -m experiments.reproduce                            # the demo preset: writes out/demo/
    python -m experiments.reproduce --preset=paper --dry_run   # plans the full 485,838-run study

``demo`` (a few minutes on a 2-core CPU; ``smoke`` is the same at toy scale; ``--dry_run`` prints
its cost) runs phase 1 of the search over {1..4}^3, a bounded phase 2 just below phase 1's
frontier and every pruning method at width 16, then prints the finding and writes report.html,
the figures and compare.html into out/demo. ``paper`` plans or runs every group of SPEC §6 into
one store. Relaunching resumes from the store. The job itself is ``sparsejax.jobs.reproduce``.
"""
from __future__ import annotations

from absl import flags

from sparsejax.jobs import reproduce as job
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep import grids

sweep_flags.define_sweep_flags(tuple(job.PRESETS))
flags.DEFINE_string("out", None, "folder for the store (unless --store), figures, report and viewer "
                    "(default: out/<preset>, so the demo and the paper never share a store)")
flags.DEFINE_string("bench_inits", grids.BENCH_INITS, "folder holding bench95_init.npz and bench995_init.npz (paper)")
FLAGS = flags.FLAGS


def main(argv):
    sweep_flags.no_arguments(argv)
    name = FLAGS.preset or "demo"
    if name not in job.PRESETS:
        raise ValueError(f"--preset: unknown {name!r}; allowed: {', '.join(job.PRESETS)}")
    job.run(name, sweep_flags.sweep_args(store_required=False), FLAGS.out, FLAGS.bench_inits)


if __name__ == "__main__":
    sweep_flags.run(main)
