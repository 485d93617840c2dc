"""Effective sparsity: disconnected paths, constant-unit folding and path counts (SPEC §7).

A network is a tuple of layers ``{"w": w_IxO, "b": b_O}`` (see :mod:`sparsejax.mlp`); masks have
the same structure (0/1 float32) or are ``None`` (then the support is ``W ≠ 0``). Every public
function works on one network, is pure and already jitted (shapes static, outputs arrays); the
``*_population`` versions are jitted ``jax.vmap`` over a leading axis P on every leaf.

Definitions (ℓ = 1..L indexes the linear layers; unit layer 0 is the input, L the output):

* support        S^ℓ = mask_w ∧ (W ≠ 0) (I×O, inputs on rows), bias support s^ℓ = mask_b ∧ (b ≠ 0).
* forward reach  f^0 = 1;  f^ℓ_j = ∃i S^ℓ_ij ∧ f^{ℓ−1}_i      (unit is reachable from an input).
* backward reach g^L = 1;  g^{ℓ−1}_i = ∃j S^ℓ_ij ∧ g^ℓ_j       (unit reaches the output).
* effective      E^ℓ_ij = S^ℓ_ij ∧ f^{ℓ−1}_i ∧ g^ℓ_j. An edge of E always joins two active units,
                 and either every layer has an effective weight or none has (layer collapse).
* hidden unit    active = f ∧ g; input-dead = ¬f; output-dead = ¬g; constant = ¬f ∧ g ∧ s.
  A unit with f = 0 receives edges only from f = 0 units, so it computes a constant; with g = 1
  that constant reaches the output and is folded into the next layer's bias
  (:func:`fold_constant_units`).

Bias conventions (SPEC §7 keeps three apart; records must name theirs):

* ``direct``    — the caller's masks as given (whatever rule built them: SPEC §5 pruning rule =
  out-degree, SPEC §4 search rule = in-degree), counting actual nonzeros of the masked biases,
  output bias included (SPEC §2 "Model NNZ").
* ``effective`` — a bias counts iff it is in the support and its unit reaches the output
  (s ∧ g): biases of active units, biases of constant units (they shift the function), and the
  output bias. Biases of output-dead units never count.
* ``folded``    — nonzero biases of the network returned by :func:`fold_constant_units`: active
  units (with the folded constants added) and the output bias; weights equal E.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = tuple  # tuple[dict, ...] as in sparsejax.mlp
_HI = jax.lax.Precision.HIGHEST


@jax.jit
def support(params: Params, masks: Params | None = None) -> Params:
    """Boolean supports ``({"w": S_IxO, "b": s_O}, ...)``: mask ∧ (value ≠ 0) for weights and biases."""
    if masks is None:
        return tuple({"w": layer["w"] != 0, "b": layer["b"] != 0} for layer in params)
    return tuple({"w": (layer["w"] != 0) & (m["w"] != 0), "b": (layer["b"] != 0) & (m["b"] != 0)}
                 for layer, m in zip(params, masks))


def _reach(s_w: list[Array]) -> tuple[list[Array], list[Array]]:
    """Forward (f) and backward (g) reachability of every unit layer from weight supports."""
    f_list = [jnp.ones((s_w[0].shape[0],), bool)]
    for s_IxO in s_w:
        f_list.append(jnp.any(s_IxO & f_list[-1][:, None], axis=0))
    g_list = [jnp.ones((s_w[-1].shape[1],), bool)]
    for s_IxO in reversed(s_w):
        g_list.insert(0, jnp.any(s_IxO & g_list[0][None, :], axis=1))
    return f_list, g_list


@jax.jit
def reachability(params: Params, masks: Params | None = None) -> tuple[list[Array], list[Array]]:
    """``(f, g)``: lists of L+1 boolean vectors, one per unit layer (input first, output last).
    f[ℓ]: reachable from some input through the support; g[ℓ]: reaches the output."""
    return _reach([s["w"] for s in support(params, masks)])


def _effective_w(s_w: list[Array], f_list: list[Array], g_list: list[Array]) -> list[Array]:
    return [s_IxO & f_list[l][:, None] & g_list[l + 1][None, :] for l, s_IxO in enumerate(s_w)]


@jax.jit
def effective_weight_masks(params: Params, masks: Params | None = None) -> tuple[Array, ...]:
    """Boolean E^ℓ (I×O) per layer: support weights that lie on some input→output path."""
    s_w = [s["w"] for s in support(params, masks)]
    return tuple(_effective_w(s_w, *_reach(s_w)))


@jax.jit
def effective_masks(params: Params, masks: Params | None = None) -> Params:
    """Full 0/1 float32 masks under the *effective* convention: weights E, biases s ∧ g
    (active and constant units, output bias). They drop the outgoing weights of constant units,
    so they change the function when a constant unit has ReLU(b) ≠ 0; use
    :func:`fold_constant_units` for an equivalent network."""
    sup = support(params, masks)
    s_w = [s["w"] for s in sup]
    f_list, g_list = _reach(s_w)
    e_w = _effective_w(s_w, f_list, g_list)
    return tuple({"w": e.astype(jnp.float32), "b": (s["b"] & g_list[l + 1]).astype(jnp.float32)}
                 for l, (e, s) in enumerate(zip(e_w, sup)))


@jax.jit
def effective_masks_by_gradient(params: Params, masks: Params | None = None) -> tuple[Array, ...]:
    """The SPEC §7 check route for E: the gradient w.r.t. W of Σ outputs of a linear copy with
    weights |W|·S, zero biases and an all-ones input is nonzero exactly on E (every path product
    is positive). Boolean I×O per layer. Products of tiny weights can underflow in float32, so
    :func:`effective_weight_masks` is the primary route; this one exists to cross-check it."""
    s_w = [s["w"].astype(jnp.float32) for s in support(params, masks)]

    def total(w_list: list[Array]) -> Array:
        h_1xI = jnp.ones((1, w_list[0].shape[0]), jnp.float32)
        for w_IxO, s_IxO in zip(w_list, s_w):
            h_1xI = jnp.dot(h_1xI, jnp.abs(w_IxO) * s_IxO, precision=_HI)
        return jnp.sum(h_1xI)

    grads = jax.grad(total)([layer["w"].astype(jnp.float32) for layer in params])
    return tuple(gr != 0 for gr in grads)


@jax.jit
def unit_status(params: Params, masks: Params | None = None) -> dict[str, list[Array]]:
    """Per hidden layer boolean vectors: ``active`` (f ∧ g), ``input_dead`` (¬f), ``output_dead``
    (¬g), ``input_dead_only`` (¬f ∧ g), ``output_dead_only`` (f ∧ ¬g), ``both_dead`` (¬f ∧ ¬g),
    ``constant`` (¬f ∧ g ∧ bias in support)."""
    sup = support(params, masks)
    f_list, g_list = _reach([s["w"] for s in sup])
    return _unit_status(sup, f_list, g_list)


def _unit_status(sup: Params, f_list: list[Array], g_list: list[Array]) -> dict[str, list[Array]]:
    out: dict[str, list[Array]] = {k: [] for k in ("active", "input_dead", "output_dead", "input_dead_only",
                                                   "output_dead_only", "both_dead", "constant")}
    for l in range(1, len(sup)):
        f, g, sb = f_list[l], g_list[l], sup[l - 1]["b"]
        out["active"].append(f & g)
        out["input_dead"].append(~f)
        out["output_dead"].append(~g)
        out["input_dead_only"].append(~f & g)
        out["output_dead_only"].append(f & ~g)
        out["both_dead"].append(~f & ~g)
        out["constant"].append(~f & g & sb)
    return out


@jax.jit
def fold_constant_units(params: Params, masks: Params | None = None) -> tuple[Params, Params]:
    """The same function with only effective weights and active units left: ``(params, masks)``.

    Walking forward, every hidden unit with f = 0 outputs the constant c_i = ReLU(b'_i) where b'
    is its bias plus what was folded into it; c_i·W^{ℓ+1}[i, :] is added to the next layer's bias
    and the unit is deleted. Processing layers in order folds chains (a unit fed only by constant
    units is itself f = 0, and its b' already holds their contribution, even when its own bias is
    zero). Then weights outside E, and biases of every non-active hidden unit, are zeroed.
    Returned masks: weights E; hidden bias on for active units whose original bias mask was on
    or whose folded bias is nonzero; the output bias likewise. Params are returned masked."""
    sup = support(params, masks)
    s_w = [s["w"] for s in sup]
    f_list, g_list = _reach(s_w)
    e_w = _effective_w(s_w, f_list, g_list)
    num = len(params)
    out_params, out_masks = [], []
    c_I = None
    for l, layer in enumerate(params):
        w_IxO, b_O = layer["w"], layer["b"]
        b_O = jnp.where(sup[l]["b"], b_O, jnp.zeros_like(b_O))
        if c_I is not None:
            b_O = b_O + jnp.dot(c_I, jnp.where(s_w[l], w_IxO, jnp.zeros_like(w_IxO)), precision=_HI)
        if l < num - 1:
            c_I = jnp.where(f_list[l + 1], jnp.zeros_like(b_O), jax.nn.relu(b_O))
            keep_O = f_list[l + 1] & g_list[l + 1]
        else:
            keep_O = jnp.ones(b_O.shape, bool)
        new_b = jnp.where(keep_O, b_O, jnp.zeros_like(b_O))
        new_w = jnp.where(e_w[l], w_IxO, jnp.zeros_like(w_IxO))
        orig_b_on = (masks[l]["b"] != 0) if masks is not None else (layer["b"] != 0)
        out_params.append({"w": new_w, "b": new_b})
        out_masks.append({"w": e_w[l].astype(jnp.float32),
                          "b": (keep_O & (orig_b_on | (new_b != 0))).astype(jnp.float32)})
    return tuple(out_params), tuple(out_masks)


@jax.jit
def path_count(params: Params, masks: Params | None = None) -> Array:
    """Number of input→output paths through the support (float32: exact below 2**24)."""
    s_w = [s["w"].astype(jnp.float32) for s in support(params, masks)]
    h_I = jnp.ones((s_w[0].shape[0],), jnp.float32)
    for s_IxO in s_w:
        h_I = jnp.dot(h_I, s_IxO, precision=_HI)
    return jnp.sum(h_I)


def _nnz(x: Array) -> Array:
    return jnp.sum(x != 0).astype(jnp.int32)


@jax.jit
def connectivity_stats(params: Params, masks: Params | None = None) -> dict[str, Array]:
    """Counts of one network (int32 scalars unless noted). Conventions (see the module docstring):

    * ``direct_weight_nnz`` Σ S; ``direct_bias_nnz`` Σ s (all layers, output bias included);
      ``direct_model_nnz`` their sum — SPEC §2 Model NNZ of the masks as given.
    * ``effective_weight_nnz`` Σ E; ``effective_bias_nnz`` Σ s ∧ g (biases of units that reach
      the output: active units, constant units, output bias); ``effective_model_nnz`` their sum.
    * ``folded_weight_nnz`` (= effective), ``folded_bias_nnz`` (nonzero biases of active units
      after folding plus the output bias if nonzero), ``folded_model_nnz`` — actual nonzeros of
      :func:`fold_constant_units`'s network.
    * ``active_units`` int32 (L−1,): f ∧ g per hidden layer, the neuron configuration.
      ``input_dead_units``, ``output_dead_units``, ``constant_units``: the same per layer.
    * ``n_input_dead`` (¬f), ``n_output_dead`` (¬g), ``n_input_dead_only`` (¬f ∧ g),
      ``n_output_dead_only`` (f ∧ ¬g), ``n_both_dead`` (¬f ∧ ¬g), ``n_constant`` (¬f ∧ g ∧ s):
      totals over hidden units. A unit fed only by constant units with a zero bias of its own is
      folded too but counts in ``n_input_dead_only``, not in ``n_constant``.
    * ``layer_collapse`` bool: some layer has no effective weight (⇔ no input→output path; the
      network is then a constant). ``n_paths`` float32: input→output paths through S.
    """
    sup = support(params, masks)
    s_w = [s["w"] for s in sup]
    f_list, g_list = _reach(s_w)
    e_w = _effective_w(s_w, f_list, g_list)
    folded, _ = fold_constant_units(params, masks)
    status = _unit_status(sup, f_list, g_list)

    def per_layer(kind: str) -> Array:
        return jnp.stack([jnp.sum(u).astype(jnp.int32) for u in status[kind]])

    stats: dict[str, Array] = {}
    stats["direct_weight_nnz"] = sum(_nnz(s) for s in s_w)
    stats["direct_bias_nnz"] = sum(_nnz(s["b"]) for s in sup)
    stats["direct_model_nnz"] = stats["direct_weight_nnz"] + stats["direct_bias_nnz"]
    stats["effective_weight_nnz"] = sum(_nnz(e) for e in e_w)
    stats["effective_bias_nnz"] = sum(_nnz(s["b"] & g_list[l + 1]) for l, s in enumerate(sup))
    stats["effective_model_nnz"] = stats["effective_weight_nnz"] + stats["effective_bias_nnz"]
    stats["folded_weight_nnz"] = sum(_nnz(layer["w"]) for layer in folded)
    stats["folded_bias_nnz"] = sum(_nnz(layer["b"]) for layer in folded)
    stats["folded_model_nnz"] = stats["folded_weight_nnz"] + stats["folded_bias_nnz"]
    stats["active_units"] = per_layer("active")
    stats["input_dead_units"] = per_layer("input_dead")
    stats["output_dead_units"] = per_layer("output_dead")
    stats["constant_units"] = per_layer("constant")
    stats["n_input_dead"] = jnp.sum(stats["input_dead_units"])
    stats["n_output_dead"] = jnp.sum(stats["output_dead_units"])
    stats["n_input_dead_only"] = jnp.sum(per_layer("input_dead_only"))
    stats["n_output_dead_only"] = jnp.sum(per_layer("output_dead_only"))
    stats["n_both_dead"] = jnp.sum(per_layer("both_dead"))
    stats["n_constant"] = jnp.sum(stats["constant_units"])
    stats["layer_collapse"] = jnp.any(jnp.stack([~jnp.any(e) for e in e_w]))
    stats["n_paths"] = path_count(params, masks)
    return stats


def _vmap_masks(fn: Any) -> Any:
    """vmap of ``fn(params, masks=None)`` over a leading P axis of params (and masks)."""
    def wrapped(params: Params, masks: Params | None = None) -> Any:
        if masks is None:
            return jax.vmap(lambda p: fn(p))(params)
        return jax.vmap(fn)(params, masks)
    wrapped.__name__ = fn.__name__ + "_population"
    wrapped.__doc__ = f"Population version (leading axis P on every leaf) of :func:`{fn.__name__}`."
    return wrapped


connectivity_stats_population = jax.jit(_vmap_masks(connectivity_stats))

RECORD_FIELDS = ("direct_weight_nnz", "direct_bias_nnz", "direct_model_nnz",
                 "effective_weight_nnz", "effective_bias_nnz", "effective_model_nnz",
                 "folded_weight_nnz", "folded_bias_nnz", "folded_model_nnz", "active_units",
                 "n_input_dead", "n_output_dead", "n_constant", "layer_collapse", "n_paths")


def stats_records(stats: dict) -> list[dict]:
    """Population stats (arrays with a leading P) as one plain-Python dict per model, with the
    fields every run record keeps (JSON-ready: ints, bools, lists)."""
    host = {k: np.asarray(stats[k]) for k in RECORD_FIELDS}
    p = len(host["direct_model_nnz"])
    return [{k: (v[i].tolist() if v[i].ndim else (bool(v[i]) if v.dtype == bool else v[i].item()))
             for k, v in host.items()} for i in range(p)]
fold_constant_units_population = jax.jit(_vmap_masks(fold_constant_units))
effective_masks_population = jax.jit(_vmap_masks(effective_masks))
effective_weight_masks_population = jax.jit(_vmap_masks(effective_weight_masks))
effective_masks_by_gradient_population = jax.jit(_vmap_masks(effective_masks_by_gradient))
path_count_population = jax.jit(_vmap_masks(path_count))
