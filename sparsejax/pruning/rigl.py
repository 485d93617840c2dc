"""RigL (dynamic sparse training): ERK layer densities, the random initial mask, the drop
fraction schedule and one drop/grow mask update (SPEC §5, paper B.3).

Everything here is traceable: the budget may be a traced int32 scalar (one compiled program for
every budget; vmap over a population of budgets). Layer shapes are static Python tuples
(fan_in, fan_out). Masks are tuples of (I, O) 0/1 float32 weight masks; the caller derives the
bias masks, zeroes grown weights and their momentum and skips the optimiser step. The
registered method (:class:`RigL`, its params and mask hook) is at the end.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import train
from sparsejax.pruning import base, registry, schedules
from sparsejax.pruning.topk import (descending_rank, restrict, unflatten_torch_order,
                                    weights_of)

Array = jax.Array
Params = tuple
Masks = tuple

RIGL_ALPHA = schedules.RIGL_ALPHA
RIGL_DELTA_T = schedules.RIGL_DELTA_T  # the reference code's update interval (the paper says 200)
RIGL_END_FRACTION = schedules.RIGL_END_FRACTION


def _erk_raw_and_sizes(layer_shapes: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    shapes = np.asarray(layer_shapes, np.float64)
    sizes = shapes[:, 0] * shapes[:, 1]
    return (shapes[:, 0] + shapes[:, 1]) / sizes, sizes


def _erk_dense_and_eps(layer_shapes, budget) -> tuple[Array, Array, np.ndarray, np.ndarray]:
    """The reference ERK fixed point: ε = (B − Σ_dense n_l) / Σ_sparse raw_l·n_l; while the largest
    sparse raw_l·ε exceeds 1, make the layer(s) with that raw value dense and recompute."""
    raw_np, sizes_np = _erk_raw_and_sizes(layer_shapes)
    raw_L = jnp.asarray(raw_np, jnp.float32)
    size_L = jnp.asarray(sizes_np, jnp.float32)
    b = jnp.asarray(budget, jnp.float32)

    def eps_of(dense_L):
        rhs = b - jnp.sum(jnp.where(dense_L, size_L, 0.0))
        divisor = jnp.sum(jnp.where(dense_L, 0.0, raw_L * size_L))
        return rhs / jnp.where(divisor > 0, divisor, 1.0)

    dense_L = jnp.zeros(raw_L.shape, bool)
    for _ in range(len(layer_shapes)):  # at most one new raw value per pass
        eps = eps_of(dense_L)
        max_raw = jnp.max(jnp.where(dense_L, -jnp.inf, raw_L))
        grow = (max_raw * eps > 1.0) & (raw_L == max_raw) & ~dense_L
        dense_L = dense_L | grow
    return dense_L, eps_of(dense_L), raw_np, sizes_np


def erk_densities(layer_shapes: Sequence[tuple[int, int]], budget) -> Array:
    """Per-layer ERK densities (L,) float32: ε·(fan_in + fan_out)/(fan_in·fan_out) for sparse
    layers, 1 for the layers the iteration made dense, with Σ density_l·n_l = B (for B ≤ N)."""
    dense_L, eps, raw_np, _ = _erk_dense_and_eps(layer_shapes, budget)
    return jnp.where(dense_L, 1.0, jnp.clip(eps * jnp.asarray(raw_np, jnp.float32), 0.0, 1.0))


def erk_counts(layer_shapes: Sequence[tuple[int, int]], budget) -> Array:
    """Integer per-layer weight counts (L,) int32 summing to exactly B (for 0 ≤ B ≤ N).

    Largest-remainder rounding of the real counts density_l·n_l: floor each, then give the
    B − Σ floor leftover units one each to the layers with the largest fractional parts (ties
    by layer order); a negative leftover (float32 error only) takes one each from the smallest
    fractional parts. Counts are capped at the layer size. (The reference instead draws each
    layer's mask with probability density_l and lands at B+0…3.)"""
    dense_L, eps, raw_np, sizes_np = _erk_dense_and_eps(layer_shapes, budget)
    size_L = jnp.asarray(sizes_np, jnp.float32)
    real_L = jnp.where(dense_L, size_L, jnp.clip(eps * jnp.asarray(raw_np, jnp.float32), 0.0, 1.0) * size_L)
    floor_L = jnp.floor(real_L)
    rem_L = real_L - floor_L
    n_layers = len(layer_shapes)
    leftover = jnp.asarray(budget, jnp.int32) - jnp.sum(floor_L.astype(jnp.int32))
    rank_L = descending_rank(rem_L)
    counts = floor_L.astype(jnp.int32) + (rank_L < leftover) - (rank_L >= n_layers + leftover)
    return jnp.clip(counts, 0, jnp.asarray(sizes_np, jnp.int32)).astype(jnp.int32)


def erk_random_masks(key: Array, layer_shapes: Sequence[tuple[int, int]], counts_L) -> Masks:
    """Weight masks with exactly counts_L[l] entries in layer l, chosen uniformly at random."""
    keys = jax.random.split(key, len(layer_shapes))
    out = []
    for l, (k, (fan_in, fan_out)) in enumerate(zip(keys, layer_shapes)):
        u_N = jax.random.uniform(k, (fan_in * fan_out,))
        keep_N = (descending_rank(u_N) < jnp.asarray(counts_L[l], jnp.int32)).astype(jnp.float32)
        out.append(unflatten_torch_order(keep_N, [(fan_in, fan_out)])[0])
    return tuple(out)


def rigl_drop_fraction(t, t_end, alpha: float = RIGL_ALPHA) -> Array:
    """Cosine-decayed drop fraction α/2·(1 + cos(π t / T_end)) in float32. The trainer instead
    uses exact per-layer drop counts from the host (:func:`sparsejax.pruning.schedules.rigl_drop_counts`),
    t being the reference's counter (iteration + 1)."""
    t = jnp.asarray(t, jnp.float32)
    return alpha / 2.0 * (1.0 + jnp.cos(jnp.pi * t / jnp.asarray(t_end, jnp.float32)))


def _torch_flat(w_IxO: Array) -> Array:
    return jnp.reshape(w_IxO.T, (-1,))


def rigl_update(params: Params, masks, dense_grads, drop_fraction=None,
                regrow_dropped: bool = True, n_drop=None) -> Masks:
    """One RigL mask update, layer by layer; returns weight masks with every layer's count
    unchanged.

    With n_on the layer's live count, drop d = floor(f·n_on) (float32) live weights — or
    d = ``n_drop[l]`` when given (the trainer passes the reference's float64 int(n_on·f),
    computed on the host) — with the smallest |W|
    (ties: the higher PyTorch flat index goes first), then grow d entries with the largest
    |dense gradient| among the candidates (ties: the lower flat index first).
    Candidates (``regrow_dropped``):
    - True (default, what the reference rigl-torch code does and so what produced the published
      numbers): every entry not kept after the drop, so a just-dropped weight may be regrown in
      the same update (it then simply stays on, keeping its value; a fully dense layer is
      unchanged). Google's original RigL code uses the same candidate set.
    - False: only entries inactive before the update; d is capped at the inactive count.
    `masks` and `dense_grads` may be full pytrees or sequences of weight arrays.
    """
    if (drop_fraction is None) == (n_drop is None):
        raise ValueError("rigl_update: give exactly one of drop_fraction and n_drop")
    out = []
    for l, (w, m, g) in enumerate(zip(weights_of(params), weights_of(masks), weights_of(dense_grads))):
        m_N, w_N, g_N = _torch_flat(m) > 0, _torch_flat(w), _torch_flat(g)
        n_on = jnp.sum(m_N.astype(jnp.int32))
        if n_drop is None:
            f = jnp.asarray(drop_fraction, jnp.float32)
            d = jnp.floor(f * n_on.astype(jnp.float32)).astype(jnp.int32)
        else:
            d = jnp.clip(jnp.asarray(n_drop[l], jnp.int32), 0, n_on)
        if not regrow_dropped:
            d = jnp.minimum(d, m_N.size - n_on)
        kept_N = descending_rank(restrict(jnp.abs(w_N), m_N)) < n_on - d
        candidates_N = ~kept_N if regrow_dropped else ~m_N
        grown_N = descending_rank(restrict(jnp.abs(g_N), candidates_N)) < d
        new_N = (kept_N | grown_N).astype(jnp.float32)
        out.append(unflatten_torch_order(new_N, [tuple(w.shape)])[0])
    return tuple(out)


# ------------------------------------------------------------------------------------ the method


_erk_counts_jit = jax.jit(erk_counts, static_argnums=(0,))


def erk_layer_counts(widths: Sequence[int], budget: int) -> np.ndarray:
    """Host int64 (L,) ERK counts of one budget (:func:`erk_counts`, jitted once per shape)."""
    from sparsejax import mlp
    return np.asarray(_erk_counts_jit(tuple(mlp.layer_shapes(tuple(widths))), int(budget)), np.int64)


@functools.partial(jax.jit, static_argnums=(0,))
def _erk_start(layer_shapes: tuple, budget_P: Array, key_P: Array) -> tuple:
    """(P-batched) ERK random start masks: exactly B weights, ERK counts per layer."""
    def one(b, k):
        return erk_random_masks(jax.random.wrap_key_data(k), layer_shapes, erk_counts(layer_shapes, b))
    return jax.vmap(one)(budget_P, key_P)


@dataclasses.dataclass(frozen=True)
class RigLParams(base.MethodParams):
    delta_t: int = RIGL_DELTA_T              # the reference code's update interval (the paper says 200)
    end_fraction: float = RIGL_END_FRACTION  # updates while the counter is below end_fraction · T
    alpha: float = RIGL_ALPHA                # initial drop fraction of the cosine decay

    def __post_init__(self):
        super().__post_init__()
        base.positive_int(self, "delta_t")
        if not 0 < self.end_fraction <= 1 or not 0 <= self.alpha <= 1:
            raise ValueError(f"end_fraction must be in (0, 1] and alpha in [0, 1], got {self.end_fraction}, {self.alpha}")


@dataclasses.dataclass(frozen=True)
class RigLHook(train.MaskHook):
    """RigL's updates for a run of `total_steps` steps, timed as the reference's scheduler: at
    0-based iterations i with (i + 1) % ΔT == 0 and i + 1 < T_end (99, 199, …), before that
    iteration's gradient: the dense gradient on iteration i's minibatch (x, y), drop/grow with
    ``hook_state[:, e]`` (the (P, E, L) drop counts of :meth:`RigL.prepare`, e = (i + 1)/ΔT − 1);
    the SGD step of iteration i is skipped."""
    total_steps: int
    delta_t: int = RIGL_DELTA_T
    end_fraction: float = RIGL_END_FRACTION
    skip_optimizer: ClassVar[bool] = True

    def is_event(self, step):
        s = step + 1  # the reference's counter, incremented after each backward pass
        return (s % self.delta_t == 0) & (s < schedules.rigl_t_end(self.total_steps, self.end_fraction))

    def update(self, pop, step, x, y):
        from sparsejax import mlp
        table = pop.hook_state
        n_events = len(schedules.rigl_event_steps(self.total_steps, self.delta_t, self.end_fraction))
        if getattr(table, "ndim", 0) != 3 or table.shape[1] != n_events:
            raise ValueError(f"RigL hook_state must be the (P, {n_events}, L) drop-count table (RigL.prepare), "
                             f"got shape {getattr(table, 'shape', None)}")
        e = (step + 1) // self.delta_t - 1
        n_drop_PxL = jnp.take(table, e, axis=1)
        grads = train.vmap_models(jax.grad(mlp.loss), pop.params, x, y)  # dense gradient at the sparse point
        wm = jax.vmap(lambda p, m, g, d: rigl_update(p, m, g, n_drop=d))(pop.params, pop.masks, grads, n_drop_PxL)
        old = pop.masks
        pop = base.with_weight_masks(pop, wm)
        # grown weights start at 0 (they were exactly 0 while masked) with a zero momentum buffer
        momentum = jax.tree.map(lambda b, m_old, m_new: b * m_old * m_new, pop.momentum, old, pop.masks)
        return pop._replace(momentum=momentum)


@dataclasses.dataclass(frozen=True)
class RigL(base.Method):
    """RigL: ERK random start with exactly B weights, drop/grow every ΔT = 100 steps while the
    reference's counter is below 0.75·T (146 updates at iterations 99, 199, …, 14,599 for
    T = 19,500), the optimiser step skipped on update steps."""
    name = "rigl"
    label = "RigL"
    params_type = RigLParams

    def prune_at_init(self, params, budget, key, lr, x_all, y_all, widths):
        from sparsejax import mlp
        return list(_erk_start(tuple(mlp.layer_shapes(tuple(widths))), jnp.asarray(budget, jnp.int32), key))

    def hook(self, cfg, n_examples):
        return RigLHook(base.total_steps(cfg, n_examples), self.params.delta_t, self.params.end_fraction)

    def prepare(self, pop, cfg, n_examples):
        """hook_state := (P, E, L) weights dropped per update and layer: the reference's float64
        int(n_on · f) with n_on each layer's live count (ERK's, constant through training)."""
        total = base.total_steps(cfg, n_examples)
        p = self.params
        counts_PxL = np.stack([np.asarray(jnp.sum(l["w"], axis=(1, 2))) for l in pop.masks], axis=1).astype(np.int64)
        n_events = len(schedules.rigl_event_steps(total, p.delta_t, p.end_fraction))
        table = np.stack([schedules.rigl_drop_counts(c, total, p.delta_t, p.alpha, p.end_fraction)
                          for c in counts_PxL]).reshape(len(counts_PxL), n_events, len(pop.masks)).astype(np.int32)
        return pop._replace(hook_state=base.like(table, pop.hook_state))

    def flops(self, ctx):
        """T sparse steps on the ERK mask (biases by the bias model within each layer's count),
        except the update steps: a dense gradient pass instead (the optimiser step is skipped)."""
        from sparsejax.analysis.flops import expected_bias_nnz
        sparse = ctx.sparse if ctx.final_model_nnz is not None else float(ctx.budget) + expected_bias_nnz(
            ctx.widths, layer_counts=erk_layer_counts(ctx.widths, ctx.budget))
        p = self.params
        updates = len(schedules.rigl_event_steps(ctx.total_steps, p.delta_t, p.end_fraction))
        return 0.0, (ctx.total_steps - updates) * ctx.step(sparse) + updates * ctx.step(ctx.dense)


registry.register(RigL())
