"""ProsPr (SPEC §5): meta-gradients through 3 inner SGD steps (lr = the run's lr, momentum 0.9,
no weight decay) on minibatches 1–3, meta-loss on minibatch 4; keep the top B."""
from __future__ import annotations

import dataclasses

from sparsejax.pruning import base, registry, saliency


@dataclasses.dataclass(frozen=True)
class ProsPrParams(base.MethodParams):
    inner_steps: int = 3
    momentum: float = saliency.PROSPR_MOMENTUM

    def __post_init__(self):
        super().__post_init__()
        base.positive_int(self, "inner_steps")


@dataclasses.dataclass(frozen=True)
class ProsPr(base.AtInit):
    name = "prospr"
    label = "ProsPr"
    params_type = ProsPrParams

    def init_data(self, key, x_all, y_all):
        return base.draw_batches(key, x_all, y_all, self.params.inner_steps + 1)  # + the meta-loss batch

    def score_one(self, params, budget, key, lr, data, counts_K, widths):
        xs, ys = data
        return saliency.prospr(params, xs, ys, lr, budget, self.params.momentum)

    def prune_flops(self, ctx):
        """inner_steps + 1 dense gradient passes plus back-propagation through the inner steps
        (about one more pass each): 7 for the paper's 3."""
        return (2 * self.params.inner_steps + 1) * ctx.step(ctx.dense)


registry.register(ProsPr())
