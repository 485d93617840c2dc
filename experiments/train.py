r"""Train a population of masked MLPs and write one JSON line per model.

    python -m experiments.train                       # width 16, random masks at densities 0.25, 0.5, 1
    python -m experiments.train --widths=16 --masks=random --densities=0.25,0.5,1.0 \
        --lrs=0.05,0.1 --schedules=constant,cosine --seeds=0,1 --epochs=5 --output=out/train.jsonl
    python -m experiments.train --preset=smoke                 # seconds; writes out/smoke/train.jsonl
    python -m experiments.train --config=experiments/winners/sfp_95.json   # retrain one claimed run

Every combination of (mask, lr, schedule, seed) is one model; all train together in populations
of at most --population_size models. Density 1.0 keeps every weight: it is the dense network
(method dense). Random masks at low density often disconnect a width-16 network (no path from
the inputs to the output) and such a model stays at chance (50 %, loss ln 2); the defaults stay
above that. Each JSON line holds the run id, its resolved config and its metrics (accuracy on all
49,982 points, loss, weight/model nnz, diverged); a loss or accuracy that is not a finite number
is written as null and the run is marked diverged. With --store the runs also go to a sweep
store (resumable: finished runs are not trained again).

``--config=FILE`` retrains exactly one run: FILE is a winners file
(``{"name", "target", "accuracy", "model_nnz", "config"}``, see ``experiments/winners/``) or a
bare run config. It prints one JSON line with the run's id, accuracy, model nnz, method (the
registry name, or ``search``/``structured``), init (``random`` or the init file's name),
widths, the numeric path, and — for a winners file — the claimed numbers and whether they were
reproduced (same nnz, accuracy within 1e-6: the same numbers on the same numeric path); when
the file records the path its numbers came from (files written by ``python -m experiments.store
winner``), ``numeric_path_differences`` lists what differs here (``[]``: the same path).
"""
from __future__ import annotations

import json

from absl import flags

from sparsejax.jobs import train as job
from sparsejax.sweep import flags as sweep_flags

sweep_flags.define_sweep_flags(tuple(job.PRESETS))
flags.DEFINE_string("widths", "16", "hidden widths: one value (all three layers) or one per layer")
flags.DEFINE_enum("masks", "random", ["dense", "random"], "dense networks or random masks of --densities")
flags.DEFINE_string("densities", "0.25,0.5,1.0", "fractions of weights kept by random masks, in (0, 1] "
                    "(1.0: the dense network)")
flags.DEFINE_string("lrs", "0.1", "learning rates")
flags.DEFINE_string("schedules", "cosine", "constant, cosine or step")
flags.DEFINE_string("seeds", "0,1", "seeds (each gives a new init, mask and data order)")
flags.DEFINE_integer("epochs", 5, "epochs of 390 steps")
flags.DEFINE_string("config", None, "retrain one run: a winners JSON file (experiments/winners/*.json) or a run "
                    "config JSON; prints one JSON line (combine with no other setting flag)")
flags.DEFINE_string("output", None, "JSON-lines file written atomically, mode 0644 "
                    "(default: out/<preset>/train.jsonl, or out/train.jsonl without a preset)")
FLAGS = flags.FLAGS


def main(argv):
    sweep_flags.no_arguments(argv)
    if FLAGS.config is not None:
        given = [k for k in job.SETTINGS + ("preset", "store") if sweep_flags.explicitly_given(k)]
        if given:
            raise ValueError(f"--config: retrains the file's run as stored; do not combine it with --{given[0]}")
        print(json.dumps(job.retrain(FLAGS.config), allow_nan=False))
        return
    args = sweep_flags.sweep_args(store_required=False)
    values = sweep_flags.apply_preset(job.PRESETS, args.preset, {k: FLAGS[k].value for k in job.SETTINGS})
    job.run(job.with_default_output(values, args.preset), args)


if __name__ == "__main__":
    sweep_flags.run(main)
