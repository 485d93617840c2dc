"""Compacted training: train a pruned wide network at the width its kept weights need (issue 18).

Once a run's masks are fixed for the whole of training (at-init pruning), a hidden unit that
carries no kept weight and no kept bias — no kept in-weight, no kept out-weight, bias masked —
is identically zero: its parameters are masked to 0 by ``train.make_population``, every update
is masked (``train.sgd_update``: gradient, weight decay and momentum all multiply by the mask),
and it feeds nothing downstream. Dropping it is exact. Every other unit is kept, in particular

* constant units (no kept in-weight, a kept out-weight, an unmasked bias): they shift the next
  layer by ReLU(b) and their bias trains;
* output-dead units (kept in-weights, no kept out-weight): their in-weights still change the
  params, nnz and connectivity records (weight decay shrinks them; their gradient is 0).

The kept units of every hidden layer move to the front in their original order (a per-model
gather index); the compacted width of a layer is the population's largest kept count, rounded up
to a bucket so a sweep compiles few shapes. Slots beyond a model's own count are padding units
with zero parameters, zero weight masks and zero bias masks: they output ReLU(0) = 0 forever and
contribute nothing. After training, :func:`scatter_back` puts every unit back at its full-width
position (dropped units as zeros, which is exactly what full-width training leaves there).

What changes is only the float summation order of the dot products (shorter sums, and possibly
the fused CPU kernel instead of XLA's dots for widths above ``train.FUSED_MAX_WIDTH``); the data
order is per model and shape-independent (:mod:`sparsejax.shuffle`).

Layout as in :mod:`sparsejax.mlp`: a population is a tuple of layers ``{"w": w_PxIxO,
"b": b_PxO}``; masks have the same structure. Plans are host-side (NumPy): shapes are static.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import mlp, train

Array = jax.Array
Params = mlp.Params
DEFAULT_BUCKETS = (4, 8, 16, 32, 64, 128)


@dataclasses.dataclass(frozen=True, eq=False)
class CompactionPlan:
    """Where every model's kept hidden units go, and the compacted shape.

    ``full_widths``: hidden widths of the full network. ``shape``: the compacted hidden widths
    (one compiled shape for the whole population). ``counts_PxL``: kept units per model and
    hidden layer. ``model_shapes_PxL``: each model's own bucketed shape (for grouping).
    ``index``: per hidden layer an int32 (P, shape[l]) array; slot k of model p holds full-width
    unit ``index[l][p, k]``, or the sentinel ``full_widths[l]`` for a padding slot.
    """
    full_widths: tuple[int, ...]
    shape: tuple[int, ...]
    buckets: tuple[int, ...]
    counts_PxL: np.ndarray
    model_shapes_PxL: np.ndarray
    index: tuple[np.ndarray, ...]

    @property
    def num_models(self) -> int:
        return int(self.counts_PxL.shape[0])

    def valid(self, l: int) -> np.ndarray:
        """(P, shape[l]) bool: which slots of hidden layer `l` hold a kept unit."""
        return self.index[l] < self.full_widths[l]


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    """Buckets as a strictly increasing tuple of positive ints; ValueError otherwise."""
    out = tuple(int(b) for b in buckets)
    if not out or any(b < 1 for b in out) or any(a >= b for a, b in zip(out[:-1], out[1:])):
        raise ValueError(f"buckets: need strictly increasing positive widths, got {list(buckets)}")
    return out


def bucket_width(count: int, full: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """The compacted width of a layer with `count` kept units out of `full`: the smallest bucket
    ≥ max(count, 1), never above `full` (full width when no bucket fits or the bucket exceeds it).
    A layer with no kept unit still gets a width ≥ 1 (a valid MLP shape; all its slots pad)."""
    if not 0 <= count <= full:
        raise ValueError(f"count {count} is outside [0, {full}]")
    need = max(int(count), 1)
    fitting = [b for b in buckets if b >= need]
    return min(fitting[0], int(full)) if fitting else int(full)


def _weight_masks(masks_P: Params) -> list[np.ndarray]:
    return [np.asarray(layer["w"]) != 0 for layer in masks_P]


def carried_units(masks_P: Params) -> list[np.ndarray]:
    """Per hidden layer, (P, width) bool: the unit has a kept in-weight, a kept out-weight or a
    kept bias. Units outside this set are identically zero during masked training."""
    w = _weight_masks(masks_P)
    out = []
    for l in range(len(masks_P) - 1):
        has_in = w[l].any(axis=-2)
        has_out = w[l + 1].any(axis=-1)
        has_b = np.asarray(masks_P[l]["b"]) != 0
        out.append(has_in | has_out | has_b)
    return out


def _check_population(tree: Params, what: str) -> tuple[int, tuple[int, ...]]:
    """(P, hidden widths) of a P-batched network pytree; ValueError naming `what` when malformed."""
    if not isinstance(tree, (tuple, list)) or len(tree) < 2:
        raise ValueError(f"{what}: need a tuple of at least 2 layers, got {type(tree).__name__}")
    p = None
    dims = []
    for l, layer in enumerate(tree):
        w, b = np.shape(layer["w"]), np.shape(layer["b"])
        if len(w) != 3 or b != (w[0], w[2]) or (p is not None and w[0] != p) or (l and w[1] != dims[-1]):
            raise ValueError(f"{what}: layer {l} has w {w} and b {b}; expected (P, I, O) and (P, O) chained")
        p = w[0]
        if l == 0:
            dims.append(w[1])
        dims.append(w[2])
    if dims[0] != mlp.INPUT_DIM or dims[-1] != mlp.OUTPUT_DIM:
        raise ValueError(f"{what}: layer dims {dims} do not start at {mlp.INPUT_DIM} and end at {mlp.OUTPUT_DIM}")
    return int(p), tuple(int(d) for d in dims[1:-1])


def plan_compaction(masks_P: Params, buckets: Sequence[int] = DEFAULT_BUCKETS) -> CompactionPlan:
    """The compaction plan of a population from its (fixed) masks: per model and hidden layer the
    carried units (:func:`carried_units`) moved to the front in their original order; the shape
    per layer is the bucketed maximum over the population of the kept counts."""
    buckets = check_buckets(buckets)
    p, full = _check_population(masks_P, "masks")
    carried = carried_units(masks_P)
    counts = np.stack([c.sum(axis=-1) for c in carried], axis=1).astype(np.int64).reshape(p, len(full))
    model_shapes = np.asarray([[bucket_width(int(c), w, buckets) for c, w in zip(row, full)] for row in counts],
                              np.int64).reshape(p, len(full))
    shape = tuple(bucket_width(int(counts[:, l].max(initial=0)), w, buckets) for l, w in enumerate(full))
    index = []
    for l, (c, w, k) in enumerate(zip(carried, full, shape)):
        # stable sort puts carried units first in their original order; the rest become sentinels
        order = np.argsort(~c, axis=-1, kind="stable")[:, :k]
        slot = np.arange(k)[None, :]
        index.append(np.where(slot < counts[:, l:l + 1], order, w).astype(np.int32))
    return CompactionPlan(full_widths=full, shape=shape, buckets=buckets, counts_PxL=counts,
                          model_shapes_PxL=model_shapes, index=tuple(index))


MAX_GROUPS = 4  # compiled shapes per compacted population


def group_by_shape(plan: CompactionPlan, max_groups: int = MAX_GROUPS) -> dict[tuple[int, ...], np.ndarray]:
    """Models grouped by bucketed shape, at most ``max_groups`` groups: {shape: sorted model
    indices}, ascending. Starting from one group per distinct model shape, the two groups whose
    merge (at their per-layer maximum) adds the fewest model-weights are merged until few enough
    remain: one group per distinct shape gave ~30 small groups for a 207-run width-32
    population, each compiled (with its gathers and scatters) and trained alone, which cost more
    than the padding this adds. Any padded shape is exact (padding units are masked zeros); the
    shape a model trained at is recorded in its numeric path."""
    if max_groups < 1:
        raise ValueError(f"max_groups: must be >= 1, got {max_groups}")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(plan.model_shapes_PxL):
        groups.setdefault(tuple(int(v) for v in row), []).append(i)
    cost = lambda shape, n: n * mlp.weight_count(shape)  # noqa: E731
    while len(groups) > max_groups:
        keys = sorted(groups)
        best = None
        for a, sa in enumerate(keys):
            for sb in keys[a + 1:]:
                merged = tuple(max(u, v) for u, v in zip(sa, sb))
                na, nb = len(groups[sa]), len(groups[sb])
                extra = cost(merged, na + nb) - cost(sa, na) - cost(sb, nb)
                if best is None or extra < best[0]:
                    best = (extra, sa, sb, merged)
        _, sa, sb, merged = best
        members = groups.pop(sa) + groups.pop(sb) + groups.pop(merged, [])
        groups[merged] = members
    return {s: np.asarray(sorted(groups[s]), np.int64) for s in sorted(groups)}


def _layer_indices(plan: CompactionPlan) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """(row index, column index) per linear layer; None where the unit layer is input/output."""
    idx = [None, *plan.index, None]
    return [(idx[l], idx[l + 1]) for l in range(len(plan.index) + 1)]


def _gather_one(w_IxO: Array, b_O: Array, rows_K: Array | None, cols_K: Array | None) -> tuple[Array, Array]:
    """One model's layer at compacted rows/columns; sentinel indices read an appended zero."""
    if rows_K is not None:
        w_IxO = jnp.concatenate([w_IxO, jnp.zeros((1, w_IxO.shape[1]), w_IxO.dtype)], axis=0)[rows_K]
    if cols_K is not None:
        w_IxO = jnp.concatenate([w_IxO, jnp.zeros((w_IxO.shape[0], 1), w_IxO.dtype)], axis=1)[:, cols_K]
        b_O = jnp.concatenate([b_O, jnp.zeros((1,), b_O.dtype)])[cols_K]
    return w_IxO, b_O


def _scatter_one(w_KxK: Array, b_K: Array, rows_K: Array | None, cols_K: Array | None,
                 full_in: int, full_out: int) -> tuple[Array, Array]:
    """Inverse of :func:`_gather_one`: zeros at full width with the compacted entries written at
    their units; sentinel slots land in an extra row/column that is cut off."""
    rows = jnp.arange(full_in) if rows_K is None else rows_K
    cols = jnp.arange(full_out) if cols_K is None else cols_K
    w = jnp.zeros((full_in + 1, full_out + 1), w_KxK.dtype).at[rows[:, None], cols[None, :]].set(w_KxK)
    b = jnp.zeros((full_out + 1,), b_K.dtype).at[cols].set(b_K)
    return w[:full_in, :full_out], b[:full_out]


def _axes(rows, cols) -> tuple:
    return (0, 0, None if rows is None else 0, None if cols is None else 0)


@jax.jit
def _gather_layer(w_PxIxO: Array, b_PxO: Array, rows_PxK: Array | None, cols_PxK: Array | None):
    return jax.vmap(_gather_one, in_axes=_axes(rows_PxK, cols_PxK))(w_PxIxO, b_PxO, rows_PxK, cols_PxK)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _scatter_layer(w_PxKxK: Array, b_PxK: Array, rows_PxK: Array | None, cols_PxK: Array | None,
                   full_in: int, full_out: int):
    one = lambda w, b, r, c: _scatter_one(w, b, r, c, full_in, full_out)  # noqa: E731
    return jax.vmap(one, in_axes=_axes(rows_PxK, cols_PxK))(w_PxKxK, b_PxK, rows_PxK, cols_PxK)


def _dev(index: np.ndarray | None) -> Array | None:
    return None if index is None else jnp.asarray(index)


def _check_tree(tree: Params, plan: CompactionPlan, widths: tuple[int, ...], what: str) -> None:
    p, got = _check_population(tree, what)
    if p != plan.num_models or got != widths:
        raise ValueError(f"{what}: population of {p} at widths {got}; the plan has {plan.num_models} "
                         f"models at widths {widths}")


def compact_tree(tree_P: Params, plan: CompactionPlan) -> Params:
    """A full-width P-batched network pytree (params, masks or momentum) at the plan's shape."""
    _check_tree(tree_P, plan, plan.full_widths, "compact")
    out = []
    for layer, (rows, cols) in zip(tree_P, _layer_indices(plan)):
        w, b = _gather_layer(jnp.asarray(layer["w"]), jnp.asarray(layer["b"]), _dev(rows), _dev(cols))
        out.append({"w": w, "b": b})
    return tuple(out)


def scatter_tree(tree_c: Params, plan: CompactionPlan) -> Params:
    """Inverse of :func:`compact_tree`: back at full width, dropped units and padding as zeros."""
    _check_tree(tree_c, plan, plan.shape, "scatter_back")
    dims = mlp.layer_dims(plan.full_widths)
    out = []
    for l, (layer, (rows, cols)) in enumerate(zip(tree_c, _layer_indices(plan))):
        w, b = _scatter_layer(jnp.asarray(layer["w"]), jnp.asarray(layer["b"]), _dev(rows), _dev(cols),
                              dims[l], dims[l + 1])
        out.append({"w": w, "b": b})
    return tuple(out)


def compact(params_P: Params, masks_P: Params, plan: CompactionPlan) -> tuple[Params, Params]:
    """(params, masks) at the plan's compacted shape. Padding slots get zero parameters and zero
    masks (weights and bias). Exact for dropped units only when params are zero wherever the
    masks are (as ``train.make_population`` leaves them)."""
    return compact_tree(params_P, plan), compact_tree(masks_P, plan)


def scatter_back(params_c: Params, masks_c: Params, plan: CompactionPlan,
                 full_widths: Sequence[int] | None = None) -> tuple[Params, Params]:
    """(params, masks) back at full width (use :func:`scatter_tree` for the momentum).
    `full_widths`, when given, must equal the plan's (a guard against mixing plans)."""
    if full_widths is not None and tuple(int(w) for w in full_widths) != plan.full_widths:
        raise ValueError(f"full_widths {tuple(full_widths)} differ from the plan's {plan.full_widths}")
    return scatter_tree(params_c, plan), scatter_tree(masks_c, plan)


def subplan(plan: CompactionPlan, models: Sequence[int], masks_P: Params) -> CompactionPlan:
    """The plan of the models `models` alone (their shape is the bucketed max of their counts)."""
    idx = np.asarray(models, np.int64)
    return plan_compaction(jax.tree.map(lambda a: np.asarray(a)[idx], masks_P), plan.buckets)


# ---------------------------------------------------------------------------------------------
# training a population compacted


def eligible(method: Any, cfg: train.TrainConfig, n_examples: int) -> bool:
    """Whether a registry method keeps its masks fixed through one training pass (so compaction
    is exact): no mask hook and the base ``fit``. True for the at-init methods (random, snip,
    iter_snip, force, grasp, synflow, prospr) and dense; False for gmp, rigl (hooks) and lth
    (its own fit: masks change between rounds)."""
    from sparsejax.pruning import registry  # registry imports train; keep this module light
    base_prepare = getattr(registry.Method, "prepare", None)  # a method that prepares hook state
    return (type(method).fit is registry.Method.fit and getattr(type(method), "prepare", None) is base_prepare
            and method.hook(cfg, n_examples) is None)


def _take(tree: Any, idx: np.ndarray) -> Any:
    j = jnp.asarray(idx)
    return jax.tree.map(lambda a: jnp.asarray(a)[j], tree)


def _compact_population(pop: train.Population, plan: CompactionPlan) -> train.Population:
    return pop._replace(params=compact_tree(pop.params, plan), masks=compact_tree(pop.masks, plan),
                        momentum=compact_tree(pop.momentum, plan))


def _scatter_population(pop: train.Population, plan: CompactionPlan) -> train.Population:
    return pop._replace(params=scatter_tree(pop.params, plan), masks=scatter_tree(pop.masks, plan),
                        momentum=scatter_tree(pop.momentum, plan))


def train_compacted(pop: train.Population, x_all, y_all, cfg: train.TrainConfig,
                    buckets: Sequence[int] = DEFAULT_BUCKETS, split: bool = True,
                    progress: Callable[[int, int, float], None] | None = None,
                    observe: Callable[[train.Population], None] | None = None,
                    place: Callable[[train.Population], train.Population] | None = None,
                    ) -> tuple[train.Population, list[tuple[int, ...]]]:
    """``train.train(pop, x, y, cfg)`` (no hook) computed at compacted widths; returns the
    full-width population (params, masks, momentum scattered back; every other field in the
    original model order) and each model's trained shape.

    With `split`, models are grouped by their own bucketed shape and each group trains as its own
    population at ``TrainConfig(widths=shape)``; otherwise the whole population trains at one
    shape. A model's numbers do not depend on its group (per-model keys and data orders).
    `progress` sees the population's steps (``steps`` in all), each group's counted in
    proportion to its models, so model-steps and ETAs stay true; `observe`
    and `place` see each group's compacted population. The caller guarantees the masks stay
    fixed during training (:func:`eligible`)."""
    _, full = _check_population(pop.params, "params")
    if full != cfg.widths:
        raise ValueError(f"cfg.widths {cfg.widths} differ from the population's widths {full}")
    plan = plan_compaction(pop.masks, buckets)
    p = plan.num_models
    groups = group_by_shape(plan) if split else {plan.shape: np.arange(p)}
    total_steps = cfg.epochs * cfg.steps_per_epoch(len(np.asarray(y_all).reshape(-1)))
    t0, trained, order, shapes = time.perf_counter(), [], [], [None] * p
    models_before = 0
    for shape, idx in groups.items():
        sub = plan if not split else subplan(plan, idx, pop.masks)
        if split and sub.shape != shape:  # bucketing is monotone, so the group's max is its shape
            raise AssertionError(f"group shape {shape} != its plan's {sub.shape}")
        part = pop if not split else pop._replace(
            params=_take(pop.params, idx), masks=_take(pop.masks, idx), momentum=_take(pop.momentum, idx),
            lr=_take(pop.lr, idx), schedule=_take(pop.schedule, idx), key=_take(pop.key, idx),
            diverged=_take(pop.diverged, idx), hook_state=_take(pop.hook_state, idx),
            loss_sums=_take(pop.loss_sums, idx))
        part = _compact_population(part, sub)
        part = place(part) if place is not None else part
        report = None
        if progress is not None:  # a group of n of the p models advancing d steps is n·d/p population steps
            report = lambda d, t, s, m=models_before, n=len(idx): progress(
                (m * total_steps + n * d) / p, total_steps, time.perf_counter() - t0)
        part = train.train(part, x_all, y_all, dataclasses.replace(cfg, widths=sub.shape), progress=report,
                           observe=observe)
        trained.append(_scatter_population(part, sub))
        models_before += len(idx)
        order.append(idx)
        for i in idx:
            shapes[int(i)] = sub.shape
    if not split:
        return trained[0], shapes
    inverse = np.argsort(np.concatenate(order), kind="stable")
    merged = jax.tree.map(lambda *leaves: jnp.concatenate(leaves)[jnp.asarray(inverse)], *trained)
    return merged, shapes
