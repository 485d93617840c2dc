"""Train a population of masked MLPs and write one JSON line per model.

    python -m experiments.train --widths=16 --masks=random --densities=0.1,0.2,0.5 \
        --lrs=0.05,0.1 --schedules=constant,cosine --seeds=0,1 --epochs=5 --output=out/train.jsonl

Every combination of (density, lr, schedule, seed) is one model; all train together in
populations of at most --population models. Each JSON line holds the run id, its resolved
config and its metrics (accuracy on all 49,982 points, loss, weight/model nnz, diverged).
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile

from absl import app, flags, logging

from sparsejax.sweep.flags import parse_floats, parse_ints, parse_strs

FLAGS = flags.FLAGS
flags.DEFINE_list("widths", ["16"], "hidden widths: one value (all three layers) or one per layer")
flags.DEFINE_enum("masks", "random", ["dense", "random"], "dense networks or random masks of --densities")
flags.DEFINE_list("densities", ["0.05", "0.1", "0.2", "0.4"], "fractions of weights kept (random masks)")
flags.DEFINE_list("lrs", ["0.1"], "learning rates")
flags.DEFINE_list("schedules", ["cosine"], "constant, cosine or step")
flags.DEFINE_list("seeds", ["0", "1"], "seeds (each gives a new init, mask and data order)")
flags.DEFINE_integer("epochs", 3, "epochs of 390 steps")
flags.DEFINE_integer("population", 1024, "largest population trained at once")
flags.DEFINE_string("output", "out/train.jsonl", "JSON-lines file written (atomically)")


def build_configs() -> list[dict]:
    """The resolved run configs of the flags; ValueError naming the flag on bad input."""
    from sparsejax import runs, train
    widths = parse_ints("widths", FLAGS.widths, min_value=1)
    widths = widths * 3 if len(widths) == 1 else widths
    lrs = parse_floats("lrs", FLAGS.lrs, positive=True)
    scheds = parse_strs("schedules", FLAGS.schedules, train.SCHEDULES)
    seeds = parse_ints("seeds", FLAGS.seeds, min_value=0)
    if FLAGS.epochs < 1:
        raise ValueError(f"--epochs: must be >= 1, got {FLAGS.epochs}")
    if FLAGS.population < 1:
        raise ValueError(f"--population: must be >= 1, got {FLAGS.population}")
    if FLAGS.masks == "dense":
        masks = [{"method": "dense"}]
    else:
        dens = parse_floats("densities", FLAGS.densities, positive=True)
        if any(d > 1 for d in dens):
            raise ValueError(f"--densities: must be in (0, 1], got {FLAGS.densities}")
        masks = [{"method": "random", "density": d} for d in dens]
    configs = []
    for m, lr, s, seed in itertools.product(masks, lrs, scheds, seeds):
        cfg = dict(m, widths=widths, lr=lr, schedule=s, seed=seed, epochs=FLAGS.epochs)
        try:
            configs.append(runs.validate(cfg))
        except ValueError as e:
            raise ValueError(f"--{str(e).split(':')[0]}s: {str(e).split(':', 1)[1].strip()}") from None
    return configs


def write_jsonl(path: str, rows: list[dict]) -> None:
    """All rows at once through a temporary file and a rename: never a half-written file."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        configs = build_configs()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    from sparsejax import runs
    from sparsejax.sweep import identity
    rows = []
    for start in range(0, len(configs), FLAGS.population):
        pop = configs[start:start + FLAGS.population]
        logging.info("training %d models (%d/%d)", len(pop), start + len(pop), len(configs))
        for rec in runs.run_population(pop, progress=lambda d, t, s: logging.info("step %d/%d  %.1fs", d, t, s)):
            rows.append({k: rec[k] for k in ("run_id", "accuracy", "loss", "weight_nnz", "model_nnz", "diverged")}
                        | {"config": identity.resolve(rec["config"])})
    write_jsonl(FLAGS.output, rows)
    best = sorted(rows, key=lambda r: (-r["accuracy"], r["model_nnz"]))
    print(f"trained {len(rows)} models; wrote {FLAGS.output}")
    for r in best[:5]:
        c = r["config"]
        print(f"  acc {r['accuracy']:.4f}  model nnz {r['model_nnz']:4d}  weight nnz {r['weight_nnz']:4d}  "
              f"{c['method']} density={c.get('density')} lr={c['lr']} {c['schedule']} seed={c['seed']}  id={r['run_id']}")
    for target in (0.95, 0.995):
        hits = [r for r in rows if r["accuracy"] >= target and not r["diverged"]]
        if hits:
            r = min(hits, key=lambda r: r["model_nnz"])
            print(f"sparsest reaching {target:.1%}: {r['model_nnz']} nnz ({r['accuracy']:.2%}), run {r['run_id']}")
        else:
            print(f"no model reached {target:.1%}")


if __name__ == "__main__":
    app.run(main)
