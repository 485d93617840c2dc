"""Pruning after training (paper §7.2): how small can a trained model get by magnitude alone?

The paper magnitude-prunes BENCH-995 (trained, (7,3,3), 45 nnz) without retraining and finds
(7,3,2) with 42 nnz, while a second search finds (6,3,2) with 38: pruning after training misses
the sparsest model. Here a trained network is pruned globally by |W| (weights only, ties by
PyTorch flat index as every pruning method here), at EVERY kept-weight count at once: a
population of copies, one per count, evaluated in one :func:`sparsejax.train.evaluate` call.
Biases follow the pruning rule (SPEC §5: hidden bias i stays iff unit i keeps an outgoing weight,
the output bias always stays), intersected with the biases the model had.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import connectivity, mlp, train
from sparsejax.pruning import topk
from sparsejax.sweep.store import unflatten_layers

Params = tuple


@dataclasses.dataclass
class AfterTraining:
    """Accuracy at every kept-weight count, and the smallest model that keeps the target."""
    weight_counts_K: np.ndarray    # kept weights of candidate k (1..n live weights)
    model_nnz_K: np.ndarray        # direct model nnz (nonzero weights + biases) of candidate k
    accuracy_K: np.ndarray
    target: float
    nnz: int | None = None         # smallest model nnz with accuracy > target (config.reaches)
    weight_nnz: int | None = None
    accuracy: float | None = None
    active_units: tuple[int, ...] | None = None   # neuron configuration (connectivity f ∧ g)
    effective_model_nnz: int | None = None
    params: Params | None = None   # the pruned network (masked), one model
    masks: Params | None = None


def as_layers(tree: Any) -> Params:
    """A network or mask as a tuple of ``{"w", "b"}`` layers: accepts that already, or the
    store's flat blob dict ``{"0/w": ..., "0/b": ..., "1/w": ...}``."""
    if isinstance(tree, Mapping):
        tree = unflatten_layers(tree)
    return tuple({"w": np.asarray(layer["w"]), "b": np.asarray(layer["b"])} for layer in tree)


def magnitude_masks_all_counts(params: Params, masks: Params | None = None,
                               counts_K: Sequence[int] | None = None) -> tuple[Params, np.ndarray]:
    """Full masks (K leading axis) keeping the `counts_K` largest-|W| live weights (default: every
    count 1..n_live), biases by the pruning rule within the original bias support."""
    params = as_layers(params)
    sup = connectivity.support(params, None if masks is None else as_layers(masks))
    scores = tuple(topk.restrict(jnp.abs(jnp.asarray(l["w"])), s["w"]) for l, s in zip(params, sup))
    rank_N = topk.descending_rank(topk.flatten_torch_order(scores))
    n_live = int(sum(int(jnp.sum(s["w"])) for s in sup))
    counts = np.arange(1, n_live + 1) if counts_K is None else np.asarray(counts_K, np.int64)
    keep_KxN = (rank_N[None, :] < jnp.asarray(counts, jnp.int32)[:, None]).astype(jnp.float32)
    shapes = [tuple(l["w"].shape) for l in params]
    wm = jax.vmap(lambda flat: topk.unflatten_torch_order(flat, shapes))(keep_KxN)
    bm = mlp.bias_masks_out_degree(list(wm))
    full = tuple({"w": w, "b": b * s["b"].astype(jnp.float32)[None]} for w, b, s in zip(wm, bm, sup))
    return full, counts


def smallest_nnz_after_training(params: Any, masks: Any, x: Any, y: Any, target: float,
                                counts_K: Sequence[int] | None = None) -> AfterTraining:
    """Magnitude-prune a trained network at every kept-weight count WITHOUT retraining; return
    the accuracies and the smallest model nnz whose accuracy is >= `target` (ties: higher
    accuracy), with its neuron configuration. `params`/`masks` are one network (or the store's
    flat blobs); `masks` may be None (support = nonzero values)."""
    params = as_layers(params)
    full_K, counts = magnitude_masks_all_counts(params, masks, counts_K)
    k = len(counts)
    params_K = jax.tree.map(lambda p, m: jnp.asarray(p, jnp.float32)[None] * m,
                            params, full_K)
    metrics = train.evaluate(params_K, x, y)
    acc_K = np.asarray(metrics["accuracy"], np.float64)
    nnz_K = np.asarray(metrics["model_nnz"], np.int64)
    result = AfterTraining(counts, nnz_K, acc_K, float(target))
    ok = np.flatnonzero(acc_K > target)
    if ok.size == 0 or k == 0:
        return result
    best = ok[np.lexsort((-acc_K[ok], nnz_K[ok]))[0]]
    one = jax.tree.map(lambda a: a[best], params_K)
    one_masks = jax.tree.map(lambda a: a[best], full_K)
    stats = connectivity.connectivity_stats(one, one_masks)
    result.nnz = int(nnz_K[best])
    result.weight_nnz = int(metrics["weight_nnz"][best])
    result.accuracy = float(acc_K[best])
    result.active_units = tuple(int(u) for u in np.asarray(stats["active_units"]))
    result.effective_model_nnz = int(stats["effective_model_nnz"])
    result.params = jax.tree.map(np.asarray, one)
    result.masks = jax.tree.map(np.asarray, one_masks)
    return result
