"""Dense training, the baseline (SPEC §5): no pruning, no budget."""
from __future__ import annotations

import dataclasses

from sparsejax.pruning import base, registry


@dataclasses.dataclass(frozen=True)
class Dense(base.Method):
    """Train the full network (also what the search kinds ``structured`` and ``search`` train,
    their masks fixed by the run config)."""
    name = "dense"
    label = "Dense training"
    params_type = base.MethodParams
    needs_budget = False

    def flops(self, ctx):
        return 0.0, ctx.total_steps * ctx.step(ctx.dense)


registry.register(Dense())
