"""The pruning-method protocol (SPEC §5): what one module must define to be a method.

A method is a frozen dataclass (hashable, equal by value, so it can be a static jit argument and
one compilation serves every budget of a shape) whose one field is ``params``, an instance of
its frozen ``params_type`` dataclass holding the method's own hyperparameters with SPEC
defaults. Per-model numbers (budgets, keys, learning rates) arrive as batched arrays.

Class attributes (what the method *is*):

* ``name``: the registry key and the ``method`` of a run config; ``label``: its name in figures;
* ``params_type``: a frozen dataclass subclassing :class:`MethodParams` (so every method has
  an ``init_scheme`` field); ``RunConfig.method_params`` holds the fields that differ from its
  defaults, so they are in the run id;
* ``needs_budget``: whether a run takes a weight budget B.

Life cycle of a population (``sparsejax.runs`` drives it):

1. ``init_scheme`` (from ``params``): how random-init runs draw their weights.
2. ``prune_at_init(params, budget, key, lr, x_all, y_all, widths)``: P-batched weight masks, or
   None for methods that start dense or prune during training. :class:`AtInit` implements it
   from two per-model pieces: ``init_data`` (what data the method sees, drawn from the model's
   key: nothing outside the module decides "ProsPr needs 4 batches") and ``score_one``.
3. ``initial_hook_state(budget, key, widths)``: ``Population.hook_state`` at the start; by
   default the (P,) int32 budgets, which ``prepare(pop, cfg, n_examples)`` (called once before
   the first step) turns into the count tables the ``hook`` reads.
4. ``hook(cfg, n_examples)``: a :class:`sparsejax.train.MaskHook` (mask events during training:
   GMP, RigL) or None.
5. ``fit(pop, x, y, cfg, progress, observe)``: training (LTH overrides it with its rounds);
   ``training_passes``: how many full trainings ``fit`` costs (LTH: its rounds).
6. ``flops(ctx)``: ``(prune, train)`` FLOPs of one run (:mod:`sparsejax.analysis.flops` gives
   the context: convention, bias model, counts).

Adding a method: one module that subclasses :class:`Method` (or :class:`AtInit`) and calls
``registry.register(TheMethod())`` at its end, imported once (the paper's methods are imported
by ``registry`` itself).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import mlp, shuffle, train

Array = jax.Array
BATCH = 128


@dataclasses.dataclass(frozen=True)
class MethodParams:
    """Hyperparameters every method has: the init scheme of random-init runs (SPEC §2:
    PyTorch's default, Xavier-normal for SNIP and GraSP)."""
    init_scheme: str = "torch"

    def __post_init__(self) -> None:
        if self.init_scheme not in mlp.INIT_SCHEMES:
            raise ValueError(f"init_scheme: unknown {self.init_scheme!r}; allowed: {', '.join(mlp.INIT_SCHEMES)}")


def positive_int(obj: Any, *fields: str) -> None:
    """ValueError naming the first of `fields` of `obj` that is not an int >= 1."""
    for f in fields:
        v = getattr(obj, f)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{f}: must be an integer >= 1, got {v!r}")


def draw_batches(key: Array, x_all: Array, y_all: Array, n_batches: int, batch: int = BATCH) -> tuple[Array, Array]:
    """`n_batches` disjoint random minibatches of one model, (K, B, 2) and (K, B), from the keyed
    permutation of the data (raw key data `key`)."""
    pos = jnp.arange(n_batches * batch)
    idx = shuffle.permute(pos, shuffle.epoch_round_keys(key, 0), x_all.shape[0]).reshape(n_batches, batch)
    return x_all[idx], y_all[idx]


def with_weight_masks(pop: train.Population, weight_masks) -> train.Population:
    """New weight masks (P-batched); biases by the out-degree rule; parameters re-masked."""
    masks = mlp.masks_from_weights(list(weight_masks), "out_degree")
    return pop._replace(masks=masks, params=mlp.apply_masks(pop.params, masks))


def like(table: np.ndarray, ref: Any) -> Array:
    """A host table as a device array placed like `ref` (sharded along P when `ref` is)."""
    sharding = getattr(ref, "sharding", None)
    arr = jnp.asarray(table)
    if sharding is not None and hasattr(sharding, "spec"):  # a NamedSharding over the population
        return jax.device_put(arr, sharding)
    return arr


def budgets_of(budget: Any) -> np.ndarray:
    """The population's budgets as host int64 (P,)."""
    return np.asarray(budget).reshape(-1).astype(np.int64)


def total_steps(cfg: train.TrainConfig, n_examples: int) -> int:
    return cfg.epochs * cfg.steps_per_epoch(n_examples)


@dataclasses.dataclass(frozen=True)
class Method:
    """Base of every method (module docstring); alone it would be dense training."""
    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    params_type: ClassVar[type] = MethodParams
    needs_budget: ClassVar[bool] = True
    params: Any = None  # an instance of params_type; None: its defaults

    def __post_init__(self) -> None:
        if self.params is None:
            object.__setattr__(self, "params", self.params_type())
        if not isinstance(self.params, self.params_type):
            raise ValueError(f"{self.name}: params must be a {self.params_type.__name__}, "
                             f"got {type(self.params).__name__}")

    @property
    def init_scheme(self) -> str:
        return self.params.init_scheme

    @property
    def training_passes(self) -> int:
        """Full trainings one run costs (the sweep plan's cost model)."""
        return 1

    def prune_at_init(self, params: mlp.Params, budget: Array, key: Array, lr: Array,
                      x_all: Array, y_all: Array, widths: tuple[int, ...]) -> list[Array] | None:
        return None

    def initial_hook_state(self, budget: Array, key: Array, widths: tuple[int, ...]) -> Any:
        """``Population.hook_state`` before :meth:`prepare`: the (P,) int32 budgets (methods
        without a budget get zeros); ``prepare`` replaces them with the hook's count tables."""
        return jnp.asarray(budget, jnp.int32)

    def hook(self, cfg: train.TrainConfig, n_examples: int) -> train.MaskHook | None:
        return None

    def count_table(self, widths: tuple[int, ...], budgets, total_steps: int = 0) -> np.ndarray | None:
        """(P, K) int32 keep counts this method's schedule uses for each budget (the reference's
        float64 expressions floored at B), or None for a method without a count schedule."""
        return None

    def prepare(self, pop: train.Population, cfg: train.TrainConfig, n_examples: int) -> train.Population:
        """The population with ``hook_state`` as the hook consumes it (default: unchanged)."""
        return pop

    def fit(self, pop: train.Population, x_all, y_all, cfg: train.TrainConfig,
            progress: Callable | None = None, observe: Callable | None = None) -> train.Population:
        pop = self.prepare(pop, cfg, len(x_all))
        return train.train(pop, x_all, y_all, cfg, hook=self.hook(cfg, len(x_all)), progress=progress,
                           observe=observe)

    def flops(self, ctx) -> tuple[float, float]:
        """(prune, train) FLOPs of one run, `ctx` a :class:`sparsejax.analysis.flops.FlopsContext`."""
        raise NotImplementedError(f"method {self.name!r} defines no FLOPs model")


@dataclasses.dataclass(frozen=True)
class AtInit(Method):
    """Pruning at initialisation: a pure per-model scoring function, vmapped (one jitted program
    per method instance and shape), then training of the pruned network in one plain pass."""

    def init_data(self, key: Array, x_all: Array, y_all: Array) -> Any:
        """The data one model's scoring sees, drawn from its key (traceable); default none."""
        return None

    def score_one(self, params: mlp.Params, budget: Array, key: Array, lr: Array, data: Any,
                  counts_K: Array | None, widths: tuple[int, ...]) -> tuple[Array, ...]:
        """One model's weight masks keeping exactly `budget` weights."""
        raise NotImplementedError

    def prune_at_init(self, params, budget, key, lr, x_all, y_all, widths):
        table = self.count_table(tuple(widths), budget)
        counts = None if table is None else like(table, budget)
        return list(_prune_at_init(self, params, budget, key, lr, jnp.asarray(x_all), jnp.asarray(y_all),
                                   tuple(widths), counts))

    def flops(self, ctx) -> tuple[float, float]:
        return self.prune_flops(ctx), ctx.total_steps * ctx.step(ctx.sparse)

    def prune_flops(self, ctx) -> float:
        """FLOPs of the scoring (default: none, e.g. random masks)."""
        return 0.0


@functools.partial(jax.jit, static_argnums=(0, 7))
def _prune_at_init(method: AtInit, params, budget, key, lr, x_all, y_all, widths, counts_PxK=None):
    """One jitted program per (method, widths): per-model data drawn from each model's key;
    `counts_PxK` the host-computed keep counts of methods with a count schedule, else None."""
    def one(p, b, k, eta, keep_K):
        return tuple(method.score_one(p, b, k, eta, method.init_data(k, x_all, y_all), keep_K, widths))
    # train.vmap_models: on the CPU in fixed groups of models, so scores never depend on the population size
    return train.vmap_models(one, params, budget, key, lr, counts_PxK)
