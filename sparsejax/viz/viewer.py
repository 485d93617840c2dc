"""A self-contained interactive HTML viewer of sparse MLPs (SPEC §8, paper Appendix I).

The paper's tool runs a Flask server next to PyTorch; here one call writes ONE HTML file that needs
no server and no network: the unit heatmaps are computed with JAX (:mod:`sparsejax.viz.network`)
and embedded as PNG data URIs (encoded here with zlib + struct), the weights and a fixed 2,000-point
sample of the dataset are embedded as JSON, and inline vanilla JavaScript draws the network as SVG
(the template is ``viewer_template.html`` next to this module). In the page you can hover any edge
or unit, toggle the effective subnetwork, click an edge (or bias) to prune it and watch the nnz
counters and the sample accuracy update, compare runs side by side, and download SVG or PNG.

Safety: every string that comes from a store (run ids, config values) reaches the page only as
JSON in a ``<script type="application/json">`` block with ``<``, ``>``, ``&`` and U+2028/2029
escaped as ``\\uXXXX`` (so ``</script>`` or ``<!--`` inside a value cannot end the block), and the
script inserts it with ``textContent``; the title is HTML-escaped; and a Content-Security-Policy
with a per-file nonce lets only the viewer's own script run and forbids any network access.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import importlib.resources
import json
import math
import os
import re
import secrets
import struct
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from sparsejax import data, fileio, mlp
from sparsejax.viz import network

VIEWER_VERSION = 1
SAMPLE_SIZE = 2000
POINTS = 600
UNIT_PX = 128
OUTPUT_PX = 256
META_VALUE_CHARS = 400
TEMPLATE = "viewer_template.html"
# The only URLs a page may contain: XML namespace names, never fetched.
NAMESPACE_URLS = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


class ViewerInputError(ValueError):
    """A run, file or value the viewer cannot show (reported as one line by the CLI)."""


@dataclasses.dataclass
class ModelSpec:
    """One network to show: parameters (the :mod:`sparsejax.mlp` tuple of layers or the store's
    flat ``{"0/w": ...}`` dict), optional masks of the same layout, a display name, metadata rows
    (shown in a table; any JSON-able values), the stored full-data accuracy if known, the
    dataset for the points, the sample accuracy and the recomputed full accuracy, and the run's
    training loss per epoch if known (a record's ``loss_curve``)."""

    params: Any
    masks: Any = None
    name: str = "model"
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    accuracy: float | None = None
    dataset: str = "cubist_spiral"
    loss_curve: Sequence[float] | None = None


# ----------------------------------------------------------------------------- encoding


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB (H, W, 3) or RGBA (H, W, 4) image as PNG bytes (zlib + struct, "Up" filter on
    every row, which suits smooth heatmaps)."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"encode_png: need an (H, W, 3|4) image, got shape {a.shape}")
    a = np.ascontiguousarray(np.clip(a, 0, 255).astype(np.uint8))
    h, w, c = a.shape
    rows = a.reshape(h, w * c).astype(np.int16)
    up = (np.diff(rows, axis=0, prepend=np.zeros((1, w * c), np.int16)) % 256).astype(np.uint8)
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def png_data_uri(rgb: np.ndarray) -> str:
    """``data:image/png;base64,...`` of :func:`encode_png`."""
    return "data:image/png;base64," + base64.b64encode(encode_png(rgb)).decode("ascii")


def plain_json(value: Any) -> Any:
    """``value`` as strict JSON data: NumPy scalars/arrays unwrapped, non-finite floats → None,
    mapping keys → str, anything else → its ``str``."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        return plain_json(value.tolist())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return str(value)


_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value: Any) -> str:
    """JSON text that is safe inside ``<script>``: ``<``, ``>``, ``&``, U+2028 and U+2029 (which can
    only occur inside JSON strings) become ``\\uXXXX`` escapes, so no value can close the element
    or open a comment; ``JSON.parse`` gives back the same data."""
    text = json.dumps(plain_json(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_ESCAPES[m.group(0)], text)


def _f32(value: float) -> float:
    """A float32 value by its shortest repr (0.1f → 0.1), to keep the embedded JSON short."""
    return float(str(np.float32(value)))


def meta_rows(meta: Mapping[str, Any]) -> list[list[str]]:
    """Metadata as ``[key, text]`` rows (non-strings as compact JSON, long values cut)."""
    rows = []
    for key, value in meta.items():
        text = value if isinstance(value, str) else json.dumps(plain_json(value), separators=(", ", ": "))
        if len(text) > META_VALUE_CHARS:
            text = text[:META_VALUE_CHARS] + f"… ({len(text)} characters)"
        rows.append([str(key), text])
    return rows


# ----------------------------------------------------------------------------- payload


def _contour_path(logits: np.ndarray, size: float) -> str:
    """SVG path of the 0-logit line in the output square's own coordinates."""
    g = logits.shape[0]
    parts = []
    for line in network.contour_lines(logits):
        pts = line / (g - 1) * size
        parts.append("M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in pts))
    return "".join(parts)


def panel_payload(spec: ModelSpec, sample: tuple[np.ndarray, np.ndarray], *, grid_size: int = data.GRID_SIZE,
                  unit_px: int = UNIT_PX, output_px: int = OUTPUT_PX) -> dict:
    """The JSON the page needs for one network: masked weights, layout, heatmap PNGs (drawn units
    only), per-unit colour scales, the 0-logit contour, counts and accuracies."""
    try:
        params = network.as_params(spec.params)
        masks = network.as_masks(spec.masks, params)
    except network.ModelError as err:
        raise ViewerInputError(f"{spec.name}: {err}") from None
    an = network.analyse(params, masks)
    lay = network.layout(an)
    x_all, y_all = data.load(spec.dataset)
    values, (logits_all, logits_sample) = network.forward_values(params, masks, grid_size,
                                                                 point_sets=[x_all, sample[0]])
    num = len(an.dims)
    images: list[list[str | None]] = []
    scales: list[list[float]] = []
    for l in range(num):
        px = output_px if l == num - 1 else unit_px
        row_img, row_scale = [], []
        for i in range(an.dims[l]):
            v = values[l][..., i]
            scale = network.unit_scale(v)
            row_scale.append(_f32(scale))
            row_img.append(png_data_uri(network.diverging_rgb(network.downsample(v, px), scale))
                           if an.drawn[l][i] else None)
        images.append(row_img)
        scales.append(row_scale)
    wmax = max((float(np.abs(w).max()) for w in an.w if w.size), default=0.0)
    bmax = max((float(np.abs(b).max()) for b in an.b if b.size), default=0.0)
    return {
        "name": spec.name,
        "dataset": spec.dataset,
        "meta": meta_rows(spec.meta),
        "dims": list(an.dims),
        "layers": [{"w": [[_f32(v) for v in row] for row in w], "b": [_f32(v) for v in b]}
                   for w, b in zip(an.w, an.b)],
        "layout": {"width": lay.width, "height": lay.height, "boxes": lay.boxes, "column_x": lay.column_x,
                   "header_y": lay.header_y, "bias": lay.bias_size,
                   "unit": lay.boxes[0][0][2], "output": lay.boxes[-1][0][2]},
        "images": images,
        "scales": scales,
        "contour": _contour_path(values[-1][..., 0], lay.boxes[-1][0][2]),
        "wmax": wmax,
        "bmax": bmax,
        "stats": an.stats,
        "n_points": int(len(x_all)),
        "accuracy_full": network.accuracy_of(logits_all, y_all),
        "accuracy_sample": network.accuracy_of(logits_sample, sample[1]),
        "accuracy_stored": spec.accuracy,
        "loss_curve": None if spec.loss_curve is None else [_f32(v) for v in np.asarray(spec.loss_curve).reshape(-1)],
    }


def page_data(models: Sequence[ModelSpec], *, sample_size: int = SAMPLE_SIZE, points: int = POINTS,
              grid_size: int = data.GRID_SIZE, unit_px: int = UNIT_PX, output_px: int = OUTPUT_PX,
              seed: int = 0) -> dict:
    """Everything embedded in the page for ``models`` (one panel each)."""
    if not models:
        raise ViewerInputError("no model to show")
    samples, panels = {}, []
    for spec in models:
        if spec.dataset not in data.DATASETS:
            raise ViewerInputError(f"{spec.name}: unknown dataset {spec.dataset!r}; "
                                   f"allowed: {', '.join(sorted(data.DATASETS))}")
        if spec.dataset not in samples:
            samples[spec.dataset] = network.data_sample(spec.dataset, sample_size, seed)
        panels.append(panel_payload(spec, samples[spec.dataset], grid_size=grid_size, unit_px=unit_px,
                                    output_px=output_px))
    return {
        "version": VIEWER_VERSION,
        "palette": {"positive": network.POSITIVE, "negative": network.NEGATIVE, "zero": network.ZERO,
                    "constant": network.CONSTANT, "dead": network.DEAD, "ink": network.INK},
        "grid": {"size": grid_size, "extent": data.GRID_EXTENT, "unit_px": unit_px, "output_px": output_px},
        "points": points,
        "samples": {name: {"x": np.round(x.astype(np.float64), 5).tolist(), "y": y.astype(int).tolist()}
                    for name, (x, y) in samples.items()},
        "panels": panels,
    }


def template() -> str:
    """The HTML/CSS/JS template shipped next to this module."""
    return importlib.resources.files("sparsejax.viz").joinpath(TEMPLATE).read_text(encoding="utf-8")


def render_html(payload: Mapping[str, Any], title: str) -> str:
    """Fill the template in one pass (substituted text is never re-scanned): the HTML-escaped
    title, the script-safe JSON and a fresh CSP nonce."""
    fills = {"TITLE": html.escape(title, quote=True), "DATA": script_json(payload),
             "NONCE": secrets.token_urlsafe(18)}
    return re.sub(r"\{\{(TITLE|DATA|NONCE)\}\}", lambda m: fills[m.group(1)], template())


def build_html(models: Sequence[ModelSpec], title: str | None = None, **kwargs: Any) -> str:
    """The complete self-contained page showing ``models`` side by side. ``kwargs`` go to
    :func:`page_data` (sample_size, points, grid_size, unit_px, output_px, seed)."""
    names = " vs ".join(m.name for m in models)
    return render_html(page_data(models, **kwargs), title or f"Sparse model viewer: {names}")


def write_html(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically with mode 0666 & ~umask (``sparsejax.fileio``)."""
    fileio.atomic_write_text(path, text)


# ----------------------------------------------------------------------------- loading


def _dataset_of(config: Any) -> str:
    value = config.get("dataset") if isinstance(config, Mapping) else None
    return value if isinstance(value, str) else "cubist_spiral"


def load_store_model(store_path: str | os.PathLike, run_id: str) -> ModelSpec:
    """A stored run as a :class:`ModelSpec` (config, metrics and counts as metadata, its loss
    curve when stored). ViewerInputError for a path that is not a store, a missing run or one
    without params."""
    from sparsejax.sweep import store as store_lib

    try:
        with store_lib.Store(store_path, create=False) as st:
            rec = st.get(run_id)
    except store_lib.StoreError as err:
        raise ViewerInputError(str(err)) from None
    except (ValueError, OSError) as err:
        raise ViewerInputError(f"{store_path}: cannot read run {run_id!r}: {err}") from None
    if rec is None:
        raise ViewerInputError(f"run {run_id!r} is not in store {os.fspath(store_path)}")
    if rec.get("params") is None:
        raise ViewerInputError(f"run {run_id!r} has no stored params")
    return record_model(rec)


def record_model(rec: Mapping[str, Any]) -> ModelSpec:
    """A record (from a store, or :func:`sparsejax.runs.run_population`) as a :class:`ModelSpec`."""
    config = rec.get("config") if isinstance(rec.get("config"), Mapping) else {}
    meta: dict[str, Any] = {"run_id": rec["run_id"], "status": rec.get("status")}
    for key in ("accuracy", "loss", "weight_nnz", "model_nnz", "diverged", "finished_at"):
        if rec.get(key) is not None:
            meta[key] = rec[key]
    meta.update({f"numeric_path.{k}": v for k, v in (rec.get("numeric_path") or {}).items()})
    meta.update({f"config.{k}": v for k, v in config.items()})
    meta.update({f"metrics.{k}": v for k, v in (rec.get("metrics") or {}).items()})
    acc = rec.get("accuracy")
    return ModelSpec(params=rec["params"], masks=rec.get("masks"), name=str(rec["run_id"]), meta=meta,
                     accuracy=float(acc) if isinstance(acc, (int, float)) and math.isfinite(acc) else None,
                     dataset=_dataset_of(config), loss_curve=rec.get("loss_curve"))


def read_winner(path: str | os.PathLike) -> Any:
    """The :class:`sparsejax.analysis.winners.Winner` of a winners file; ViewerInputError
    (naming the file) when it cannot be used."""
    from sparsejax.analysis import winners as winners_lib

    try:
        return winners_lib.read_winner(os.fspath(path))
    except ValueError as err:
        raise ViewerInputError(str(err)) from None


def winner_title(win: Any) -> str:
    """A winner's panel name: ``name (run id)``."""
    return f"{win.name} ({win.run_id})"


def load_winner_model(path: str | os.PathLike, store: str | os.PathLike | None = None) -> ModelSpec:
    """The network of a winners file (``experiments/winners/*.json``): its run read from `store`
    when stored there, else retrained from the file's config (one run, as ``experiments.train
    --config``). The claimed numbers head the metadata. ViewerInputError for an unusable file."""
    from sparsejax.sweep import store as store_lib

    win = read_winner(path)
    rec = None
    if store is not None:
        try:
            with store_lib.Store(store, create=False) as st:
                rec = st.get(win.run_id)
        except (store_lib.StoreError, ValueError, OSError) as err:
            raise ViewerInputError(f"{os.fspath(store)}: cannot read run {win.run_id!r}: {err}") from None
    if rec is None or rec.get("params") is None:
        from sparsejax import runs
        (rec,) = runs.run_population([dict(win.config)])
        source = "retrained from the file's config"
    else:
        source = f"read from store {os.fspath(store)}"
    spec = record_model(rec)
    spec.name = winner_title(win)
    spec.meta = {"winner": win.name, "winner file": win.path, "claimed model_nnz": win.model_nnz,
                 "claimed accuracy": win.accuracy, "target": win.target, "network": source,
                 "retrain": win.retrain_command(), **spec.meta}
    return spec


def load_npz_model(path: str | os.PathLike, dataset: str = "cubist_spiral") -> ModelSpec:
    """A network saved by :func:`sparsejax.mlp.save_npz` (PyTorch names; zeros are pruned
    weights). ViewerInputError if the file is unreadable or not such a network."""
    try:
        params = mlp.load_npz(os.fspath(path))
    except (ValueError, OSError, KeyError) as err:
        raise ViewerInputError(str(err)) from None
    name = os.path.basename(os.fspath(path))
    return ModelSpec(params=params, name=name, meta={"file": os.fspath(path)}, dataset=dataset)


def load_models(store: str | os.PathLike | None = None, run_id: str | None = None,
                npz: str | os.PathLike | None = None, compare: str | None = None,
                dataset: str | None = None, winner: str | os.PathLike | None = None) -> list[ModelSpec]:
    """The model(s) to show: run ``run_id`` of ``store`` (and run ``compare`` of the same store),
    the ``npz`` file (and the ``compare`` file), or the ``winner`` file's network
    (:func:`load_winner_model`; ``store``, if given, is searched first; ``compare`` is a run of
    it). ``dataset`` overrides the runs' datasets. ViewerInputError for inconsistent arguments
    or unreadable input."""
    if dataset is not None and dataset not in data.DATASETS:
        raise ViewerInputError(f"unknown dataset {dataset!r}; allowed: {', '.join(sorted(data.DATASETS))}")
    if winner is not None:
        if npz is not None or run_id:
            raise ViewerInputError("a winners file is the model: give no run id and no .npz with it")
        if compare and store is None:
            raise ViewerInputError("compare: with a winners file, compare is a run id of a store; give the store")
        models = [load_winner_model(winner, store)]
        if compare:
            models.append(load_store_model(store, compare))
    elif (store is None) == (npz is None):
        raise ViewerInputError("give exactly one of a store (with a run id), an .npz file or a winners file")
    elif store is not None:
        if not run_id:
            raise ViewerInputError("a run id is needed to show a run of a store")
        models = [load_store_model(store, run_id)]
        if compare:
            models.append(load_store_model(store, compare))
    else:
        models = [load_npz_model(npz)]
        if compare:
            models.append(load_npz_model(compare))
    if dataset is not None:
        for spec in models:
            spec.dataset = dataset
    return models
