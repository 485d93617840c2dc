"""Iter SNIP (SPEC §5): `steps` minibatches (10), exponential keep schedule, pruned weights stay
pruned (scores |W_current ⊙ g| on the pruned network)."""
from __future__ import annotations

import dataclasses

import numpy as np

from sparsejax import mlp
from sparsejax.pruning import base, registry, saliency, schedules


@dataclasses.dataclass(frozen=True)
class IterativeParams(base.MethodParams):
    steps: int = schedules.ITER_STEPS  # minibatches / pruning steps (paper B.6: 10)

    def __post_init__(self):
        super().__post_init__()
        base.positive_int(self, "steps")


@dataclasses.dataclass(frozen=True)
class IterSNIP(base.AtInit):
    name = "iter_snip"
    label = "Iter SNIP"
    params_type = IterativeParams
    revive = False  # FORCE: True

    def count_table(self, widths, budgets, total_steps=0):
        return schedules.table(schedules.iterative_counts, mlp.weight_count(widths), base.budgets_of(budgets),
                               self.params.steps)

    def init_data(self, key, x_all, y_all):
        return base.draw_batches(key, x_all, y_all, self.params.steps)

    def score_one(self, params, budget, key, lr, data, counts_K, widths):
        xs, ys = data
        traj = saliency.iterative_saliency_trajectory(params, xs, ys, counts_K, self.revive)
        return tuple(m[-1] for m in traj)

    def prune_flops(self, ctx):
        """One gradient pass per step, step j on the network left by step j − 1 (N first)."""
        keep = schedules.iterative_counts(ctx.n_total, ctx.budget, self.params.steps)
        before = np.concatenate([[ctx.n_total], keep[:-1]])
        return float(sum(ctx.step(ctx.uniform(int(c))) for c in before))


registry.register(IterSNIP())
