"""Structure-first, connectivity-preserving gradual pruning ("sfp"; issue #16, not in the paper).

Why: the paper shows that GMP/LTH waste budget on weights off every input→output path and
collapse at large widths, while the search's winners are small complete-ish blocks such as
(3,3,3) and (7,3,3). This method trains dense and prunes during training in two stages, on
GMP's event grid (an event at the start of step 97·k, k = 1..199 for T = 19,500):

1. **Units** (events k = 1..K1, K1 = round(structured_end·199)): every hidden layer ℓ keeps
   floor(d_ℓ + (w_ℓ − d_ℓ)(1 − k/K1)³) of its units (cubic, as GMP's weight schedule); the
   kept units are the best by a unit score (``unit_score``: product of the L2 norms of the
   unit's incoming and outgoing weights — invariant to ReLU rescaling —, either norm alone, or
   ``activity``: the unit's mean ReLU output on the event's minibatch times its outgoing norm,
   what the unit passes on, so a unit dead on the data scores 0 — a dead 2-unit bottleneck
   is how wide runs collapse to chance; measured at width 128 it does not help, because units
   die after the choice: ``mean_replace`` below does).
   Removing a unit removes its whole row and column, so the mask is complete blocks between
   the surviving units and every weight is on an input→output path.
   The target neuron configuration d = (d1, m, …, m) comes from the budget: the largest m with
   d1 = ceil((S − (structured count of the rest)) / (m + 2)) ≥ ``first_ratio``·m, where
   S = ceil((1 + slack)·B) (the search's winners are wider in the first layer); d's complete
   blocks hold ≥ B weights (else every unit is kept).
2. **Weights** (events K1 < k ≤ K2, K2 = round(prune_end·199)): the weight count follows
   floor(B + (S_d − B)(1 − (k − K1)/(K2 − K1))³) down to exactly B. Weights are removed one at
   a time by smallest |W| among *safe* weights — those whose source still has another outgoing
   weight (or is an input) and whose target still has another incoming weight — so removing
   one takes exactly one weight out and leaves every other weight effective. Only when no safe
   weight exists, one of the 16 smallest is removed anyway (the smallest whose loss fits the
   excess, else the one losing least); the weights it disconnects are dropped
   (SPEC §7 effective support) and any shortfall is given back to the slots between
   connected units (source reachable from the input, target reaching the output) with the
   largest |dense gradient| on the event's minibatch; grown weights start at 0 with zero
   momentum (as RigL).

With ``mean_replace`` every event also moves what it removed into the biases (mean replacement,
as in Evci et al. 2018's "Mean Replacement Pruning"): for each removed weight i→j of layer ℓ,
b_j += mean_b(h_i)·W_ij over the event's minibatch (h: the layer's inputs), so the targets'
mean pre-activations survive the removal instead of shifting — a shift that can leave a small
layer's every unit dead on the data, which is how wide runs collapse to chance (measured: the
width-128 B 28 run loses its loss in epochs 8–17, the last unit events, and ends with both
units of its 2-unit bottleneck dead).

Invariant after every event: every weight in the mask is effective (E = mask). The final count
is exactly B unless, after a forced cascade, the connected units have fewer free slots than
the budget given back (then fewer; never observed at the paper's budgets). Connectivity is
computed on the mask, not on the values, so a grown weight that is still 0 stays.
Biases follow the out-degree rule like every method. Per-model numbers (budget) are batched
arrays; the structure (widths, params) is static, so one compilation serves every budget.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import mlp, train
from sparsejax.pruning import magnitude, topk

Array = jax.Array

UNIT_SCORES = ("norm_product", "in_norm", "out_norm", "activity")


@dataclasses.dataclass(frozen=True)
class SFPParams:
    """Options of the structure-first method (static; hashable by value).

    unit_score: how a hidden unit is ranked in stage 1 (see the module docstring; one of
        ``UNIT_SCORES``).
    structured_end: fraction of GMP's 199 events spent removing units (K1).
    prune_end: fraction of the events by which the weight count reaches B (K2 > K1).
    slack: the neuron configuration holds ceil((1 + slack)·B) weights (at least B).
    first_ratio: the first hidden layer has at least first_ratio × the units of the others.
    mean_replace: move each removed weight's mean contribution into its target's bias.
    """
    unit_score: str = "norm_product"
    structured_end: float = 0.3
    prune_end: float = 0.75
    slack: float = 0.25
    first_ratio: float = 2.0
    mean_replace: bool = False

    def __post_init__(self):
        if self.unit_score not in UNIT_SCORES:
            raise ValueError(f"unit_score: unknown {self.unit_score!r}; allowed: {', '.join(UNIT_SCORES)}")
        if not 0.0 < self.structured_end < self.prune_end <= 1.0:
            raise ValueError(f"need 0 < structured_end < prune_end <= 1, got {self.structured_end}, {self.prune_end}")
        if self.slack < 0 or self.first_ratio < 0:
            raise ValueError(f"slack and first_ratio must be >= 0, got {self.slack}, {self.first_ratio}")

    def event_bounds(self, n_events: int = magnitude.GMP_EVENTS) -> tuple[int, int]:
        """(K1, K2): last unit-pruning event and last weight-pruning event, 1 ≤ K1 < K2 ≤ n."""
        k1 = max(1, int(round(self.structured_end * n_events)))
        k2 = min(n_events, max(k1 + 1, int(round(self.prune_end * n_events))))
        return k1, k2


# ------------------------------------------------------------------------- configuration


def config_weight_count(d1, m, n_hidden: int) -> Array:
    """Weights of the complete blocks of (d1, m, …, m) (n_hidden hidden layers), 2 inputs, 1 output."""
    return 2 * d1 + d1 * m + (n_hidden - 2) * m * m + m if n_hidden >= 2 else 3 * d1


def target_config(budget, widths: Sequence[int], slack: float, first_ratio: float) -> Array:
    """The neuron configuration (int32, one entry per hidden layer) for weight budget `budget`:
    (d1, m, …, m) with m the largest unit count for which d1 = ceil((S − rest(m)) / (m + 2))
    ≥ first_ratio·m, S = ceil((1 + slack)·B), d1 ≤ w1, m ≤ the other widths. If no such
    configuration holds at least B weights, every unit is kept. Traceable in `budget`."""
    widths = tuple(int(w) for w in widths)
    n_hidden = len(widths)
    b = jnp.asarray(budget, jnp.int32)
    s = jnp.maximum(topk.schedule_round((1.0 + slack) * b.astype(jnp.float32), "ceil"), b)
    full = jnp.asarray(widths, jnp.int32)
    if n_hidden == 1:
        d1 = jnp.clip((s + 2) // 3, 1, widths[0])
        return jnp.where(3 * d1 >= b, d1, widths[0]).reshape(1).astype(jnp.int32)
    best_d1, best_m = jnp.int32(0), jnp.int32(0)
    for m in range(1, min(widths[1:]) + 1):  # ascending: a later valid m overrides
        rest = (n_hidden - 2) * m * m + m
        d1 = jnp.maximum(-((rest - s) // (m + 2)), 1)  # ceil((s - rest) / (m + 2)), at least 1
        ok = (d1 <= widths[0]) & (d1.astype(jnp.float32) >= first_ratio * m)
        best_d1 = jnp.where(ok, d1, best_d1)
        best_m = jnp.where(ok, m, best_m)
    # no valid m: m = 1 with the first layer as wide as S asks (within w1)
    fallback_d1 = jnp.minimum(jnp.maximum(-((1 * (n_hidden - 2) + 1 - s) // 3), 1), widths[0])
    best_d1 = jnp.where(best_m == 0, fallback_d1, best_d1)
    best_m = jnp.where(best_m == 0, 1, best_m)
    cfg = jnp.concatenate([best_d1[None], jnp.full((n_hidden - 1,), best_m)]).astype(jnp.int32)
    enough = config_weight_count(best_d1, best_m, n_hidden) >= b
    return jnp.where(enough, cfg, full)


# ------------------------------------------------------------------------- stage 1: units


def unit_scores(w_list: Sequence[Array], kind: str, acts: Sequence[Array] | None = None) -> list[Array]:
    """Per hidden layer ℓ (1..L−1), a score per unit from the (masked) weights: ``in_norm``
    ‖W_ℓ[:, j]‖₂, ``out_norm`` ‖W_{ℓ+1}[j, :]‖₂, ``norm_product`` their product, ``activity``
    mean_b acts[ℓ][b, j] · ‖W_{ℓ+1}[j, :]‖₂ (`acts`: the hidden layers' ReLU outputs (B, units)
    on a minibatch, needed for this kind only)."""
    if kind == "activity" and acts is None:
        raise ValueError("unit_scores: the activity score needs the hidden activations")
    out = []
    for l in range(len(w_list) - 1):
        w_in = jnp.sqrt(jnp.sum(jnp.square(w_list[l]), axis=0))
        w_out = jnp.sqrt(jnp.sum(jnp.square(w_list[l + 1]), axis=1))
        if kind == "activity":
            out.append(jnp.mean(acts[l], axis=0) * w_out)
        else:
            out.append({"in_norm": w_in, "out_norm": w_out, "norm_product": w_in * w_out}[kind])
    return out


def unit_counts(k, k1: int, widths: Sequence[int], config: Array) -> Array:
    """Units kept per hidden layer after unit event k (1..k1): floor(d + (w − d)(1 − k/k1)³),
    exactly d from k1 on."""
    w = jnp.asarray(widths, jnp.float32)
    d = config.astype(jnp.float32)
    frac = 1.0 - jnp.minimum(jnp.asarray(k, jnp.float32), k1) / k1
    return jnp.clip(topk.schedule_round(d + (w - d) * frac ** 3, "floor"), config, jnp.asarray(widths, jnp.int32))


def prune_units(w_list: Sequence[Array], m_list: Sequence[Array], keep_per_layer: Array, kind: str,
                acts: Sequence[Array] | None = None) -> list[Array]:
    """Weight masks (bool) after keeping `keep_per_layer[ℓ]` units of every hidden layer ℓ, the
    best by `kind` among the units still alive (a unit is alive iff it has an incoming weight
    in the mask); ties by lower index. Masks become complete blocks between live units
    intersected with the old masks. `acts`: see :func:`unit_scores`."""
    scores = unit_scores(w_list, kind, acts)
    alive = [jnp.ones((m_list[0].shape[0],), bool)]
    for l, score in enumerate(scores):
        live = jnp.any(m_list[l], axis=0)
        alive.append(topk.keep_top_flat(topk.restrict(score, live), keep_per_layer[l]) > 0)
    alive.append(jnp.ones((m_list[-1].shape[1],), bool))
    return [m & alive[l][:, None] & alive[l + 1][None, :] for l, m in enumerate(m_list)]


# ------------------------------------------------------------------------- stage 2: weights


def _degrees(m_list: Sequence[Array]) -> tuple[list[Array], list[Array]]:
    """Out-degree of every layer's source units and in-degree of its target units."""
    return [jnp.sum(m, axis=1) for m in m_list], [jnp.sum(m, axis=0) for m in m_list]


def safe_weights(m_list: Sequence[Array]) -> list[Array]:
    """Mask weights whose removal takes out exactly that weight when every weight is effective:
    the source is an input or has another outgoing weight, the target has another incoming one."""
    out_deg, in_deg = _degrees(m_list)
    out = []
    for l, m in enumerate(m_list):
        src_ok = jnp.ones_like(out_deg[l], bool) if l == 0 else out_deg[l] >= 2
        out.append(m & src_ok[:, None] & (in_deg[l] >= 2)[None, :])
    return out


def effective(m_list: Sequence[Array]) -> list[Array]:
    """E of a bool weight-mask list (SPEC §7 on the mask itself): weights on an input→output path."""
    f = [jnp.ones((m_list[0].shape[0],), bool)]
    for m in m_list:
        f.append(jnp.any(m & f[-1][:, None], axis=0))
    g = [jnp.ones((m_list[-1].shape[1],), bool)]
    for m in reversed(m_list):
        g.insert(0, jnp.any(m & g[0][None, :], axis=1))
    return [m & f[l][:, None] & g[l + 1][None, :] for l, m in enumerate(m_list)]


def _flat(xs: Sequence[Array]) -> Array:
    return topk.flatten_torch_order(xs)


def _count(m_list: Sequence[Array]) -> Array:
    return sum(jnp.sum(m).astype(jnp.int32) for m in m_list)


FALLBACK_CANDIDATES = 16  # smallest live weights whose exact cascade is computed when none is safe


def prune_connected(w_list: Sequence[Array], m_list: Sequence[Array], g_list: Sequence[Array], target) -> list[Array]:
    """Bool weight masks with `target` weights, all effective, from fully effective masks
    `m_list` holding at least `target`. One weight at a time: the smallest-|W| safe weight;
    with none safe, among the FALLBACK_CANDIDATES smallest live weights the smallest whose
    removal (with what it disconnects) loses at most the excess, else the one losing least.
    A shortfall is given back to connected slots by largest |g| (`g_list`, dense gradients)."""
    shapes = [tuple(m.shape) for m in m_list]
    absw = _flat([jnp.abs(w) for w in w_list])
    n = absw.shape[0]
    n_cand = min(FALLBACK_CANDIDATES, n)
    target = jnp.asarray(target, jnp.int32)

    def without(ms, idx):
        drop = topk.unflatten_torch_order(jnp.zeros((n,), bool).at[idx].set(True), shapes)
        return effective([m & ~d for m, d in zip(ms, drop)])

    def cond(ms):
        return _count(ms) > target

    def body(ms):
        ms = list(ms)
        count = _count(ms)
        safe, live = _flat(safe_weights(ms)), _flat(ms)
        safe_idx = jnp.argmin(jnp.where(safe, absw, jnp.inf))  # first (lowest flat index) on ties
        rank = topk.descending_rank(topk.restrict(-absw, live))  # 0 = smallest live weight
        cand = jnp.argsort(rank)[:n_cand]
        lost = jax.vmap(lambda i: count - _count(without(ms, i)))(cand)
        valid = live[cand]
        fits = valid & (lost <= count - target)
        fit_idx = cand[jnp.argmax(fits)]
        least_idx = cand[jnp.argmin(jnp.where(valid, lost, n + 1))]
        idx = jnp.where(jnp.any(safe), safe_idx, jnp.where(jnp.any(fits), fit_idx, least_idx))
        return tuple(without(ms, idx))

    ms = list(jax.lax.while_loop(cond, body, tuple(m_list)))
    short = target - _count(ms)
    f = [jnp.ones((shapes[0][0],), bool)]
    for m in ms:
        f.append(jnp.any(m & f[-1][:, None], axis=0))
    g = [jnp.ones((shapes[-1][1],), bool)]
    for m in reversed(ms):
        g.insert(0, jnp.any(m & g[0][None, :], axis=1))
    slots = _flat([~m & f[l][:, None] & g[l + 1][None, :] for l, m in enumerate(ms)])
    n_grow = jnp.clip(short, 0, jnp.sum(slots).astype(jnp.int32))
    grow = topk.keep_top_flat(topk.restrict(_flat([jnp.abs(gr) for gr in g_list]), slots), n_grow) > 0
    return [m | gr for m, gr in zip(ms, topk.unflatten_torch_order(grow, shapes))]


def weight_target(k, k1: int, k2: int, start, budget) -> Array:
    """Weights kept after weight event k (k1 < k ≤ k2): floor(B + (S − B)(1 − (k−k1)/(k2−k1))³)
    clipped to [B, S], exactly B from k2 on."""
    b = jnp.asarray(budget, jnp.int32)
    frac = 1.0 - jnp.clip(jnp.asarray(k - k1, jnp.float32) / (k2 - k1), 0.0, 1.0)
    x = b.astype(jnp.float32) + (start - b).astype(jnp.float32) * frac ** 3
    t = jnp.clip(topk.schedule_round(x, "floor"), b, jnp.maximum(start, b))
    return jnp.where(jnp.asarray(k) >= k2, b, t).astype(jnp.int32)


# ------------------------------------------------------------------------- one model, one event


def event_masks(params: SFPParams, widths: tuple[int, ...], k, p: mlp.Params, masks: mlp.Params,
                grads: mlp.Params, budget, x: Array | None = None) -> list[Array]:
    """One model's bool weight masks after event k (1..199): a unit event for k ≤ K1, a weight
    event for K1 < k ≤ K2, unchanged otherwise. `x`: the event's minibatch (B, 2), used by
    the activity unit score."""
    k1, k2 = params.event_bounds()
    w_list = [layer["w"] for layer in p]
    m_list = [layer["w"] > 0 for layer in masks]
    g_list = [layer["w"] for layer in grads]
    config = target_config(budget, widths, params.slack, params.first_ratio)

    acts = mlp.hidden_activations(p, x)[:-1] if params.unit_score == "activity" else None

    def units(_):
        return tuple(prune_units(w_list, m_list, unit_counts(k, k1, widths, config), params.unit_score, acts))

    def weights(_):
        start = config_weight_count(config[0], config[1] if len(widths) > 1 else 0, len(widths))
        t = weight_target(k, k1, k2, start, budget)
        return tuple(prune_connected(w_list, effective(m_list), g_list, t))

    branch = jnp.where(k <= k1, 0, jnp.where(k <= k2, 1, 2))
    return list(jax.lax.switch(branch, (units, weights, lambda _: tuple(m_list)), None))


def mean_replaced(p: mlp.Params, old_masks: mlp.Params, new_masks: mlp.Params, x: Array) -> mlp.Params:
    """One model's params with every removed weight's mean contribution added to its target's
    bias: b_ℓ += mean_b(h_{ℓ−1}) @ (W_ℓ ⊙ removed_ℓ), h_{ℓ−1} the layer's inputs on minibatch
    `x` (B, 2) under the params before the event (h_{−1} = x)."""
    inputs = [x, *mlp.hidden_activations(p, x)[:-1]]
    out = []
    for layer, h, m_old, m_new in zip(p, inputs, old_masks, new_masks):
        removed = (m_old["w"] > 0) & ~(m_new["w"] > 0)
        shift = jnp.mean(h, axis=0) @ jnp.where(removed, layer["w"], 0.0)
        out.append({**layer, "b": layer["b"] + shift})
    return type(p)(out)


# ------------------------------------------------------------------------- hook


@dataclasses.dataclass(frozen=True)
class SFPHook(train.MaskHook):
    """The method's mask events for a run of `total_steps` steps: GMP's step grid (start of step
    interval·k) up to event K2. ``pop.hook_state`` is the (P,) int32 budget. Equal by value."""
    total_steps: int
    params: SFPParams = SFPParams()

    def __post_init__(self):
        if magnitude.gmp_interval(self.total_steps) < 1:
            raise ValueError(f"epochs: sfp needs at least {magnitude.GMP_EVENTS + 1} steps, got {self.total_steps}")

    def is_event(self, step: Array) -> Array:
        k = magnitude.gmp_event_index(step, self.total_steps)
        return (k > 0) & (k <= self.params.event_bounds()[1])

    def update(self, pop: train.Population, step: Array, x: Array, y: Array) -> train.Population:
        """New masks for every model (vmapped), biases by the out-degree rule, parameters
        re-masked, grown weights' momentum zeroed."""
        k = magnitude.gmp_event_index(step, self.total_steps)
        widths = tuple(int(layer["w"].shape[-1]) for layer in pop.params[:-1])
        grads = train.vmap_models(jax.grad(mlp.loss), pop.params, x, y)
        wm = jax.vmap(lambda p, m, g, b, xb: tuple(event_masks(self.params, widths, k, p, m, g, b, xb)))(
            pop.params, pop.masks, grads, pop.hook_state, x)
        masks = mlp.masks_from_weights([w.astype(jnp.float32) for w in wm], "out_degree")
        momentum = jax.tree.map(lambda b, m_old, m_new: b * m_old * m_new, pop.momentum, pop.masks, masks)
        params = pop.params
        if self.params.mean_replace:  # model by model: a vmapped dot's float order depends on P
            params = jax.lax.map(lambda a: mean_replaced(*a), (params, pop.masks, masks, x))
        return pop._replace(masks=masks, params=mlp.apply_masks(params, masks), momentum=momentum)


# ------------------------------------------------------------------------- the method


@dataclasses.dataclass(frozen=True)
class StructureFirst:
    """The registered method "sfp": dense start, hook events as above, one 50-epoch run (the
    sweep plan's steps multiplier is 1). It implements the protocol of :class:`sparsejax.pruning.base.Method`
    (name, label, params, hook, fit, FLOPs) without subclassing it."""
    name: str = "sfp"
    needs_budget: bool = True
    init_scheme: str = "torch"
    params: SFPParams = SFPParams()
    params_type: ClassVar[type] = SFPParams  # what a run config's ``method_params`` holds
    label: ClassVar[str] = "Structure-first (ours)"
    training_passes: ClassVar[int] = 1

    def prune_at_init(self, params, budget, key, lr, x_all, y_all, widths):
        return None

    def initial_hook_state(self, budget: Array, key: Array, widths: tuple[int, ...]) -> Array:
        return jnp.asarray(budget, jnp.int32)

    def hook(self, cfg: train.TrainConfig, n_examples: int) -> SFPHook:
        return SFPHook(cfg.epochs * cfg.steps_per_epoch(n_examples), self.params)

    def count_table(self, widths, budgets, total_steps: int = 0) -> None:
        """No host count table: the schedules are integer expressions of B computed on the device."""
        return None

    def prepare(self, pop: train.Population, cfg: train.TrainConfig, n_examples: int) -> train.Population:
        return pop

    def fit(self, pop, x_all, y_all, cfg: train.TrainConfig, progress=None, observe=None) -> train.Population:
        return train.train(pop, x_all, y_all, cfg, hook=self.hook(cfg, len(x_all)), progress=progress,
                           observe=observe)

    def flops(self, ctx) -> tuple[float, float]:
        """(prune, train): the unit then weight schedule's parameters step by step (the final
        phase at the measured nnz when given); one dense gradient per event."""
        counts, events = param_counts_per_step(ctx.widths, ctx.budget, ctx.total_steps, self.params)
        if ctx.final_model_nnz is not None:
            counts = np.where(counts == counts[-1], ctx.final_model_nnz, counts)
        uniq, times = np.unique(counts, return_counts=True)
        return events * ctx.step(ctx.dense), float(sum(t * ctx.step(float(c)) for c, t in zip(uniq, times)))


def param_counts_per_step(widths: Sequence[int], budget: int, total_steps: int,
                          params: SFPParams = SFPParams()) -> tuple[np.ndarray, int]:
    """(nonzero parameters trained at every step (T,), number of events with a dense gradient):
    the FLOPs model's view of one run (weights by the schedules above, biases one per live
    hidden unit plus the output bias; all units live during stage 2, as the safe removals
    keep them — an upper bound otherwise)."""
    widths = tuple(int(w) for w in widths)
    k1, k2 = params.event_bounds()
    interval = magnitude.gmp_interval(total_steps)
    cfg = target_config(budget, widths, params.slack, params.first_ratio)
    d = [int(c) for c in np.asarray(cfg)]
    out = np.full((total_steps,), mlp.weight_count(widths) + sum(widths) + 1, np.int64)
    start = int(config_weight_count(d[0], d[1] if len(d) > 1 else 0, len(d)))
    for k in range(1, k2 + 1):
        if k <= k1:
            u = [int(c) for c in np.asarray(unit_counts(k, k1, widths, cfg))]
            dims = (mlp.INPUT_DIM, *u, mlp.OUTPUT_DIM)
            n = sum(a * b for a, b in zip(dims[:-1], dims[1:])) + sum(u) + 1
        else:
            n = int(weight_target(k, k1, k2, start, budget)) + sum(d) + 1
        out[k * interval:] = n
    return out, k2
