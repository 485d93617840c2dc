r"""The combinatorial search: phase 1 (neuron configurations), phase 2 (unstructured masks).

    python -m experiments.comb_search --preset=smoke --store=out/smoke.sqlite
    python -m experiments.comb_search --target=0.995 --width=16 --phase=both --store=out/s995.sqlite
    python -m experiments.comb_search --phase=2 --config=3,2,2 \
        --init=../shared/bench-inits/bench95_init.npz --target=0.95 --store=out/bench95.sqlite

Every run goes to the sweep store (default with a preset: out/<preset>/store.sqlite);
relaunching the same command resumes. Prints the winner: configuration, masks (PyTorch (out, in)
layout), model nnz, accuracy and run id. The job itself is ``sparsejax.jobs.comb_search``.

With --num_shards > 1 a job trains only its shard's runs and decides nothing: merge the shard
stores (python -m experiments.store merge) and rerun the same command without the shard flags on
the merged store: finished runs are skipped and the search decides on all of them.
"""
from __future__ import annotations

from absl import flags, logging

from sparsejax.jobs import comb_search as job
from sparsejax.sweep import flags as sweep_flags

sweep_flags.define_sweep_flags(tuple(job.PRESETS))
flags.DEFINE_float("target", 0.95, "target accuracy rho in (0, 1]: a run succeeds when accuracy > rho")
flags.DEFINE_integer("width", 16, f"D: the width of the network; phase 1 searches {{1..D}}^3 (D <= {job.MAX_WIDTH})")
flags.DEFINE_enum("phase", "both", list(job.PHASES), "which phase(s) to run")
flags.DEFINE_string("config", None, "d1,d2,d3 for phase 2 (default: phase 1's winner)")
flags.DEFINE_string("init", "random", "'random' (a fresh init per run) or an init .npz (PyTorch names)")
flags.DEFINE_string("lrs", "0.05,0.1", "learning rates")
flags.DEFINE_string("phase2_lrs", None, "learning rates of phase 2 (default: --lrs)")
flags.DEFINE_string("schedules", "constant,cosine,step", "schedules")
flags.DEFINE_integer("epochs", 50, "epochs per run")
flags.DEFINE_integer("seed", 0, "seed (part of every run's identity)")
flags.DEFINE_integer("data_seed", None, sweep_flags.DATA_SEED_HELP)
flags.DEFINE_integer("phase1_max_nnz", None, "phase 1: only configurations with structured nnz below this")
flags.DEFINE_integer("max_weight_sum", None, "phase 2 subset: w1+w2+w3 <= this (Appendix D)")
flags.DEFINE_integer("first_k_w2", None, "phase 2 subset: the first k W2 masks per W2 weight count")
flags.DEFINE_integer("max_levels", None, "phase 2: train at most this many nnz levels")
flags.DEFINE_bool("keep_going", False, "phase 2: keep going after the first level reaching the target")
SETTINGS = ("target", "width", "phase", "config", "init", "lrs", "phase2_lrs", "schedules", "epochs", "seed",
            "data_seed", "phase1_max_nnz", "max_weight_sum", "first_k_w2", "max_levels", "keep_going", "population_size")


def main(argv):
    sweep_flags.no_arguments(argv)
    args, values = sweep_flags.preset_values(job.PRESETS, SETTINGS)
    s = job.settings(values, chunk_steps=args.chunk_steps)
    if args.dry_run:
        return job.dry_run(s, args)
    job.run(s, args, log=logging.info)


if __name__ == "__main__":
    sweep_flags.run(main)
