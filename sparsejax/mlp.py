"""Masked MLPs as pytrees (SPEC §2).

A network is a tuple of layers, each ``{"w": w_IxO, "b": b_O}`` (inputs on rows, so ``x @ w``);
a population has the same structure with a leading axis P on every leaf (``w_PxIxO``, ``b_PxO``).
Masks are pytrees of the same structure holding 0/1 float32. Every function here is written for
one network; the counting helpers reduce over the trailing axes only, so they also accept
populations. Checkpoints use PyTorch names and (out, in) shapes.
"""
from __future__ import annotations

import functools
import os
import zipfile
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Layer = dict
Params = tuple  # tuple[Layer, ...]

INPUT_DIM = 2
OUTPUT_DIM = 1
DEFAULT_WIDTHS = (16, 16, 16)
TORCH_NAMES_4 = ("first_layer", "second_layer", "third_layer", "clf")
INIT_SCHEMES = ("torch", "xavier_normal")


def check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """Validated hidden widths as a tuple; ValueError for an empty list or a width < 1."""
    widths = tuple(int(w) for w in widths)
    if not widths:
        raise ValueError("widths: need at least one hidden layer")
    for w in widths:
        if w < 1:
            raise ValueError(f"widths: every width must be >= 1, got {list(widths)}")
    return widths


def layer_dims(widths: Sequence[int]) -> tuple[int, ...]:
    """(2, *widths, 1): the unit counts of every layer, input and output included."""
    return (INPUT_DIM, *check_widths(widths), OUTPUT_DIM)


def layer_shapes(widths: Sequence[int]) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every linear layer."""
    dims = layer_dims(widths)
    return list(zip(dims[:-1], dims[1:]))


def weight_count(widths: Sequence[int]) -> int:
    """Number of weight entries N_w (w=16: 560)."""
    return sum(i * o for i, o in layer_shapes(widths))


def torch_names(num_layers: int) -> tuple[str, ...]:
    """PyTorch module names of the reference model (and ``layer{i}`` for other depths)."""
    if num_layers == len(TORCH_NAMES_4):
        return TORCH_NAMES_4
    return tuple(f"layer{i}" for i in range(num_layers))


def init(key: Array, widths: Sequence[int] = DEFAULT_WIDTHS, scheme: str = "torch") -> Params:
    """One network. ``torch``: W, b ~ U(±1/√fan_in) (nn.Linear's default). ``xavier_normal``:
    weights ~ N(0, 2/(fan_in+fan_out)), biases as ``torch`` (what the reference does for SNIP and
    GraSP: it re-initialises the weight matrices only)."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; allowed: {', '.join(INIT_SCHEMES)}")
    layers = []
    for k, (fan_in, fan_out) in zip(jax.random.split(key, len(layer_shapes(widths))), layer_shapes(widths)):
        kw, kb = jax.random.split(k)
        bound = 1.0 / np.sqrt(fan_in)
        b = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
        if scheme == "torch":
            w = jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound)
        else:
            w = jax.random.normal(kw, (fan_in, fan_out), jnp.float32) * np.sqrt(2.0 / (fan_in + fan_out))
        layers.append({"w": w, "b": b})
    return tuple(layers)


def init_population(keys_P: Array, widths: Sequence[int] = DEFAULT_WIDTHS, scheme: str = "torch") -> Params:
    """P networks from P keys (one per model), leaves with a leading axis P."""
    return _init_population(keys_P, check_widths(widths), scheme)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init_population(keys_P: Array, widths: tuple[int, ...], scheme: str) -> Params:
    return jax.vmap(lambda k: init(k, widths, scheme))(keys_P)


def apply(params: Params, x_BxI: Array) -> Array:
    """Logits (B,) of one network: ReLU after every hidden layer, a linear single-logit output."""
    h = x_BxI
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return (h @ params[-1]["w"] + params[-1]["b"])[..., 0]


def hidden_activations(params: Params, x_BxI: Array) -> list[Array]:
    """Post-activations of every hidden layer and the output logit, each (B, units)."""
    h, outs = x_BxI, []
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
        outs.append(h)
    outs.append(h @ params[-1]["w"] + params[-1]["b"])
    return outs


def bce_with_logits(z: Array, y: Array) -> Array:
    """Elementwise binary cross-entropy with logits, stable for any z."""
    return jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))


def loss(params: Params, x_BxI: Array, y_B: Array) -> Array:
    """Mean binary cross-entropy with logits (the reference's BCEWithLogitsLoss)."""
    return jnp.mean(bce_with_logits(apply(params, x_BxI), y_B))


# ---------------------------------------------------------------------------------------------
# masks and counts


def dense_masks(widths: Sequence[int]) -> Params:
    """All-ones masks for one network."""
    return tuple({"w": jnp.ones((i, o), jnp.float32), "b": jnp.ones((o,), jnp.float32)}
                 for i, o in layer_shapes(widths))


def apply_masks(params: Params, masks: Params) -> Params:
    """Masked parameters (entries where the mask is 0 become exactly 0)."""
    return jax.tree.map(lambda p, m: p * m.astype(p.dtype), params, masks)


def bias_masks_out_degree(weight_masks: Sequence[Array]) -> list[Array]:
    """Pruning rule (SPEC §5): hidden bias i of layer ℓ is kept iff column i of layer ℓ+1's
    weight mask (in PyTorch terms; row i of our (in, out) matrix) is nonzero; the output bias is
    always kept. Accepts leading population axes."""
    out = [(jnp.sum(wm_next, axis=-1) > 0).astype(jnp.float32) for wm_next in weight_masks[1:]]
    last = weight_masks[-1]
    out.append(jnp.ones(last.shape[:-2] + last.shape[-1:], jnp.float32))
    return out


def bias_masks_in_degree(weight_masks: Sequence[Array]) -> list[Array]:
    """Search rule (SPEC §4): bias i of layer ℓ is on iff that unit has a nonzero incoming weight
    (row i of the PyTorch mask); the output bias is always kept."""
    out = [(jnp.sum(wm, axis=-2) > 0).astype(jnp.float32) for wm in weight_masks[:-1]]
    last = weight_masks[-1]
    out.append(jnp.ones(last.shape[:-2] + last.shape[-1:], jnp.float32))
    return out


BIAS_RULES = {"out_degree": bias_masks_out_degree, "in_degree": bias_masks_in_degree}


def masks_from_weights(weight_masks: Sequence[Array], bias_rule: str = "out_degree") -> Params:
    """Full masks (weights and biases) from weight masks and a bias rule name."""
    if bias_rule not in BIAS_RULES:
        raise ValueError(f"unknown bias rule {bias_rule!r}; allowed: {', '.join(BIAS_RULES)}")
    weight_masks = [jnp.asarray(m, jnp.float32) for m in weight_masks]
    return tuple({"w": wm, "b": bm} for wm, bm in zip(weight_masks, BIAS_RULES[bias_rule](weight_masks)))


def structured_masks(widths: Sequence[int], config: Sequence[int]) -> Params:
    """Phase-1 masks: each hidden layer ℓ of a width-`widths` network keeps its first config[ℓ]
    units (top-left blocks of every weight matrix, first d_ℓ bias entries, output bias on)."""
    dims = layer_dims(widths)
    cfg = (INPUT_DIM, *(int(c) for c in config), OUTPUT_DIM)
    if len(cfg) != len(dims) or any(not 1 <= c <= d for c, d in zip(cfg, dims)):
        raise ValueError(f"config {tuple(config)} does not fit widths {tuple(widths)}")
    layers = []
    for l in range(len(dims) - 1):
        w = np.zeros((dims[l], dims[l + 1]), np.float32)
        w[: cfg[l], : cfg[l + 1]] = 1.0
        b = np.zeros((dims[l + 1],), np.float32)
        b[: cfg[l + 1]] = 1.0
        layers.append({"w": jnp.asarray(w), "b": jnp.asarray(b)})
    return tuple(layers)


def structured_nnz(config: Sequence[int]) -> int:
    """Model nnz of a phase-1 configuration: all weights and biases of the kept blocks."""
    cfg = (INPUT_DIM, *(int(c) for c in config), OUTPUT_DIM)
    return sum(a * b + b for a, b in zip(cfg[:-1], cfg[1:]))


def random_weight_masks(key: Array, widths: Sequence[int], budget: Array | int) -> list[Array]:
    """Weight masks keeping exactly `budget` weights chosen uniformly over all layers.
    `budget` may be traced (one compilation serves every budget)."""
    shapes = layer_shapes(widths)
    n = weight_count(widths)
    rank = jnp.argsort(jnp.argsort(jax.random.uniform(key, (n,))))
    flat = (rank < budget).astype(jnp.float32)
    out, start = [], 0
    for i, o in shapes:
        out.append(flat[start:start + i * o].reshape(i, o))
        start += i * o
    return out


def weight_nnz(params: Params) -> Array:
    """Nonzero weights (the four matrices), per model when leaves have a leading P axis."""
    return sum(jnp.sum(layer["w"] != 0, axis=(-2, -1)) for layer in params)


def bias_nnz(params: Params) -> Array:
    return sum(jnp.sum(layer["b"] != 0, axis=-1) for layer in params)


def model_nnz(params: Params) -> Array:
    """Nonzero weights plus nonzero biases."""
    return weight_nnz(params) + bias_nnz(params)


# ---------------------------------------------------------------------------------------------
# checkpoints and slicing


def to_torch_state(params: Params) -> dict[str, np.ndarray]:
    """One network as a PyTorch state dict: ``<name>.weight`` (out, in), ``<name>.bias`` (out,)."""
    state = {}
    for name, layer in zip(torch_names(len(params)), params):
        state[f"{name}.weight"] = np.asarray(layer["w"], np.float32).T.copy()
        state[f"{name}.bias"] = np.asarray(layer["b"], np.float32).copy()
    return state


def from_torch_state(state: dict, widths: Sequence[int] | None = None) -> Params:
    """Inverse of :func:`to_torch_state`. Checks every array is present and shaped consistently
    (and against `widths` when given); raises ValueError naming the offending array."""
    if widths is not None:
        num = len(check_widths(widths)) + 1
    elif any(k.startswith(TORCH_NAMES_4[0] + ".") for k in state):
        num = len(TORCH_NAMES_4)  # the reference's names: exactly four layers
    else:
        num = len({k.split(".")[0] for k in state})
    names = torch_names(num)
    expected = layer_shapes(widths) if widths is not None else None
    layers, prev_out = [], INPUT_DIM
    for l, name in enumerate(names):
        for suffix in ("weight", "bias"):
            if f"{name}.{suffix}" not in state:
                raise ValueError(f"init file: missing array {name}.{suffix}")
        w = np.asarray(state[f"{name}.weight"], np.float32)
        b = np.asarray(state[f"{name}.bias"], np.float32)
        if w.ndim != 2 or w.shape[1] != prev_out or b.shape != (w.shape[0],):
            raise ValueError(f"init file: {name}.weight has shape {w.shape} and {name}.bias {b.shape}; "
                             f"expected (out, {prev_out}) and (out,)")
        if expected is not None and (w.shape[1], w.shape[0]) != expected[l]:
            raise ValueError(f"init file: {name}.weight has shape {w.shape}, expected "
                             f"{(expected[l][1], expected[l][0])} for widths {tuple(widths)}")
        prev_out = w.shape[0]
        layers.append({"w": jnp.asarray(w.T), "b": jnp.asarray(b)})
    if prev_out != OUTPUT_DIM:
        raise ValueError(f"init file: the last layer has {prev_out} outputs, expected {OUTPUT_DIM}")
    return tuple(layers)


def save_npz(path: str, params: Params) -> None:
    """Write one network as ``.npz`` with PyTorch names and (out, in) shapes."""
    np.savez(path, **to_torch_state(params))


def load_npz(path: str, widths: Sequence[int] | None = None) -> Params:
    """Read one network written by :func:`save_npz` (or by the reference code).

    Anything but an .npz of finite float32/float64 arrays is a ValueError naming the file: an
    empty or truncated file, a pickle, integer, complex (its imaginary part would be dropped)
    or float16 arrays (their rounding would silently change the network), NaN or inf weights
    (they would train to a "diverged" record instead of failing at the start).
    """
    if not os.path.isfile(path):
        raise ValueError(f"init file {path!r}: not a regular file")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("holds a single array, not named layers")
            state = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"init file {path!r} is not a readable .npz: {msg}") from None
    for name, a in state.items():
        if a.dtype not in (np.float32, np.float64):
            raise ValueError(f"init file {path!r}: array {name} has dtype {a.dtype}; "
                             "need float32 or float64")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"init file {path!r}: array {name} holds NaN or infinite values")
    return from_torch_state(state, widths)


def widths_of(params: Params) -> tuple[int, ...]:
    """Hidden widths of a network (or population) from its weight shapes."""
    return tuple(int(layer["w"].shape[-1]) for layer in params[:-1])


def slice_width(params: Params, widths: int | Sequence[int]) -> Params:
    """The first `w` units of every hidden layer (the paper's "optimal width" from a width-16 init).
    Works on one network or on a population."""
    old = widths_of(params)
    new = tuple([int(widths)] * len(old)) if np.ndim(widths) == 0 else check_widths(widths)
    if len(new) != len(old) or any(not 1 <= n <= o for n, o in zip(new, old)):
        raise ValueError(f"cannot slice widths {old} to {new}")
    dims = (INPUT_DIM, *new, OUTPUT_DIM)
    return tuple({"w": layer["w"][..., : dims[l], : dims[l + 1]], "b": layer["b"][..., : dims[l + 1]]}
                 for l, layer in enumerate(params))
