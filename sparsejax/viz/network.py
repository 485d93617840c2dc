"""The picture of a sparse MLP (SPEC §8, paper Figure 1 / Appendix I), shared by the HTML viewer
and a matplotlib renderer for papers.

What is drawn: the two inputs, every hidden unit's post-activation and the output logit, each as a
square showing the unit's value over the 512² grid on [−2.25, 2.25]² (diverging palette: blue
#0877bd positive, orange #f59322 negative, white zero); one cubic Bézier curve (two control points)
per nonzero weight, stroke width ∝ |w|, coloured by sign; a small square above each unit coloured
by its bias. Only the nonzero subnetwork is drawn: a hidden unit without any live weight is left
out. Connectivity (SPEC §7, :mod:`sparsejax.connectivity`) is marked: weights off every
input→output path are dashed, weights carrying a constant unit's value dotted; input-dead units are
hatched "/", output-dead units hatched "\\", constant units outlined in purple.

This module holds the pieces both renderers need (model analysis, layout, colours, activation
images) so that the HTML page and :func:`draw_network` show the same picture.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import connectivity, data, mlp
from sparsejax.sweep.store import unflatten_layers

POSITIVE = "#0877bd"
NEGATIVE = "#f59322"
ZERO = "#ffffff"
CONSTANT = "#8e24aa"
DEAD = "#9e9e9e"
INK = "#333333"

# Unit statuses. Hidden units: f ∧ g active; ¬f ∧ g ∧ bias constant; ¬f ∧ g input-dead;
# f ∧ ¬g output-dead; ¬f ∧ ¬g dead. Inputs are "input", the logit "output".
HIDDEN_STATUSES = ("active", "constant", "input_dead", "output_dead", "dead")
STATUS_LABELS = {
    "active": "active (on an input→output path)",
    "constant": "constant (no input path, bias ≠ 0: folded into the next bias)",
    "input_dead": "input-dead (no path from the inputs)",
    "output_dead": "output-dead (no path to the output)",
    "dead": "input- and output-dead",
}


class ModelError(ValueError):
    """Parameters or masks that do not describe one MLP."""


# ----------------------------------------------------------------------------- inputs


def _layers_from_flat(flat: Mapping[str, Any], what: str) -> list[dict]:
    try:
        return list(unflatten_layers(flat, what))
    except ValueError as e:
        raise ModelError(str(e)) from None


def as_params(params: Any) -> tuple[dict, ...]:
    """One network as float32 NumPy layers ``({"w": w_IxO, "b": b_O}, ...)``.

    Accepts the :mod:`sparsejax.mlp` tuple of layers (NumPy or JAX leaves) or the store's flat
    ``{"0/w": ..., "0/b": ...}`` dict; checks that shapes chain from 2 inputs to 1 output."""
    layers = _layers_from_flat(params, "params") if isinstance(params, Mapping) else list(params)
    out, prev = [], mlp.INPUT_DIM
    for l, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or "w" not in layer or "b" not in layer:
            raise ModelError(f"params: layer {l} needs 'w' and 'b'")
        w = np.asarray(layer["w"], np.float32)
        b = np.asarray(layer["b"], np.float32)
        if w.ndim != 2 or w.shape[0] != prev or b.shape != (w.shape[1],):
            raise ModelError(f"params: layer {l} has w {w.shape} and b {b.shape}; expected ({prev}, O) and (O,)")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ModelError(f"params: layer {l} has non-finite values")
        out.append({"w": w, "b": b})
        prev = w.shape[1]
    if len(out) < 2 or prev != mlp.OUTPUT_DIM:
        raise ModelError(f"params: need at least one hidden layer and {mlp.OUTPUT_DIM} output")
    return tuple(out)


def as_masks(masks: Any, params: Sequence[Mapping[str, np.ndarray]]) -> tuple[dict, ...] | None:
    """Masks (same layouts as :func:`as_params`, bool or 0/1) as bool NumPy layers, or None."""
    if masks is None:
        return None
    layers = _layers_from_flat(masks, "masks") if isinstance(masks, Mapping) else list(masks)
    if len(layers) != len(params):
        raise ModelError(f"masks: {len(layers)} layers for a {len(params)}-layer network")
    out = []
    for l, (m, p) in enumerate(zip(layers, params)):
        if not isinstance(m, Mapping) or "w" not in m:
            raise ModelError(f"masks: layer {l} needs 'w'")
        mw = np.asarray(m["w"]) != 0
        mb = np.asarray(m["b"]) != 0 if "b" in m else np.ones(p["b"].shape, bool)
        if mw.shape != p["w"].shape or mb.shape != p["b"].shape:
            raise ModelError(f"masks: layer {l} has shapes {mw.shape}/{mb.shape}, params "
                             f"{p['w'].shape}/{p['b'].shape}")
        out.append({"w": mw, "b": mb})
    return tuple(out)


def masked(params: Sequence[Mapping[str, np.ndarray]], masks: Sequence[Mapping[str, np.ndarray]] | None
           ) -> tuple[dict, ...]:
    """Parameters with masked-off entries set to exactly zero (what the network computes)."""
    if masks is None:
        return tuple({"w": p["w"].copy(), "b": p["b"].copy()} for p in params)
    return tuple({"w": np.where(m["w"], p["w"], 0).astype(np.float32),
                  "b": np.where(m["b"], p["b"], 0).astype(np.float32)} for p, m in zip(params, masks))


# ----------------------------------------------------------------------------- analysis


@dataclasses.dataclass
class Analysis:
    """Everything the picture needs about one network's connectivity (NumPy, host side).

    Unit layers are numbered 0 (inputs) .. L (output); weight layer ℓ joins unit layers ℓ and ℓ+1.
    """

    dims: tuple[int, ...]
    w: list[np.ndarray]            # masked weights, (I, O) float32 per layer
    b: list[np.ndarray]            # masked biases, (O,) per layer
    support_w: list[np.ndarray]    # bool (I, O): weights drawn as edges
    effective_w: list[np.ndarray]  # bool (I, O): edges on an input→output path (E)
    f: list[np.ndarray]            # bool per unit layer: reachable from the inputs
    g: list[np.ndarray]            # bool per unit layer: reaches the output
    status: list[list[str]]        # per unit layer
    drawn: list[np.ndarray]        # bool per unit layer: the unit is drawn
    stats: dict[str, Any]          # connectivity_stats as Python ints / lists

    def in_degree(self, layer: int) -> np.ndarray:
        return np.zeros(self.dims[0], int) if layer == 0 else self.support_w[layer - 1].sum(0)

    def out_degree(self, layer: int) -> np.ndarray:
        return np.zeros(self.dims[-1], int) if layer == len(self.dims) - 1 else self.support_w[layer].sum(1)

    def edge_kind(self, layer: int, i: int, j: int) -> str:
        """``effective``, ``constant`` (carries a constant unit's value to a unit that reaches the
        output) or ``dead`` for a support edge of weight layer ``layer``."""
        if self.effective_w[layer][i, j]:
            return "effective"
        if self.status[layer][i] == "constant" and self.g[layer + 1][j]:
            return "constant"
        return "dead"

    def visible(self, layer: int, index: int, effective_only: bool = False) -> bool:
        """Whether unit (layer, index) is shown, optionally in the effective-subnetwork view."""
        if not self.drawn[layer][index]:
            return False
        if not effective_only or layer == len(self.dims) - 1:
            return True
        return bool(self.f[layer][index] and self.g[layer][index])


@jax.jit
def _connectivity(params: tuple) -> tuple:
    """:func:`connectivity.reachability`, :func:`connectivity.effective_weight_masks`,
    :func:`connectivity.unit_status` and :func:`connectivity.connectivity_stats` in one compiled
    program per shape (XLA compilation dominates the cost for a tiny network): the viewer shows
    the library's statuses and counts, never its own re-derivation."""
    return (connectivity.reachability(params), connectivity.effective_weight_masks(params),
            connectivity.unit_status(params), connectivity.connectivity_stats(params))


# the counts the viewer shows (connectivity_stats' names and definitions)
SHOWN_STATS = ("direct_weight_nnz", "direct_bias_nnz", "direct_model_nnz", "effective_weight_nnz",
               "effective_bias_nnz", "effective_model_nnz", "active_units", "n_input_dead", "n_output_dead",
               "n_constant")


def _status_names(unit_status: Mapping[str, list[np.ndarray]], layer: int) -> list[str]:
    """Hidden layer `layer` (0-based among hidden layers) as status names from
    :func:`connectivity.unit_status`'s boolean vectors."""
    us = {k: np.asarray(v[layer]) for k, v in unit_status.items()}
    out = []
    for i in range(len(us["active"])):
        if us["active"][i]:
            out.append("active")
        elif us["constant"][i]:
            out.append("constant")
        elif us["input_dead_only"][i]:
            out.append("input_dead")
        elif us["output_dead_only"][i]:
            out.append("output_dead")
        else:
            out.append("dead")
    return out


def analyse(params: Any, masks: Any = None) -> Analysis:
    """Support, reachability, unit statuses and counts of one network (SPEC §7), all from
    :mod:`sparsejax.connectivity` on the masked network."""
    params = as_params(params)
    masks = as_masks(masks, params)
    mp = masked(params, masks)
    jp = tuple({"w": jnp.asarray(p["w"]), "b": jnp.asarray(p["b"])} for p in mp)
    (f_list, g_list), eff, unit_status, stats = jax.tree.map(np.asarray, _connectivity(jp))
    f_list, g_list, eff = list(f_list), list(g_list), list(eff)
    dims = (mp[0]["w"].shape[0], *(p["w"].shape[1] for p in mp))
    sup = [p["w"] != 0 for p in mp]
    num = len(dims) - 1
    status: list[list[str]] = [["input"] * dims[0]]
    drawn = [np.ones(dims[0], bool)]
    for l in range(1, num):
        status.append(_status_names(unit_status, l - 1))
        drawn.append(sup[l - 1].any(0) | sup[l].any(1))
    status.append(["output"] * dims[-1])
    drawn.append(np.ones(dims[-1], bool))
    shown = {k: (np.asarray(stats[k]).tolist()) for k in SHOWN_STATS}
    shown = {k: ([int(x) for x in v] if isinstance(v, list) else int(v)) for k, v in shown.items()}
    return Analysis(dims=dims, w=[p["w"] for p in mp], b=[p["b"] for p in mp], support_w=sup,
                    effective_w=eff, f=f_list, g=g_list, status=status, drawn=drawn, stats=shown)


# ----------------------------------------------------------------------------- layout


@dataclasses.dataclass
class Layout:
    """Pixel geometry of the picture (y grows downwards, as in SVG)."""

    width: float
    height: float
    boxes: list[list[tuple[float, float, float] | None]]  # (x, y, size) per unit, None = not drawn
    column_x: list[float]
    header_y: float
    bias_size: float

    def left_port(self, layer: int, index: int) -> tuple[float, float]:
        x, y, s = self.boxes[layer][index]
        return x, y + s / 2

    def right_port(self, layer: int, index: int) -> tuple[float, float]:
        x, y, s = self.boxes[layer][index]
        return x + s, y + s / 2


def layout(analysis: Analysis, unit: float = 48, output: float = 144, gap: float = 16,
           column_gap: float = 124, margin: float = 24, header: float = 36) -> Layout:
    """Columns of squares, one per unit layer, each centred vertically; only drawn units get a box."""
    num = len(analysis.dims)
    sizes = [unit] * (num - 1) + [output]
    counts = [int(d.sum()) for d in analysis.drawn]
    heights = [n * s + max(n - 1, 0) * gap for n, s in zip(counts, sizes)]
    body = max(heights)
    top = margin + header
    xs, x = [], margin
    for s in sizes:
        xs.append(x)
        x += s + column_gap
    width = xs[-1] + sizes[-1] + margin
    boxes: list[list[tuple[float, float, float] | None]] = []
    for l in range(num):
        y = top + (body - heights[l]) / 2
        col: list[tuple[float, float, float] | None] = []
        for i in range(analysis.dims[l]):
            if analysis.drawn[l][i]:
                col.append((float(xs[l]), float(y), float(sizes[l])))
                y += sizes[l] + gap
            else:
                col.append(None)
        boxes.append(col)
    return Layout(width=float(width), height=float(top + body + margin), boxes=boxes,
                  column_x=[float(v) for v in xs], header_y=float(margin + 6), bias_size=10.0)


def column_titles(num_layers: int) -> list[str]:
    """Header of each unit column: input, hidden 1..L−1, output."""
    return ["input"] + [f"hidden {l}" for l in range(1, num_layers - 1)] + ["output"]


def bezier(p0: tuple[float, float], p1: tuple[float, float]) -> list[tuple[float, float]]:
    """A cubic Bézier from ``p0`` to ``p1`` with two control points half-way across, at the
    heights of the ends: the curve leaves and enters horizontally (Playground-style)."""
    xm = (p0[0] + p1[0]) / 2
    return [p0, (xm, p0[1]), (xm, p1[1]), p1]


def edge_width(value: float, wmax: float, lo: float = 0.6, hi: float = 5.0) -> float:
    """Stroke width in px, ∝ |w| (plus a hair so tiny weights stay visible)."""
    return lo + (hi - lo) * abs(value) / wmax if wmax > 0 else lo


# ----------------------------------------------------------------------------- colours and images


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.float64)


def diverging_rgb(values: np.ndarray, scale: float) -> np.ndarray:
    """uint8 RGB (..., 3): white at 0 blending linearly to blue (+scale) or orange (−scale)."""
    t = np.clip(np.asarray(values, np.float64) / (scale if scale > 0 else 1.0), -1.0, 1.0)[..., None]
    white, pos, neg = _hex_rgb(ZERO), _hex_rgb(POSITIVE), _hex_rgb(NEGATIVE)
    rgb = np.where(t >= 0, white + (pos - white) * t, white + (neg - white) * (-t))
    return np.round(rgb).astype(np.uint8)


def diverging_hex(value: float, scale: float) -> str:
    r, g, b = diverging_rgb(np.array([value]), scale)[0]
    return f"#{r:02x}{g:02x}{b:02x}"


@jax.jit
def _forward_all(params: tuple, x_Nx2: jax.Array) -> list[jax.Array]:
    return [x_Nx2] + mlp.hidden_activations(params, x_Nx2)


def forward_values(params: Any, masks: Any = None, grid_size: int = data.GRID_SIZE,
                   extent: float = data.GRID_EXTENT, point_sets: Sequence[np.ndarray] = ()
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One JAX forward pass over the grid and extra points: ``(values, logits)``. ``values`` lists,
    per unit layer (inputs, post-activations, output logit), a (grid_size, grid_size, units)
    float32 array with row 0 at y = +extent; ``logits`` the (N,) logits of each point set."""
    mp = masked(as_params(params), as_masks(masks, as_params(params)))
    jp = tuple({"w": jnp.asarray(p["w"]), "b": jnp.asarray(p["b"])} for p in mp)
    n_grid = grid_size * grid_size
    x = np.concatenate([data.grid(grid_size, extent), *(np.asarray(p, np.float32) for p in point_sets)])
    outs = [np.asarray(v) for v in _forward_all(jp, jnp.asarray(x))]
    values = [v[:n_grid].reshape(grid_size, grid_size, -1) for v in outs]
    bounds = np.cumsum([n_grid] + [len(p) for p in point_sets])
    logits = [outs[-1][a:b, 0] for a, b in zip(bounds[:-1], bounds[1:])]
    return values, logits


def unit_values(params: Any, masks: Any = None, grid_size: int = data.GRID_SIZE,
                extent: float = data.GRID_EXTENT) -> list[np.ndarray]:
    """Every unit's value over the ``grid_size``² grid (the ``values`` of :func:`forward_values`)."""
    return forward_values(params, masks, grid_size, extent)[0]


def downsample(img: np.ndarray, size: int) -> np.ndarray:
    """Block means of a square (G, G, ...) image down to (size, size, ...) (G divisible by size),
    or nearest-neighbour picks otherwise."""
    g = img.shape[0]
    if size >= g:
        return img
    if g % size == 0:
        k = g // size
        return img.reshape(size, k, size, k, *img.shape[2:]).mean(axis=(1, 3))
    idx = np.round(np.linspace(0, g - 1, size)).astype(int)
    return img[idx][:, idx]


def unit_scale(values: np.ndarray) -> float:
    """Colour scale of one unit's image: its largest |value| on the grid (1 for a zero image)."""
    m = float(np.max(np.abs(values))) if values.size else 0.0
    return m if m > 0 else 1.0


def contour_lines(z: np.ndarray, level: float = 0.0) -> list[np.ndarray]:
    """Polylines (K, 2) in (column, row) index coordinates where ``z`` crosses ``level``."""
    import contourpy  # a matplotlib dependency

    gen = contourpy.contour_generator(z=np.asarray(z, np.float64), line_type="Separate")
    return [np.asarray(line) for line in gen.lines(level) if len(line) > 1]


def data_sample(dataset: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subsample (without replacement) of ``n`` points of ``dataset``."""
    x, y = data.load(dataset)
    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    return np.asarray(x[idx], np.float32), np.asarray(y[idx], np.float32)


def accuracy_of(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of points whose prediction (logit > 0) equals the label."""
    return float(np.mean((np.asarray(logits) > 0) == (np.asarray(y) > 0.5)))


def accuracy(params: Any, masks: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the (masked) network on ``(x, y)``."""
    return accuracy_of(forward_values(params, masks, 2, point_sets=[x])[1][0], y)


# ----------------------------------------------------------------------------- matplotlib


def _legend_handles() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Line2D([], [], color=POSITIVE, lw=2, label="positive weight"),
        Line2D([], [], color=NEGATIVE, lw=2, label="negative weight"),
        Line2D([], [], color=INK, lw=1.2, ls=(0, (4, 3)), label="off every input→output path"),
        Line2D([], [], color=INK, lw=1.2, ls=(0, (1, 2)), label="carries a constant unit"),
        Patch(facecolor="white", edgecolor=CONSTANT, lw=1.5, hatch="////", label="constant unit"),
        Patch(facecolor="white", edgecolor=DEAD, hatch="////", label="input-dead unit"),
        Patch(facecolor="white", edgecolor=DEAD, hatch="\\\\\\\\", label="output-dead unit"),
    ]


def draw_network(params: Any, masks: Any = None, ax: Any = None, *, effective_only: bool = False,
                 dataset: str | None = "cubist_spiral", points: int = 600, grid_size: int = data.GRID_SIZE,
                 unit_px: int = 128, output_px: int = 256, legend: bool = True, title: str | None = None,
                 seed: int = 0) -> Any:
    """Draw the network picture with matplotlib and return the Axes.

    ``params``/``masks``: the :mod:`sparsejax.mlp` tuple of layers or the store's flat dict.
    Heatmaps (computed with JAX on the ``grid_size``² grid, block-averaged to ``unit_px`` /
    ``output_px``) are placed with ``imshow`` in one Axes whose data coordinates are the viewer's
    pixel layout; edges are ``Path`` CURVE4 Béziers. ``dataset`` (None: no points) gives the
    ``points`` overlaid on the output with the 0-logit contour. ``effective_only`` draws just the
    effective subnetwork. Without ``ax`` a figure sized to the layout (100 px per inch) is created;
    save it with ``ax.figure.savefig("net.png")`` or ``.svg`` (or use :func:`save_network`).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path

    params = as_params(params)
    masks = as_masks(masks, params)
    an = analyse(params, masks)
    lay = layout(an)
    values = unit_values(params, masks, grid_size)
    extra_h = 70 if legend else 0
    if ax is None:
        fig = plt.figure(figsize=(lay.width / 100, (lay.height + extra_h) / 100))
        ax = fig.add_axes((0, extra_h / (lay.height + extra_h), 1, lay.height / (lay.height + extra_h)))
    ax.set_xlim(0, lay.width)
    ax.set_ylim(lay.height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    pt = 72 / 100  # px -> points at 100 dpi
    num = len(an.dims)
    for l, name in enumerate(column_titles(num)):
        label = name if l in (0, num - 1) else f"{name} · {an.stats['active_units'][l - 1]} active"
        size = lay.boxes[l][0][2] if lay.boxes[l][0] else 48
        ax.text(lay.column_x[l] + size / 2, lay.header_y, label, ha="center", va="center", fontsize=8, color=INK)

    wmax = max((float(np.abs(w).max()) for w in an.w if w.size), default=0.0)
    for l in range(num - 1):
        for i, j in zip(*np.nonzero(an.support_w[l])):
            kind = an.edge_kind(l, i, j)
            if effective_only and kind != "effective":
                continue
            if not (an.visible(l, i, effective_only) and an.visible(l + 1, j, effective_only)):
                continue
            v = float(an.w[l][i, j])
            pts = bezier(lay.right_port(l, i), lay.left_port(l + 1, j))
            path = Path(pts, [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])
            style = {"effective": ("-", 0.85), "constant": ((0, (1, 2)), 0.8), "dead": ((0, (4, 3)), 0.45)}[kind]
            ax.add_patch(PathPatch(path, fill=False, edgecolor=POSITIVE if v > 0 else NEGATIVE,
                                   lw=edge_width(v, wmax) * pt, ls=style[0], alpha=style[1], zorder=1,
                                   capstyle="butt"))

    bmax = max((float(np.abs(b).max()) for b in an.b if b.size), default=0.0)
    for l in range(num):
        for i in range(an.dims[l]):
            if not an.visible(l, i, effective_only):
                continue
            x, y, s = lay.boxes[l][i]
            img = downsample(values[l][..., i], output_px if l == num - 1 else unit_px)
            ax.imshow(diverging_rgb(img, unit_scale(values[l][..., i])), extent=(x, x + s, y + s, y),
                      interpolation="bilinear", zorder=2)
            st = an.status[l][i]
            hatch = {"constant": "////", "input_dead": "////", "output_dead": "\\\\\\\\", "dead": "xxxx"}.get(st)
            if hatch:
                ax.add_patch(Rectangle((x, y), s, s, fill=False, hatch=hatch, edgecolor=DEAD, lw=0, zorder=3))
            edge = CONSTANT if st == "constant" else DEAD if hatch else INK
            ax.add_patch(Rectangle((x, y), s, s, fill=False, edgecolor=edge, lw=(1.5 if st == "constant" else 0.8),
                                   ls="--" if hatch else "-", zorder=4))
            if l > 0:
                bv = float(an.b[l - 1][i])
                bs = lay.bias_size
                ax.add_patch(Rectangle((x, y - bs - 2), bs, bs, facecolor=diverging_hex(bv, bmax),
                                       edgecolor=INK, lw=0.5, ls="-" if bv != 0 else ":", zorder=4))

    x, y, s = lay.boxes[-1][0]
    out = values[-1][..., 0]
    g = out.shape[0]
    for line in contour_lines(out):
        ax.plot(x + line[:, 0] / (g - 1) * s, y + line[:, 1] / (g - 1) * s, color="black", lw=0.8, zorder=5)
    if dataset and points > 0:
        px, py = data_sample(dataset, points, seed)
        ext = data.GRID_EXTENT
        cx = x + (np.clip(px[:, 0], -ext, ext) + ext) / (2 * ext) * s
        cy = y + (ext - np.clip(px[:, 1], -ext, ext)) / (2 * ext) * s
        ax.scatter(cx, cy, s=2.5, c=np.where(py > 0.5, POSITIVE, NEGATIVE), edgecolors="white",
                   linewidths=0.2, zorder=6)
    if title:
        ax.set_title(title, fontsize=9)
    if legend:
        ax.legend(handles=_legend_handles(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
                  fontsize=6.5, frameon=False, handlelength=2.5)
    return ax


def save_network(path: str, params: Any, masks: Any = None, dpi: float = 200, **kwargs: Any) -> None:
    """:func:`draw_network` into a new figure, saved to ``path`` (format from the suffix: .png,
    .svg, .pdf) and closed."""
    import matplotlib.pyplot as plt

    ax = draw_network(params, masks, **kwargs)
    try:
        ax.figure.savefig(path, dpi=dpi, facecolor="white")
    finally:
        plt.close(ax.figure)
