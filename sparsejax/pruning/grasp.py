"""GraSP (SPEC §5): 25 samples of each class (the first met in a shuffled pass), temperature 200,
score −W ⊙ Hg, keep the B lowest; Xavier-normal init."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from sparsejax import shuffle
from sparsejax.pruning import base, registry, saliency

GRASP_PER_CLASS = 25
GRASP_PREFIX = 1024  # a shuffled prefix this long holds 25 of each class except with p < 1e-200
GRASP_GRAD_PASSES = 3  # g, then the Hessian-gradient product (a pass with a graph and its double backward)


@dataclasses.dataclass(frozen=True)
class GraSPParams(base.MethodParams):
    init_scheme: str = "xavier_normal"  # the reference re-initialises GraSP's networks (SPEC §2)
    temperature: float = saliency.GRASP_TEMPERATURE
    samples_per_class: int = GRASP_PER_CLASS

    def __post_init__(self):
        super().__post_init__()
        base.positive_int(self, "samples_per_class")
        if not self.temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {self.temperature!r}")


def grasp_samples(key, x_all, y_all, per_class: int = GRASP_PER_CLASS):
    """The first `per_class` samples of each class met in a shuffled pass: (per_class, 2) of
    class 0 and of class 1. The prefix scanned grows with `per_class` (1024 per 25)."""
    prefix = min(GRASP_PREFIX * -(-int(per_class) // GRASP_PER_CLASS), int(x_all.shape[0]))
    idx = shuffle.permute(jnp.arange(prefix), shuffle.epoch_round_keys(key, 0), x_all.shape[0])
    y = y_all[idx]
    pick = lambda cls: idx[jnp.argsort(jnp.where(y == cls, 0, 1), stable=True)[:per_class]]  # noqa: E731
    return x_all[pick(0)], x_all[pick(1)]


@dataclasses.dataclass(frozen=True)
class GraSP(base.AtInit):
    name = "grasp"
    label = "GraSP"
    params_type = GraSPParams

    def init_data(self, key, x_all, y_all):
        return grasp_samples(key, x_all, y_all, self.params.samples_per_class)

    def score_one(self, params, budget, key, lr, data, counts_K, widths):
        x0, x1 = data
        return saliency.grasp(params, x0, x1, budget, self.params.temperature)

    def prune_flops(self, ctx):
        return GRASP_GRAD_PASSES * ctx.conv.pass_flops(2 * self.params.samples_per_class, ctx.dense)


registry.register(GraSP())
