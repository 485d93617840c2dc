"""The lottery ticket hypothesis: iterative magnitude pruning with rewinding (SPEC §5, paper B.2)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import mlp, train
from sparsejax.pruning import base, magnitude, registry, schedules


@dataclasses.dataclass(frozen=True)
class LTHParams(base.MethodParams):
    rounds: int = schedules.LTH_ROUNDS  # 5 trainings of `epochs` epochs each

    def __post_init__(self):
        super().__post_init__()
        base.positive_int(self, "rounds")
        if self.rounds < 2:
            raise ValueError(f"rounds: LTH needs at least 2 rounds, got {self.rounds}")


@dataclasses.dataclass(frozen=True)
class LTH(base.Method):
    """`rounds` rounds of `epochs` epochs; after rounds 1–4 keep ``schedules.lth_counts(N, B)``
    weights (the reference's int(N·(B/N)^(k/4)), floored at B) by trained magnitude, rewind every
    parameter to the initialisation, fresh momentum and a fresh schedule; each round sees fresh
    data orders."""
    name = "lth"
    label = "LTH"
    params_type = LTHParams

    @property
    def training_passes(self) -> int:
        return self.params.rounds

    def count_table(self, widths, budgets, total_steps=0):
        return schedules.table(schedules.lth_counts, mlp.weight_count(widths), base.budgets_of(budgets),
                               self.params.rounds)

    def fit(self, pop, x_all, y_all, cfg, progress=None, observe=None):
        """The rounds; the returned ``loss_sums`` are every round's epochs, concatenated
        (P, rounds · epochs)."""
        rounds = self.params.rounds
        init_params = pop.params
        targets_PxR = base.like(self.count_table(cfg.widths, pop.hook_state), pop.hook_state)
        sums = []
        for r in range(rounds):
            if r:
                wm = jax.vmap(magnitude.magnitude_prune)(pop.params, pop.masks, targets_PxR[:, r - 1])
                pop = base.with_weight_masks(pop._replace(params=init_params), wm)
                pop = pop._replace(momentum=jax.tree.map(jnp.zeros_like, pop.momentum))
            report = None
            if progress is not None:
                report = lambda d, t, s, r=r: progress(r * t + d, rounds * t, s)  # noqa: E731
            pop = train.train(train.with_loss_sums(pop, cfg.epochs), x_all, y_all, cfg, epoch_offset=r * cfg.epochs,
                              progress=report, observe=observe)
            sums.append(pop.loss_sums)
        return pop._replace(loss_sums=jnp.concatenate(sums, axis=1))

    def flops(self, ctx):
        counts = np.concatenate([[ctx.n_total], schedules.lth_counts(ctx.n_total, ctx.budget, self.params.rounds)])
        return 0.0, float(sum(ctx.total_steps * ctx.step(ctx.params_at(int(c))) for c in counts))


registry.register(LTH())
