"""Compacted shapes of at-init pruned networks (issue 18): how narrow do they train?

For every at-init method, width and budget, prunes ``--seeds`` random inits exactly as
``runs.run_population`` does (per-model keys, the method's init scheme, the full Cubist Spiral)
and plans their compaction (:func:`sparsejax.compaction.plan_compaction`). Prints, per method
and width, the kept units of each model's widest layer (median / p90 / max), the histogram of
each model's own bucketed shape (its widest layer's bucket), and the mean weight count of the
bucketed shapes relative to the full width (≈ the per-model-step cost ratio of the dense dots).

    python benchmarks/compaction_shapes.py                                # widths 32-256, B 15/30/65
    python benchmarks/compaction_shapes.py --widths=32,256 --seeds=2 --json
"""
from __future__ import annotations

import collections
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sparsejax import compaction, data, mlp, train
from sparsejax.pruning import registry

FLAGS = flags.FLAGS
flags.DEFINE_list("methods", ["random", "snip", "iter_snip", "force", "grasp", "synflow", "prospr"], "at-init methods")
flags.DEFINE_list("widths", ["32", "64", "128", "256"], "hidden widths (3 hidden layers each)")
flags.DEFINE_list("budgets", ["15", "30", "65"], "weight budgets")
flags.DEFINE_integer("seeds", 4, "models per (method, width, budget)")
flags.DEFINE_list("buckets", [str(b) for b in compaction.DEFAULT_BUCKETS], "bucket widths")
flags.DEFINE_bool("json", False, "print one JSON object instead of the table")


def measure(method_name: str, width: int, budgets: list[int], seeds: int, buckets: tuple[int, ...],
            x: jax.Array, y: jax.Array) -> dict:
    """Kept-unit counts and bucketed shapes of `seeds` pruned models per budget."""
    method = registry.get(method_name)
    widths = (width,) * 3
    p = seeds * len(budgets)
    keys = train.model_keys(2024, np.arange(p))
    params = mlp.init_population(jax.vmap(jax.random.wrap_key_data)(keys), widths, method.init_scheme)
    budget = jnp.asarray(np.repeat(budgets, seeds), jnp.int32)
    lr = jnp.full((p,), 0.1, jnp.float32)
    wm = method.prune_at_init(params, budget, keys, lr, x, y, widths)
    plan = compaction.plan_compaction(mlp.masks_from_weights(wm, "out_degree"), buckets)
    widest = plan.counts_PxL.max(axis=1)
    own = plan.model_shapes_PxL
    full_n = mlp.weight_count(widths)
    return {"method": method_name, "width": width, "budgets": np.repeat(budgets, seeds).tolist(),
            "widest_kept": widest.tolist(), "model_shapes": own.tolist(), "population_shape": list(plan.shape),
            "cost_ratio": float(np.mean([mlp.weight_count(tuple(s)) / full_n for s in own]))}


def main(argv):
    del argv
    x, y = (jnp.asarray(a) for a in data.load("cubist_spiral"))
    buckets = compaction.check_buckets([int(b) for b in FLAGS.buckets])
    budgets = [int(b) for b in FLAGS.budgets]
    rows, t0 = [], time.perf_counter()
    for name in FLAGS.methods:
        for w in (int(v) for v in FLAGS.widths):
            rows.append(measure(name, w, budgets, FLAGS.seeds, buckets, x, y))
    widest = np.concatenate([r["widest_kept"] for r in rows])
    hist = collections.Counter(max(s) for r in rows for s in r["model_shapes"])
    hist_by_width = {w: collections.Counter(max(s) for r in rows if r["width"] == w for s in r["model_shapes"])
                     for w in sorted({r["width"] for r in rows})}
    summary = {"models": int(len(widest)), "widest_kept_median": float(np.median(widest)),
               "widest_kept_p90": float(np.percentile(widest, 90)), "widest_kept_max": int(widest.max()),
               "bucket_histogram": {int(k): int(v) for k, v in sorted(hist.items())},
               "bucket_histogram_by_width": {int(w): {int(k): int(v) for k, v in sorted(h.items())}
                                             for w, h in hist_by_width.items()},
               "seconds": round(time.perf_counter() - t0, 1)}
    if FLAGS.json:
        print(json.dumps({"rows": rows, "summary": summary}))
        return
    print(f"{'method':<10} {'width':>5} {'kept median/p90/max':>20}  {'own widest bucket: models':<40} "
          f"{'pop shape':<16} cost")
    for r in rows:
        k = np.asarray(r["widest_kept"])
        h = collections.Counter(max(s) for s in r["model_shapes"])
        hs = " ".join(f"{b}:{n}" for b, n in sorted(h.items()))
        print(f"{r['method']:<10} {r['width']:>5} {np.median(k):>8.0f}/{np.percentile(k, 90):>4.0f}/{k.max():>4d}  "
              f"{hs:<40} {str(tuple(r['population_shape'])):<16} {r['cost_ratio']:.4f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
