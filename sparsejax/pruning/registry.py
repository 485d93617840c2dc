"""The one registry of pruning methods (SPEC §5).

A method is a static, hashable object (the structure it closes over) whose per-model numbers —
budgets, keys, learning rates — arrive as batched arrays, so one compilation serves every budget
of a width. Its life cycle for a population:

1. ``init_scheme``: how random-init runs draw their weights (Xavier-normal for SNIP and GraSP).
2. ``prune_at_init(params, budget, key, lr, x, y, widths) -> weight masks`` (P-batched), or
   None for methods that start dense or prune during training.
3. ``hook(cfg, n_examples)``: a :class:`sparsejax.train.MaskHook` for mask events during
   training (GMP, RigL), or None.
4. ``fit(pop, x, y, cfg, progress)``: training; LTH overrides it with rounds and rewinding.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from sparsejax import mlp, train

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Method:
    """Base: dense training, no pruning."""
    name: str = "dense"
    needs_budget: bool = False
    init_scheme: str = "torch"

    def prune_at_init(self, params: mlp.Params, budget: Array, key: Array, lr: Array,
                      x_all: Array, y_all: Array, widths: tuple[int, ...]) -> list[Array] | None:
        return None

    def hook_state(self, budget: Array, key: Array, widths: tuple[int, ...]) -> Any:
        return ()

    def hook(self, cfg: train.TrainConfig, n_examples: int) -> train.MaskHook | None:
        return None

    def fit(self, pop: train.Population, x_all, y_all, cfg: train.TrainConfig,
            progress: Callable | None = None) -> train.Population:
        return train.train(pop, x_all, y_all, cfg, hook=self.hook(cfg, len(x_all)), progress=progress)


@dataclasses.dataclass(frozen=True)
class Random(Method):
    """Random pruning at initialisation: exactly B weights kept, uniformly over all layers."""
    name: str = "random"
    needs_budget: bool = True

    def prune_at_init(self, params, budget, key, lr, x_all, y_all, widths):
        return jax.vmap(lambda k, b: mlp.random_weight_masks(k, widths, b))(key, budget)


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} registered twice")
    REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    """The method called `name`; ValueError naming every registered method otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(names())}")
    return REGISTRY[name]


def names() -> list[str]:
    return list(REGISTRY)


register(Method())
register(Random())
