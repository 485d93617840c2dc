"""SNIP (SPEC §5): one minibatch of 128, score |W ⊙ ∂L/∂W|, keep the top B; Xavier-normal init."""
from __future__ import annotations

import dataclasses

from sparsejax.pruning import base, registry, saliency


@dataclasses.dataclass(frozen=True)
class SNIPParams(base.MethodParams):
    init_scheme: str = "xavier_normal"  # the reference re-initialises SNIP's networks (SPEC §2)


@dataclasses.dataclass(frozen=True)
class SNIP(base.AtInit):
    name = "snip"
    label = "SNIP"
    params_type = SNIPParams

    def init_data(self, key, x_all, y_all):
        return base.draw_batches(key, x_all, y_all, 1)

    def score_one(self, params, budget, key, lr, data, counts_K, widths):
        xs, ys = data
        return saliency.snip(params, xs[0], ys[0], budget)

    def prune_flops(self, ctx):
        return ctx.step(ctx.dense)  # one dense gradient pass on a minibatch


registry.register(SNIP())
