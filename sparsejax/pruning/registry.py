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

Biases are never scored; after every mask change the hidden biases follow the out-degree rule
and the output bias stays on (``mlp.masks_from_weights(..., "out_degree")``).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from sparsejax import mlp, shuffle, train
from sparsejax.pruning import magnitude, rigl, saliency, synflow

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

    def fit(self, pop: train.Population, x_all, y_all, cfg: train.TrainConfig,
            progress: Callable | None = None, observe: Callable | None = None) -> train.Population:
        return train.train(pop, x_all, y_all, cfg, hook=self.hook(cfg, len(x_all)), progress=progress,
                           observe=observe)


@dataclasses.dataclass(frozen=True)
class AtInit(Method):
    """Pruning at initialisation: a pure per-model scoring function, vmapped, then dense training
    of the pruned network. `score` names the family; the data it sees is drawn per model."""
    score: str = "random"
    needs_budget: bool = True

    def prune_at_init(self, params, budget, key, lr, x_all, y_all, widths):
        x_all, y_all = jnp.asarray(x_all), jnp.asarray(y_all)
        return list(_prune_at_init(self.score, params, budget, key, lr, x_all, y_all, tuple(widths)))


@functools.partial(jax.jit, static_argnums=(0, 7))
def _prune_at_init(score: str, params, budget, key, lr, x_all, y_all, widths):
    def one(p, b, k, eta):
        if score == "random":
            return tuple(mlp.random_weight_masks(jax.random.wrap_key_data(k), widths, b))
        if score == "snip":
            xs, ys = draw_batches(k, x_all, y_all, 1)
            return saliency.snip(p, xs[0], ys[0], b)
        if score in ("iter_snip", "force"):
            xs, ys = draw_batches(k, x_all, y_all, saliency.ITER_STEPS)
            return (saliency.force if score == "force" else saliency.iter_snip)(p, xs, ys, b)
        if score == "grasp":
            x0, x1 = grasp_samples(k, x_all, y_all)
            return saliency.grasp(p, x0, x1, b)
        if score == "synflow":
            return synflow.synflow(p, b)
        if score == "prospr":
            xs, ys = draw_batches(k, x_all, y_all, 4)
            return saliency.prospr(p, xs, ys, eta, b)
        if score == "rigl":
            counts = rigl.erk_counts(mlp.layer_shapes(widths), b)
            return rigl.erk_random_masks(jax.random.wrap_key_data(k), mlp.layer_shapes(widths), counts)
        raise ValueError(f"unknown scoring {score!r}")
    return jax.vmap(one)(params, budget, key, lr)


# ------------------------------------------------------------------------------------ GMP


def _gmp_is_event(total_steps: int, step: Array) -> Array:
    return magnitude.gmp_event_index(step, total_steps) > 0


def _gmp_update(total_steps: int, pop: train.Population, step: Array, x: Array, y: Array) -> train.Population:
    k = magnitude.gmp_event_index(step, total_steps)
    n = sum(int(l["w"].shape[-1] * l["w"].shape[-2]) for l in pop.params)
    keep_P = jax.vmap(lambda b: magnitude.gmp_target(k, n, b))(pop.hook_state)
    return with_weight_masks(pop, jax.vmap(magnitude.magnitude_prune)(pop.params, pop.masks, keep_P))


@dataclasses.dataclass(frozen=True)
class GMP(Method):
    """Gradual magnitude pruning: dense start, 199 cubic events at t = 97k (T = 19,500)."""
    name: str = "gmp"
    needs_budget: bool = True

    def hook(self, cfg, n_examples):
        total = cfg.epochs * cfg.steps_per_epoch(n_examples)
        if magnitude.gmp_interval(total) < 1:
            raise ValueError(f"epochs: GMP needs at least {magnitude.GMP_EVENTS + 1} steps, got {total}")
        return train.MaskHook(functools.partial(_gmp_is_event, total), functools.partial(_gmp_update, total))


# ------------------------------------------------------------------------------------ RigL


def _rigl_is_event(t_end: int, step: Array) -> Array:
    return (step % rigl.RIGL_DELTA_T == 0) & (step > 0) & (step < t_end)


def _rigl_update(t_end: int, pop: train.Population, step: Array, x: Array, y: Array) -> train.Population:
    grads = jax.vmap(jax.grad(mlp.loss))(pop.params, x, y)  # dense gradient at the sparse point
    f = rigl.rigl_drop_fraction(step, t_end)
    wm = jax.vmap(lambda p, m, g: rigl.rigl_update(p, m, g, f))(pop.params, pop.masks, grads)
    old = pop.masks
    pop = with_weight_masks(pop, wm)
    # grown weights start at 0 (they were exactly 0 while masked) with a zero momentum buffer
    momentum = jax.tree.map(lambda b, m_old, m_new: b * m_old * m_new, pop.momentum, old, pop.masks)
    return pop._replace(momentum=momentum)


@dataclasses.dataclass(frozen=True)
class RigL(AtInit):
    """RigL: ERK random start with exactly B weights, drop/grow every 100 steps until 0.75·T,
    the optimiser step skipped on update steps."""
    name: str = "rigl"
    score: str = "rigl"

    def hook(self, cfg, n_examples):
        t_end = int(rigl.RIGL_END_FRACTION * cfg.epochs * cfg.steps_per_epoch(n_examples))
        return train.MaskHook(functools.partial(_rigl_is_event, t_end), functools.partial(_rigl_update, t_end),
                              skip_optimizer=True)


# ------------------------------------------------------------------------------------ LTH


@dataclasses.dataclass(frozen=True)
class LTH(Method):
    """Iterative magnitude pruning with rewinding: 5 rounds of `epochs` epochs; after rounds 1–4
    keep N·(B/N)^(k/4) weights by trained magnitude, rewind every parameter to the
    initialisation, fresh momentum and a fresh schedule; each round sees fresh data orders."""
    name: str = "lth"
    needs_budget: bool = True
    rounds: int = magnitude.LTH_ROUNDS

    def fit(self, pop, x_all, y_all, cfg, progress=None, observe=None):
        init_params = pop.params
        n = mlp.weight_count(cfg.widths)
        targets_PxR = jax.vmap(lambda b: magnitude.lth_targets(n, b, self.rounds))(pop.hook_state)
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
