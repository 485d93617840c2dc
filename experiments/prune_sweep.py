r"""Pruning sweeps: methods × widths × budgets × lrs × schedules × repeats into the sweep store.

    python -m experiments.prune_sweep --preset=smoke --store=out/prune_smoke.sqlite
    python -m experiments.prune_sweep --preset=paper_random --store=out/prune.sqlite      # 18,954 runs
    python -m experiments.prune_sweep --methods=gmp,lth --widths=16 --budgets=30,44 --epochs=50 \
        --lrs=0.05,0.1,0.2 --schedules=constant,cosine,step --store=out/s.sqlite
    python -m experiments.prune_sweep --methods=gmp,rigl --method_params=gmp.cubic_events=99,rigl.delta_t=50 ...

Budgets count weights only and are kept where B < the width's weight count (the paper's rule).
A preset's grid drops the other combinations silently; with --methods/--widths/--budgets given
explicitly, the dropped (method, width, budget) combinations are printed, and a named method or
budget left with no run at all is an error (exit 2). With a fixed init (--init=PATH, a width-16
network), widths below 16 are its top-left slices (the paper's "optimal width"). Relaunching the
same command resumes; --dry_run prints the run counts. With a preset the store defaults to
out/<preset>/store.sqlite. The job itself is ``sparsejax.jobs.prune_sweep``.
"""
from __future__ import annotations

from absl import flags

from sparsejax.jobs import prune_sweep as job
from sparsejax.pruning import registry
from sparsejax.sweep import flags as sweep_flags

sweep_flags.define_sweep_flags(tuple(job.PRESETS))
flags.DEFINE_string("methods", job.PAPER_METHODS, f"methods: {', '.join(registry.names())}")
flags.DEFINE_string("widths", "16", "hidden widths (three equal layers); with a fixed init, slices of it")
flags.DEFINE_string("budgets", job.PAPER_BUDGETS, "weight budgets (a..b ranges allowed); kept where B < N_w")
flags.DEFINE_string("lrs", "0.05,0.1,0.2", "learning rates")
flags.DEFINE_string("schedules", job.ALL_SCHEDULES, "schedules")
flags.DEFINE_integer("epochs", 50, "epochs per run (LTH: per round, 5 rounds)")
flags.DEFINE_integer("repeats", 1, "seeds 0..repeats-1 of every configuration")
flags.DEFINE_string("init", "random", "'random' or a width-16 init .npz (PyTorch names)")
flags.DEFINE_integer("optimal_width", None, "with a fixed init: slice it to this width (overrides --widths)")
flags.DEFINE_string("method_params", None, "methods' own hyperparameters other than SPEC's defaults, "
                    "method.field=value,... (e.g. gmp.cubic_events=99,rigl.delta_t=50); part of every run id")
flags.DEFINE_integer("data_seed", None, sweep_flags.DATA_SEED_HELP)
SETTINGS = ("methods", "widths", "budgets", "lrs", "schedules", "epochs", "repeats", "init", "optimal_width",
            "method_params", "data_seed", "population_size")


def main(argv):
    sweep_flags.no_arguments(argv)
    args, values = sweep_flags.preset_values(job.PRESETS, SETTINGS)
    explicit = frozenset(k for k in SETTINGS if sweep_flags.explicitly_given(k))
    job.run(job.plan(values, args, explicit), args, population_size=int(values["population_size"]))


if __name__ == "__main__":
    sweep_flags.run(main)
