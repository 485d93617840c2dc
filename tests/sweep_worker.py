r"""A tiny sweep launcher for tests: dense/random runs over a small grid, trained by run_sweep.

  python tests/sweep_worker.py --store=S.sqlite --preset=tiny [--sleep=0.5] [--dry_run]

It is a real launcher built from ``sparsejax.sweep.flags`` (so tests see the CLI behaviour:
one error line, status 2, nothing written) and ``--sleep`` pauses after each population so a
test can kill it part-way. ``configs(settings)`` is shared with the in-process tests.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sparsejax import train  # noqa: E402
from sparsejax.sweep import flags as sweep_flags  # noqa: E402
from sparsejax.sweep import plan as plan_lib  # noqa: E402
from sparsejax.sweep import runner  # noqa: E402

PRESETS = {
    # 12 runs of one program: 3 lrs x 2 schedules x 2 seeds
    "tiny": {"methods": "dense", "width": "2", "lrs": "0.05,0.1,0.2",
             "schedules": "constant,cosine", "seeds": "0,1", "epochs": 1},
}

sweep_flags.define_sweep_flags()
flags.DEFINE_string("methods", "dense", "Comma-separated methods.")
flags.DEFINE_string("width", "2", "Comma-separated hidden widths (three equal layers).")
flags.DEFINE_string("budgets", None, "Comma-separated weight budgets (methods that need one).")
flags.DEFINE_string("lrs", "0.1", "Comma-separated learning rates.")
flags.DEFINE_string("schedules", "constant", "Comma-separated schedules.")
flags.DEFINE_string("seeds", "0", "Comma-separated seeds.")
flags.DEFINE_integer("epochs", 1, "Epochs per run.")
flags.DEFINE_string("init", "random", "'random' or an init .npz file.")
flags.DEFINE_float("sleep", 0.0, "Seconds to pause after each population (kill tests).")

FLAGS = flags.FLAGS
SETTINGS = ("methods", "width", "budgets", "lrs", "schedules", "seeds", "epochs", "init")


def configs(settings: dict[str, Any]) -> list[dict]:
    """The grid of run configs that ``settings`` (flag values by name) describe."""
    budgets = settings.get("budgets")
    return plan_lib.grid(
        method=sweep_flags.parse_strs("methods", settings["methods"]),
        widths=[(w,) * 3 for w in sweep_flags.parse_ints("width", settings["width"])],
        budget=sweep_flags.parse_ints("budgets", budgets) if budgets else [None],
        lr=sweep_flags.parse_floats("lrs", settings["lrs"]),
        schedule=sweep_flags.parse_strs("schedules", settings["schedules"], train.SCHEDULES),
        seed=sweep_flags.parse_ints("seeds", settings["seeds"]),
        epochs=int(settings["epochs"]),
        init=settings["init"],
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"arguments: unexpected {' '.join(argv[1:])!r}")
    args = sweep_flags.sweep_args()
    settings = sweep_flags.apply_preset(PRESETS, args.preset, {k: FLAGS[k].value for k in SETTINGS})
    plan = plan_lib.shard(plan_lib.Plan(configs(settings)), args.num_shards, args.shard_index)

    def log(msg: str) -> None:
        print(msg, flush=True)
        if msg.startswith("sweep: population") and FLAGS.sleep > 0:
            time.sleep(FLAGS.sleep)

    runner.run_sweep(plan, args.store, population_size=args.population_size,
                     chunk_steps=args.chunk_steps, dry_run=args.dry_run, log=log)


if __name__ == "__main__":
    sweep_flags.run(main)
