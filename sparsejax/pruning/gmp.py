"""Gradual magnitude pruning (SPEC §5, paper B.1): dense start, cubic schedule of global
magnitude pruning events during training."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sparsejax import mlp, train
from sparsejax.pruning import base, magnitude, registry, schedules


@dataclasses.dataclass(frozen=True)
class GMPParams(base.MethodParams):
    """interval = int(T / interval_divisor) steps between events (97 for T = 19,500); the cubic
    reaches B at event ``cubic_events`` (keep int(B + (N − B)(1 − t/(cubic_events·interval))³))."""
    interval_divisor: int = schedules.GMP_INTERVAL_DIVISOR  # the reference's PRUNINGTIMES + 1 = 200
    cubic_events: int = schedules.GMP_PRUNING_TIMES         # the reference's PRUNINGTIMES = 199

    def __post_init__(self):
        super().__post_init__()
        base.positive_int(self, "interval_divisor", "cubic_events")


@dataclasses.dataclass(frozen=True)
class GMPHook(train.MaskHook):
    """GMP's pruning events for a run of `total_steps` steps: at the start of step t = interval·k
    (k >= 1, t < T) keep ``hook_state[:, k − 1]`` weights by global magnitude among the live
    ones. ``hook_state`` is the (P, E) table of :meth:`GMP.count_table`."""
    total_steps: int
    interval_divisor: int = schedules.GMP_INTERVAL_DIVISOR

    def is_event(self, step):
        interval = schedules.gmp_interval(self.total_steps, self.interval_divisor)
        return (step % interval == 0) & (step >= interval) & (step < self.total_steps)

    def update(self, pop, step, x, y):
        table = pop.hook_state
        n_events = len(schedules.gmp_event_steps(self.total_steps, self.interval_divisor))
        if getattr(table, "ndim", 0) != 2 or table.shape[1] != n_events:
            raise ValueError(f"GMP hook_state must be the (P, {n_events}) count table (GMP.prepare), "
                             f"got shape {getattr(table, 'shape', None)}")
        k = step // schedules.gmp_interval(self.total_steps, self.interval_divisor)
        keep_P = jnp.take(table, k - 1, axis=1)
        return base.with_weight_masks(pop, jax.vmap(magnitude.magnitude_prune)(pop.params, pop.masks, keep_P))


@dataclasses.dataclass(frozen=True)
class GMP(base.Method):
    """Events at t = 97k for every k >= 1 with t < T (201 events for T = 19,500, as the
    reference's loop; the cubic reaches B at event 199 and events 200–201, which the reference
    overshoots to B − 1, keep B here)."""
    name = "gmp"
    label = "GMP"
    params_type = GMPParams

    def hook(self, cfg, n_examples):
        return GMPHook(base.total_steps(cfg, n_examples), self.params.interval_divisor)

    def count_table(self, widths, budgets, total_steps=schedules.GMP_TOTAL_STEPS):
        return schedules.table(schedules.gmp_counts, mlp.weight_count(widths), base.budgets_of(budgets), total_steps,
                               self.params.interval_divisor, self.params.cubic_events)

    def prepare(self, pop, cfg, n_examples):
        total = base.total_steps(cfg, n_examples)
        schedules.gmp_interval(total, self.params.interval_divisor)  # ValueError when too few steps
        return pop._replace(hook_state=base.like(self.count_table(cfg.widths, pop.hook_state, total), pop.hook_state))

    def weights_per_step(self, n_total: int, budget: int, total_steps: int):
        """Weights trained at every step (T,): N until the first event, then the event counts."""
        from sparsejax.analysis.flops import weights_per_step
        p = self.params
        return weights_per_step(n_total, schedules.gmp_event_steps(total_steps, p.interval_divisor),
                                schedules.gmp_counts(n_total, budget, total_steps, p.interval_divisor, p.cubic_events),
                                total_steps)

    def flops(self, ctx):
        return 0.0, ctx.steps_at(self.weights_per_step(ctx.n_total, ctx.budget, ctx.total_steps))


registry.register(GMP())
