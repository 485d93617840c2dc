r"""Beyond the paper's bound (issue #15): spend a compute budget looking for sparser models.

    python -m experiments.beyond_search --target=0.95 --budget_model_steps=60000000 \
        --store=out/beyond95/store.sqlite
    python -m experiments.beyond_search --target=0.95 --structures=3x2x2 --min_nnz=18 --max_nnz=26 \
        --keep=1 --budget_model_steps=60000000 --store=out/exhaustive322.sqlite   # no halving

The paper's search trains one configuration per target, one init per mask and (for (7,3,3)) the
first 3 W2 masks per W2 count. This launcher trains, in ascending model nnz, one level at a time:

1. masks of every configuration in ``--structures`` (default: every (d1,d2,d3) with each d >=
   ``--min_units`` and structured nnz <= that of ``--near`` + ``--slack``), at every model nnz in
   [``--min_nnz``, ``--max_nnz``]: the whole level when it is small, else a uniform sample
   without replacement (``--sample_seed``; nested, so a bigger budget extends a search), the
   same number of masks per (configuration, level), as many as the budget allows;
   × ``--lrs`` × ``--schedules`` × ``--seeds``;
2. successive halving over prefixes of the real protocol (``--rungs``, ``--keep``,
   ``--signal``), ranking within each (configuration, nnz level); with ``--keep=1`` every run
   is trained to the end with its state measured at every rung, and an audit line says how
   often halving with keep 1/2, 1/4, 1/8 (by accuracy or loss) would have cut each
   (configuration, level)'s best run;
3. then the ``--reseed_top`` best masks of each (configuration, level) again with other inits
   (``--reseed_seeds`` × lrs × schedules), halving as well, with ``--reseed_fraction`` of the
   budget.

Prints the Pareto frontier (model nnz vs best accuracy) after every level and writes the sparsest
model exceeding the target to ``<--winners_dir>/<--name>.json`` ({"name", "target",
"accuracy", "model_nnz", "config"}: the full resolved run config; the run id is
``identity.run_id(config)``). Everything goes through the store: relaunching resumes, reusing
every stored state and record. The budget counts model-steps as planned (what a fresh store
would train); a resumed launch trains only what is missing.

The job itself is ``sparsejax.jobs.beyond_search``.
"""
from __future__ import annotations

import os

from absl import flags

from sparsejax.jobs import beyond_search as job
from sparsejax.sweep import flags as sweep_flags

sweep_flags.define_sweep_flags()
flags.DEFINE_float("target", 0.95, "target accuracy rho in (0, 1): a model counts when accuracy > rho")
flags.DEFINE_integer("budget_model_steps", None, "compute budget in model-steps (one SGD step of one model); "
                     "a 50-epoch run is 19,500")
flags.DEFINE_string("structures", None, "configurations d1xd2xd3, comma-separated (default: see --near)")
flags.DEFINE_string("near", "3x3x3", "with --slack: every configuration whose structured nnz is at most this "
                    "one's + slack")
flags.DEFINE_integer("slack", 0, "structured nnz above --near's still searched")
flags.DEFINE_integer("min_units", 2, "every layer of a searched configuration has at least this many units")
flags.DEFINE_integer("width", job.MAX_WIDTH, f"width D of the networks the masks live in (<= {job.MAX_WIDTH})")
flags.DEFINE_integer("min_nnz", None, "lowest model nnz level searched (default: --max_nnz - 4)")
flags.DEFINE_integer("max_nnz", None, "highest model nnz level searched (default: the paper's bound - 1)")
flags.DEFINE_integer("masks_per_level", None, "at most this many masks per (configuration, level) "
                     "(default: as many as the budget allows)")
flags.DEFINE_integer("sample_seed", 0, "seed of the uniform sampling of masks within a level")
flags.DEFINE_string("lrs", "0.05,0.1", "learning rates")
flags.DEFINE_string("schedules", "constant,cosine,step", "schedules")
flags.DEFINE_string("seeds", "0", "seeds of the first stage (a seed changes the init and data order)")
flags.DEFINE_string("rungs", "5,15,50", "halving rungs in epochs; the last is the runs' epochs")
flags.DEFINE_float("keep", 0.25, "fraction of each (configuration, level) kept at each rung (1: no halving)")
flags.DEFINE_enum("signal", "accuracy", list(job.halving.SIGNALS), "ranking signal at a rung (full training set)")
flags.DEFINE_integer("reseed_top", 2, "stage 2: the best masks of each (configuration, level) retrained")
flags.DEFINE_string("reseed_seeds", "1,2,3", "stage 2: seeds (other inits) for those masks")
flags.DEFINE_float("reseed_fraction", 0.25, "share of the budget kept for stage 2, in [0, 1)")
flags.DEFINE_string("winners_dir", os.path.join("experiments", "winners"), "folder of the winner JSON files")
flags.DEFINE_string("name", None, "winner file name (default: beyond_<target percent>, e.g. beyond_95)")
FLAGS = flags.FLAGS


def main(argv):
    sweep_flags.no_arguments(argv)
    job.run(job.settings({k: FLAGS[k].value for k in job.FLAG_NAMES}, sweep_flags.sweep_args()))


if __name__ == "__main__":
    sweep_flags.run(main)
