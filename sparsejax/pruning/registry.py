"""The one registry of pruning methods (SPEC §5).

A method is a static, hashable object (the structure it closes over) whose per-model numbers —
budgets, keys, learning rates — arrive as batched arrays, so one compilation serves every budget
of a width. Its life cycle for a population:

1. ``init_scheme``: how random-init runs draw their weights (Xavier-normal for SNIP and GraSP).
2. ``prune_at_init(params, budget, key, lr, x, y, widths) -> weight masks`` (P-batched), or
   None for methods that start dense or prune during training.
3. ``hook(cfg, n_examples)``: a :class:`sparsejax.train.MaskHook` for mask events during
   training (GMP, RigL), or None: a frozen dataclass of static ints, equal by value, so a
   second population of the same method and shapes reuses the compiled chunk;
   ``prepare(pop, cfg, n_examples)`` puts the hook's per-model count tables (computed on the
   host in float64 by :mod:`sparsejax.pruning.schedules`) into ``pop.hook_state``.
4. ``fit(pop, x, y, cfg, progress)``: training; LTH overrides it with rounds and rewinding.

Count schedules (GMP events, SynFlow iterations, Iter SNIP/FORCE steps, LTH rounds, RigL drop
counts) are the reference's float64 expressions evaluated on the host and passed to the device
as int32 tables; :meth:`Method.count_table` gives the table a method consumes.

Biases are never scored; after every mask change the hidden biases follow the out-degree rule
and the output bias stays on (``mlp.masks_from_weights(..., "out_degree")``).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import mlp, shuffle, train
from sparsejax.pruning import magnitude, rigl, saliency, schedules, synflow

Array = jax.Array
BATCH = 128
GRASP_PER_CLASS = 25
GRASP_PREFIX = 1024  # a shuffled prefix this long holds 25 of each class except with p < 1e-200


def draw_batches(key: Array, x_all: Array, y_all: Array, n_batches: int, batch: int = BATCH) -> tuple[Array, Array]:
    """`n_batches` disjoint random minibatches of one model, (K, B, 2) and (K, B), from the keyed
    permutation of the data (raw key data `key`)."""
    pos = jnp.arange(n_batches * batch)
    idx = shuffle.permute(pos, shuffle.epoch_round_keys(key, 0), x_all.shape[0]).reshape(n_batches, batch)
    return x_all[idx], y_all[idx]


def grasp_samples(key: Array, x_all: Array, y_all: Array) -> tuple[Array, Array]:
    """The first 25 samples of each class met in a shuffled pass: (25, 2) of class 0 and of class 1."""
    idx = shuffle.permute(jnp.arange(GRASP_PREFIX), shuffle.epoch_round_keys(key, 0), x_all.shape[0])
    y = y_all[idx]
    pick = lambda cls: idx[jnp.argsort(jnp.where(y == cls, 0, 1), stable=True)[:GRASP_PER_CLASS]]
    return x_all[pick(0)], x_all[pick(1)]


def with_weight_masks(pop: train.Population, weight_masks) -> train.Population:
    """New weight masks (P-batched); biases by the out-degree rule; parameters re-masked."""
    masks = mlp.masks_from_weights(list(weight_masks), "out_degree")
    return pop._replace(masks=masks, params=mlp.apply_masks(pop.params, masks))


def _like(table: np.ndarray, ref: Any) -> Array:
    """A host table as a device array placed like `ref` (sharded along P when `ref` is)."""
    sharding = getattr(ref, "sharding", None)
    arr = jnp.asarray(table)
    if sharding is not None and hasattr(sharding, "spec"):  # a NamedSharding over the population
        return jax.device_put(arr, sharding)
    return arr


def _budgets(budget: Any) -> np.ndarray:
    return np.asarray(budget).reshape(-1).astype(np.int64)


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
        return budget

    def hook(self, cfg: train.TrainConfig, n_examples: int) -> train.MaskHook | None:
        return None

    def count_table(self, widths: tuple[int, ...], budgets, total_steps: int) -> np.ndarray | None:
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


@dataclasses.dataclass(frozen=True)
class AtInit(Method):
    """Pruning at initialisation: a pure per-model scoring function, vmapped, then dense training
    of the pruned network. `score` names the family; the data it sees is drawn per model."""
    score: str = "random"
    needs_budget: bool = True

    def count_table(self, widths, budgets, total_steps=0):
        n = mlp.weight_count(widths)
        if self.score == "synflow":
            return schedules.table(schedules.synflow_counts, n, _budgets(budgets))
        if self.score in ("iter_snip", "force"):
            return schedules.table(schedules.iterative_counts, n, _budgets(budgets), saliency.ITER_STEPS)
        return None

    def prune_at_init(self, params, budget, key, lr, x_all, y_all, widths):
        x_all, y_all = jnp.asarray(x_all), jnp.asarray(y_all)
        table = self.count_table(tuple(widths), budget)
        counts = None if table is None else _like(table, budget)
        return list(_prune_at_init(self.score, params, budget, key, lr, x_all, y_all, tuple(widths), counts))


@functools.partial(jax.jit, static_argnums=(0, 7))
def _prune_at_init(score: str, params, budget, key, lr, x_all, y_all, widths, counts_PxK=None):
    """One jitted program per (score, widths): per-model data drawn from each model's key;
    `counts_PxK` (host-computed keep counts) for SynFlow, Iter SNIP and FORCE, else None."""
    def one(p, b, k, eta, keep_K):
        if score == "random":
            return tuple(mlp.random_weight_masks(jax.random.wrap_key_data(k), widths, b))
        if score == "snip":
            xs, ys = draw_batches(k, x_all, y_all, 1)
            return saliency.snip(p, xs[0], ys[0], b)
        if score in ("iter_snip", "force"):
            xs, ys = draw_batches(k, x_all, y_all, saliency.ITER_STEPS)
            return (saliency.force if score == "force" else saliency.iter_snip)(p, xs, ys, keep_K)
        if score == "grasp":
            x0, x1 = grasp_samples(k, x_all, y_all)
            return saliency.grasp(p, x0, x1, b)
        if score == "synflow":
            return synflow.synflow(p, keep_K)
        if score == "prospr":
            xs, ys = draw_batches(k, x_all, y_all, 4)
            return saliency.prospr(p, xs, ys, eta, b)
        if score == "rigl":
            counts = rigl.erk_counts(mlp.layer_shapes(widths), b)
            return rigl.erk_random_masks(jax.random.wrap_key_data(k), mlp.layer_shapes(widths), counts)
        raise ValueError(f"unknown scoring {score!r}")
    return jax.vmap(one)(params, budget, key, lr, counts_PxK)


# ------------------------------------------------------------------------------------ GMP


@dataclasses.dataclass(frozen=True)
class GMPHook(train.MaskHook):
    """GMP's pruning events for a run of `total_steps` steps: at the start of step t = interval·k
    (k >= 1, t < T) keep ``hook_state[:, k − 1]`` weights by global magnitude among the live
    ones. ``hook_state`` is the (P, E) table of :meth:`GMP.count_table`."""
    total_steps: int

    def is_event(self, step):
        interval = schedules.gmp_interval(self.total_steps)
        return (step % interval == 0) & (step >= interval) & (step < self.total_steps)

    def update(self, pop, step, x, y):
        table = pop.hook_state
        n_events = len(schedules.gmp_event_steps(self.total_steps))
        if getattr(table, "ndim", 0) != 2 or table.shape[1] != n_events:
            raise ValueError(f"GMP hook_state must be the (P, {n_events}) count table (GMP.prepare), "
                             f"got shape {getattr(table, 'shape', None)}")
        k = step // schedules.gmp_interval(self.total_steps)
        keep_P = jnp.take(table, k - 1, axis=1)
        return with_weight_masks(pop, jax.vmap(magnitude.magnitude_prune)(pop.params, pop.masks, keep_P))


@dataclasses.dataclass(frozen=True)
class GMP(Method):
    """Gradual magnitude pruning: dense start, cubic events at t = 97k for every k >= 1 with
    t < T (201 events for T = 19,500, as the reference's loop; the cubic reaches B at event 199
    and events 200–201, which the reference overshoots to B − 1, keep B here)."""
    name: str = "gmp"
    needs_budget: bool = True

    def hook(self, cfg, n_examples):
        return GMPHook(cfg.epochs * cfg.steps_per_epoch(n_examples))

    def count_table(self, widths, budgets, total_steps=schedules.GMP_TOTAL_STEPS):
        return schedules.table(schedules.gmp_counts, mlp.weight_count(widths), _budgets(budgets), total_steps)

    def prepare(self, pop, cfg, n_examples):
        total = cfg.epochs * cfg.steps_per_epoch(n_examples)
        schedules.gmp_interval(total)  # ValueError when there are fewer than 200 steps
        return pop._replace(hook_state=_like(self.count_table(cfg.widths, pop.hook_state, total), pop.hook_state))


# ------------------------------------------------------------------------------------ RigL


@dataclasses.dataclass(frozen=True)
class RigLHook(train.MaskHook):
    """RigL's updates for a run of `total_steps` steps, timed as the reference's scheduler: at
    0-based iterations i with (i + 1) % ΔT == 0 and i + 1 < T_end (99, 199, …), before that
    iteration's gradient: the dense gradient on iteration i's minibatch (x, y), drop/grow with
    ``hook_state[:, e]`` (the (P, E, L) drop counts of :meth:`RigL.prepare`, e = (i + 1)/ΔT − 1);
    the SGD step of iteration i is skipped."""
    total_steps: int
    skip_optimizer: ClassVar[bool] = True

    def is_event(self, step):
        s = step + 1  # the reference's counter, incremented after each backward pass
        return (s % schedules.RIGL_DELTA_T == 0) & (s < schedules.rigl_t_end(self.total_steps))

    def update(self, pop, step, x, y):
        table = pop.hook_state
        n_events = len(schedules.rigl_event_steps(self.total_steps))
        if getattr(table, "ndim", 0) != 3 or table.shape[1] != n_events:
            raise ValueError(f"RigL hook_state must be the (P, {n_events}, L) drop-count table (RigL.prepare), "
                             f"got shape {getattr(table, 'shape', None)}")
        e = (step + 1) // schedules.RIGL_DELTA_T - 1
        n_drop_PxL = jnp.take(table, e, axis=1)
        grads = jax.vmap(jax.grad(mlp.loss))(pop.params, x, y)  # dense gradient at the sparse point
        wm = jax.vmap(lambda p, m, g, d: rigl.rigl_update(p, m, g, n_drop=d))(pop.params, pop.masks, grads, n_drop_PxL)
        old = pop.masks
        pop = with_weight_masks(pop, wm)
        # grown weights start at 0 (they were exactly 0 while masked) with a zero momentum buffer
        momentum = jax.tree.map(lambda b, m_old, m_new: b * m_old * m_new, pop.momentum, old, pop.masks)
        return pop._replace(momentum=momentum)


@dataclasses.dataclass(frozen=True)
class RigL(AtInit):
    """RigL: ERK random start with exactly B weights, drop/grow every 100 steps while the
    reference's counter is below 0.75·T (146 updates at iterations 99, 199, …, 14,599 for
    T = 19,500), the optimiser step skipped on update steps."""
    name: str = "rigl"
    score: str = "rigl"

    def hook(self, cfg, n_examples):
        return RigLHook(cfg.epochs * cfg.steps_per_epoch(n_examples))

    def prepare(self, pop, cfg, n_examples):
        """hook_state := (P, E, L) weights dropped per update and layer: the reference's float64
        int(n_on · f) with n_on each layer's live count (ERK's, constant through training)."""
        total = cfg.epochs * cfg.steps_per_epoch(n_examples)
        counts_PxL = np.stack([np.asarray(jnp.sum(l["w"], axis=(1, 2))) for l in pop.masks], axis=1).astype(np.int64)
        n_events = len(schedules.rigl_event_steps(total))
        table = np.stack([schedules.rigl_drop_counts(c, total) for c in counts_PxL]).reshape(
            len(counts_PxL), n_events, len(pop.masks)).astype(np.int32)
        return pop._replace(hook_state=_like(table, pop.hook_state))


# ------------------------------------------------------------------------------------ LTH


@dataclasses.dataclass(frozen=True)
class LTH(Method):
    """Iterative magnitude pruning with rewinding: 5 rounds of `epochs` epochs; after rounds 1–4
    keep ``schedules.lth_counts(N, B)`` weights (the reference's int(N·(B/N)^(k/4)), floored at
    B) by trained magnitude, rewind every parameter to the initialisation, fresh momentum and a
    fresh schedule; each round sees fresh data orders."""
    name: str = "lth"
    needs_budget: bool = True
    rounds: int = magnitude.LTH_ROUNDS

    def count_table(self, widths, budgets, total_steps=0):
        return schedules.table(schedules.lth_counts, mlp.weight_count(widths), _budgets(budgets), self.rounds)

    def fit(self, pop, x_all, y_all, cfg, progress=None, observe=None):
        init_params = pop.params
        targets_PxR = _like(self.count_table(cfg.widths, pop.hook_state), pop.hook_state)
        for r in range(self.rounds):
            if r:
                wm = jax.vmap(magnitude.magnitude_prune)(pop.params, pop.masks, targets_PxR[:, r - 1])
                pop = with_weight_masks(pop._replace(params=init_params), wm)
                pop = pop._replace(momentum=jax.tree.map(jnp.zeros_like, pop.momentum))
            report = None
            if progress is not None:
                report = lambda d, t, s, r=r: progress(r * t + d, self.rounds * t, s)
            pop = train.train(pop, x_all, y_all, cfg, epoch_offset=r * cfg.epochs, progress=report, observe=observe)
        return pop


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
register(AtInit(name="random", score="random"))
register(GMP())
register(LTH())
register(AtInit(name="snip", score="snip", init_scheme="xavier_normal"))
register(AtInit(name="iter_snip", score="iter_snip"))
register(AtInit(name="force", score="force"))
register(AtInit(name="grasp", score="grasp", init_scheme="xavier_normal"))
register(AtInit(name="synflow", score="synflow"))
register(AtInit(name="prospr", score="prospr"))
register(RigL())
from sparsejax.pruning.structure_first import StructureFirst; register(StructureFirst())  # noqa: E402  (issue #16)
