"""Random pruning at initialisation: exactly B weights chosen uniformly at random (SPEC §5)."""
from __future__ import annotations

import dataclasses

import jax

from sparsejax import mlp
from sparsejax.pruning import base, registry


@dataclasses.dataclass(frozen=True)
class Random(base.AtInit):
    """Uniformly random weight masks with exactly B entries, drawn from the model's pruning key;
    no scoring cost."""
    name = "random"
    label = "Random"
    params_type = base.MethodParams

    def score_one(self, params, budget, key, lr, data, counts_K, widths):
        return mlp.random_weight_masks(jax.random.wrap_key_data(key), widths, budget)


registry.register(Random())
