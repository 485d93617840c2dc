"""From run configs to trained populations and records.

A run config (see :mod:`sparsejax.sweep.identity`) says what to train; this module turns a list
of configs that share one compiled program into one population, trains it and returns one
record per run. Kinds of run:

* a pruning method from the registry (``dense``, ``random``, ``gmp``, …) at ``widths``, with a
  weight ``budget`` where the method needs one;
* ``structured``: phase 1 of the search — ``widths`` masked to the top-left blocks ``structure``;
* ``search``: phase 2 — the network ``structure`` with mask ``mask_index`` of its
  :class:`~sparsejax.search.product.MaskSpace` (subset options ``mask_space``); its init is a
  width-``widths`` init sliced to ``structure``, which trains exactly as the masked wide network.

Each run's keys derive from its id: ``fold_in(PRNGKey(0), run_seed(id))`` then ``fold_in`` with a
purpose tag (init, data order, masks, pruning), so a run's numbers never depend on its neighbours.
A run with a ``data_seed`` takes its data order from that seed instead
(``fold_in(PRNGKey(DATA_SEED_ROOT), data_seed)``, tagged the same way): every run sharing it sees
the same minibatch sequence (common random numbers across the masks of a search), and a
population of such runs gathers each minibatch once for all of them on the CPU kernel.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparsejax import config as config_lib
from sparsejax import compaction, connectivity, data, mlp, train
from sparsejax.pruning import registry
from sparsejax.search.product import MaskSpace
from sparsejax.sweep import identity, numeric_path

ROOT_SEED = 0
DATA_SEED_ROOT = 1  # a root of its own: a data_seed never reproduces some run's own order by accident
SEARCH_KINDS = config_lib.SEARCH_KINDS
TAG_INIT, TAG_DATA, TAG_MASK, TAG_PRUNE = 0, 1, 2, 3


def all_method_names() -> list[str]:
    return registry.names() + list(SEARCH_KINDS)


STRUCTURED_BUCKET = 4  # phase-1 shapes train padded up to a multiple of this (few compilations)


def trained_widths(cfg: dict, true_shape: bool = True) -> tuple[int, ...]:
    """The shape actually trained: `structure` for phase 2; for phase 1 (``structured``) the
    configuration padded per layer up to a multiple of ``STRUCTURED_BUCKET`` (capped at the
    width), unless ``true_shape`` is off (then the masked wide network, as the paper trains it —
    the same numbers up to float summation order, since the padding units are masked off);
    ``optimal_width`` slices; else ``widths``."""
    if cfg["method"] == "search":
        return tuple(int(d) for d in cfg["structure"])
    if cfg["method"] == "structured" and true_shape:
        b = STRUCTURED_BUCKET
        return tuple(min(int(w), -(-int(d) // b) * b) for d, w in zip(cfg["structure"], cfg["widths"]))
    if cfg.get("optimal_width") is not None:
        return (int(cfg["optimal_width"]),) * len(cfg["widths"])
    return tuple(int(w) for w in cfg["widths"])


def pad_width(tree_P: mlp.Params, widths: Sequence[int]) -> mlp.Params:
    """A P-batched network or mask pytree zero-padded to hidden `widths` (the inverse of
    ``mlp.slice_width`` on networks whose extra units are masked off); host NumPy arrays."""
    dims = mlp.layer_dims(widths)
    out = []
    for l, layer in enumerate(tree_P):
        w, b = np.asarray(layer["w"]), np.asarray(layer["b"])
        w_full = np.zeros(w.shape[:1] + (dims[l], dims[l + 1]), w.dtype)
        w_full[:, :w.shape[1], :w.shape[2]] = w
        b_full = np.zeros(b.shape[:1] + (dims[l + 1],), b.dtype)
        b_full[:, :b.shape[1]] = b
        out.append({"w": w_full, "b": b_full})
    return tuple(out)


def validate(config: dict) -> dict:
    """The resolved config dict (:class:`sparsejax.config.RunConfig` validates it), or ValueError
    with one line naming the field and what is allowed."""
    return config_lib.resolve(config)


load_init = config_lib.load_init
file_sha256 = config_lib.file_sha256


def mask_space(cfg: dict) -> MaskSpace:
    opts = cfg.get("mask_space") or {}
    return config_lib._mask_space(tuple(int(d) for d in cfg["structure"]), opts.get("max_weight_sum"),
                                  opts.get("first_k_w2"))


def program_key(cfg: dict) -> tuple:
    """Runs with equal keys share one compiled program and may share a population."""
    return (cfg["method"], trained_widths(cfg), int(cfg["epochs"]), int(cfg["batch_size"]),
            float(cfg["momentum"]), float(cfg["weight_decay"]), cfg["dataset"],
            tuple(cfg.get("milestones") or config_lib.DEFAULT_MILESTONES),
            float(cfg.get("lr_gamma", config_lib.DEFAULT_LR_GAMMA)),
            identity.canonical_value(cfg.get("method_params")))


def run_keys(run_ids: Sequence[str]) -> jax.Array:
    """(P, 2) raw key data, one per run: fold_in(PRNGKey(0), run_seed(id))."""
    return train.model_keys(jax.random.PRNGKey(ROOT_SEED), [identity.run_seed(r) for r in run_ids])


def data_keys(cfgs: Sequence[dict], keys_P: jax.Array) -> jax.Array:
    """(P, 2) raw data-order keys: the run's own (tagged from its id), or its ``data_seed``'s."""
    own = _tagged(keys_P, TAG_DATA)
    seeds = [c.get("data_seed") for c in cfgs]
    if all(s is None for s in seeds):
        return own
    shared = _tagged(train.model_keys(jax.random.PRNGKey(DATA_SEED_ROOT), [0 if s is None else int(s) for s in seeds]),
                     TAG_DATA)
    return jnp.where(jnp.asarray([s is not None for s in seeds])[:, None], shared, own)


def _tagged(keys_P: jax.Array, tag: int) -> jax.Array:
    return jax.vmap(lambda k: jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(k), tag)))(keys_P)


def initial_params(cfgs: list[dict], keys_P: jax.Array, scheme: str,
                   shape: tuple[int, ...] | None = None) -> mlp.Params:
    """Per-run initial parameters at the trained `shape` (default ``trained_widths``): drawn at
    the configured widths (or read from the init file), then sliced, so a unit's initial values
    never depend on the trained shape."""
    widths, shape = tuple(cfgs[0]["widths"]), shape or trained_widths(cfgs[0])
    init_keys = jax.vmap(jax.random.wrap_key_data)(_tagged(keys_P, TAG_INIT))
    rand = mlp.slice_width(mlp.init_population(init_keys, widths, scheme), shape)
    if all(c["init"] == "random" for c in cfgs):
        return rand
    from_file = [c["init"] != "random" for c in cfgs]
    files = [mlp.slice_width(load_init(c["init"]), shape) if f else None for c, f in zip(cfgs, from_file)]
    take = jnp.asarray(from_file)

    def pick(i, leaf_rand):
        fixed = jnp.stack([jax.tree.leaves(f)[i] if f is not None else jnp.zeros(leaf_rand.shape[1:]) for f in files])
        return jnp.where(take.reshape((-1,) + (1,) * (leaf_rand.ndim - 1)), fixed, leaf_rand)
    leaves, tree = jax.tree.flatten(rand)
    return jax.tree.unflatten(tree, [pick(i, l) for i, l in enumerate(leaves)])


def explicit_weight_masks(cfg: dict) -> list[np.ndarray]:
    """The config's own weight masks (``mask``: one 0/1 matrix per layer in PyTorch (out, in)
    layout, as ``identity.encode_mask`` strings or arrays), in our (in, out) layout; ValueError
    naming ``mask`` when they do not fit the trained widths or the method is not ``dense``."""
    if cfg["method"] != "dense":
        raise ValueError(f"mask: an explicit mask trains with method 'dense' (it replaces the dense mask), "
                         f"not {cfg['method']!r}")
    layers = cfg["mask"]
    shapes = mlp.layer_shapes(trained_widths(cfg))
    if not isinstance(layers, (list, tuple)) or len(layers) != len(shapes):
        raise ValueError(f"mask: need {len(shapes)} per-layer masks, got {type(layers).__name__}")
    out = []
    for l, (m, (fan_in, fan_out)) in enumerate(zip(layers, shapes)):
        arr = identity.decode_mask(m) if isinstance(m, str) else np.asarray(m)
        if arr.shape != (fan_out, fan_in) or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"mask: layer {l} has shape {arr.shape}, expected a 0/1 matrix of shape "
                             f"{(fan_out, fan_in)} (out, in)")
        out.append(arr.T.astype(np.float32))
    return out


def config_masks(cfgs: list[dict], shape: tuple[int, ...] | None = None) -> mlp.Params | None:
    """Masks fixed by the config (phase 1 and 2, explicit masks), stacked over runs; None for
    pruning methods."""
    kind = cfgs[0]["method"]
    if any(c.get("mask") is not None for c in cfgs):
        dense = [[np.ones((i, o), np.float32) for i, o in mlp.layer_shapes(trained_widths(c))] for c in cfgs]
        ws = [explicit_weight_masks(c) if c.get("mask") is not None else d for c, d in zip(cfgs, dense)]
        return mlp.masks_from_weights([jnp.asarray(np.stack(layer)) for layer in zip(*ws)], "out_degree")
    if kind == "structured":
        ms = [mlp.structured_masks(shape or trained_widths(c), c["structure"]) for c in cfgs]
    elif kind == "search":
        space = mask_space(cfgs[0])
        m1, m2, m3 = space.index_to_masks(np.asarray([int(c["mask_index"]) for c in cfgs]))
        ws = [np.swapaxes(m, 1, 2).astype(np.float32) for m in (m1, m2, m3)]
        ws.append(np.ones((len(cfgs), ws[-1].shape[2], 1), np.float32))
        return mlp.masks_from_weights([jnp.asarray(w) for w in ws], "in_degree")
    else:
        return None
    return jax.tree.map(lambda *a: jnp.stack(a), *ms)


@dataclasses.dataclass
class PopulationState:
    """A population of runs (one program key) part-way through its protocol: trained for
    ``epoch`` of its ``tcfg.epochs`` epochs. ``seconds`` counts the time spent on it in earlier
    processes (a state restored from a store); ``t_mark`` is when this process took it over."""
    configs: list[dict]
    ids: list[str]
    shape: tuple[int, ...]
    tcfg: train.TrainConfig
    pop: train.Population
    epoch: int = 0
    seconds: float = 0.0
    t_mark: float = dataclasses.field(default_factory=time.perf_counter)
    trained_shapes: list[tuple[int, ...]] | None = None  # per run, when compaction split them

    @property
    def kind(self) -> str:
        return self.configs[0]["method"]


def _method(kind: str, method_params: dict | None = None) -> registry.Method:
    """The registry method training runs of `kind` (the search kinds train densely, their
    masks fixed), configured with the runs' ``method_params``."""
    return registry.get("dense") if kind in SEARCH_KINDS else registry.instance(kind, method_params)


def prepare_population(configs: list[dict], chunk_steps: int = 390,
                       place: Callable[[train.Population], train.Population] | None = None,
                       true_shape: bool = True) -> PopulationState:
    """The runs of `configs` (one program key) as one population ready to train (epoch 0):
    init, masks (pruning at init included), keys. See :func:`run_population`."""
    cfgs = [validate(c) for c in configs]
    keys = {program_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ValueError(f"run_population needs runs of one program, got {len(keys)}: {sorted(map(str, keys))[:3]}")
    ids = [identity.run_id(c) for c in cfgs]
    c0, shape = cfgs[0], trained_widths(cfgs[0], true_shape)
    x_all, y_all = data.load(c0["dataset"])
    tcfg = train.TrainConfig(widths=shape, epochs=int(c0["epochs"]), batch_size=int(c0["batch_size"]),
                             momentum=float(c0["momentum"]), weight_decay=float(c0["weight_decay"]),
                             milestones=tuple(c0["milestones"]), lr_gamma=float(c0["lr_gamma"]),
                             chunk_steps=chunk_steps)
    method = _method(c0["method"], c0.get("method_params"))
    keys_P = run_keys(ids)
    lr = jnp.asarray([float(c["lr"]) for c in cfgs], jnp.float32)
    params = initial_params(cfgs, keys_P, method.init_scheme, shape)
    t0 = time.perf_counter()
    masks = config_masks(cfgs, shape)
    budget = jnp.asarray([int(c["budget"] or 0) for c in cfgs], jnp.int32)
    if masks is None:
        wm = method.prune_at_init(params, budget, _tagged(keys_P, TAG_PRUNE), lr, jnp.asarray(x_all),
                                  jnp.asarray(y_all), shape)
        masks = mlp.masks_from_weights(wm, "out_degree") if wm is not None else jax.tree.map(jnp.ones_like, params)
    pop = train.make_population(params, masks, lr, [c["schedule"] for c in cfgs], data_keys(cfgs, keys_P),
                                hook_state=method.initial_hook_state(budget, _tagged(keys_P, TAG_MASK), shape))
    pop = train.with_loss_sums(pop, tcfg.epochs)  # allocated here so saved states carry them
    pop = place(pop) if place is not None else pop
    return PopulationState(cfgs, ids, shape, tcfg, pop, epoch=0, t_mark=t0)


def resumable(kind: str) -> bool:
    """Whether runs of `kind` can stop at an epoch and continue (:func:`advance_population`):
    those trained by the plain protocol (``Method.fit``: prepare once, then one pass of
    ``train.train`` with the method's hook); LTH's rounds and other own ``fit``s cannot."""
    return type(_method(kind)).fit is registry.Method.fit


def advance_population(state: PopulationState, stop_epoch: int,
                       progress: Callable[[int, int, float], None] | None = None,
                       observe: Callable[[train.Population], None] | None = None) -> PopulationState:
    """`state` trained on to epoch `stop_epoch` (the schedules stay those of the full run), so
    a run advanced 0 → e → E is bit-identical to one trained straight to E (same kernel)."""
    method = _method(state.kind, state.configs[0].get("method_params"))
    if not resumable(state.kind):
        raise ValueError(f"method {state.kind!r} cannot be trained in prefixes (it has its own fit)")
    if not state.epoch <= int(stop_epoch) <= state.tcfg.epochs:
        raise ValueError(f"stop_epoch: must be in [{state.epoch}, {state.tcfg.epochs}], got {stop_epoch}")
    x_all, y_all = data.load(state.configs[0]["dataset"])
    spe = state.tcfg.steps_per_epoch(len(x_all))
    pop = state.pop
    if state.epoch == 0:
        pop = method.prepare(pop, state.tcfg, len(x_all))
    pop = train.train(pop, x_all, y_all, state.tcfg, hook=method.hook(state.tcfg, len(x_all)),
                      progress=progress, observe=observe, start_step=state.epoch * spe,
                      stop_step=int(stop_epoch) * spe)
    return dataclasses.replace(state, pop=pop, epoch=int(stop_epoch))


def population_leaves(state: PopulationState) -> list[np.ndarray]:
    """The population's state as host arrays with a leading run axis (``jax.tree.leaves`` order
    of the Population: params, masks, momentum, lr, schedule, key, diverged, hook state, loss
    sums)."""
    return [np.asarray(leaf) for leaf in jax.tree.leaves(state.pop)]


def restore_population(configs: list[dict], leaves: Sequence[np.ndarray], epoch: int, seconds: float = 0.0,
                       chunk_steps: int = 390,
                       place: Callable[[train.Population], train.Population] | None = None,
                       true_shape: bool = True) -> PopulationState:
    """A population saved by :func:`population_leaves` after `epoch` epochs, ready to advance;
    ValueError when the arrays do not fit the runs' population (shape or dtype). A state saved
    before populations kept loss sums (one array short: they are the last leaf) resumes with
    NaN sums for its first `epoch` epochs (unknown), so its loss curve starts there."""
    state = prepare_population(configs, chunk_steps, None, true_shape)
    ref, treedef = jax.tree.flatten(state.pop)
    if len(leaves) == len(ref) - 1:
        sums = np.zeros(ref[-1].shape, np.float32)
        sums[:, :int(epoch)] = np.nan
        leaves = [*leaves, sums]
    if len(ref) != len(leaves):
        raise ValueError(f"saved state has {len(leaves)} arrays, the population needs {len(ref)}")
    out = []
    for i, (a, r) in enumerate(zip(leaves, ref)):
        a = np.asarray(a)
        if a.shape != r.shape or a.dtype != r.dtype:
            raise ValueError(f"saved state array {i}: {a.dtype}{list(a.shape)}, expected {r.dtype}{list(r.shape)}")
        out.append(jnp.asarray(a))
    pop = jax.tree.unflatten(treedef, out)
    pop = place(pop) if place is not None else pop
    return dataclasses.replace(state, pop=pop, epoch=int(epoch), seconds=float(seconds), t_mark=time.perf_counter())


def finish_population(state: PopulationState) -> list[dict]:
    """One record per run of a population trained to its last epoch (:func:`run_population`)."""
    if state.epoch != state.tcfg.epochs:
        raise ValueError(f"population trained {state.epoch} of {state.tcfg.epochs} epochs; finish it first")
    cfgs, ids, shape, pop, c0, kind = state.configs, state.ids, state.shape, state.pop, state.configs[0], state.kind
    x_all, y_all = data.load(c0["dataset"])
    metrics = train.evaluate(pop.params, x_all, y_all)
    seconds = state.seconds + time.perf_counter() - state.t_mark
    records = []
    host_params = jax.tree.map(np.asarray, pop.params)
    host_masks = jax.tree.map(lambda m: np.asarray(m) > 0, pop.masks)
    if kind == "structured" and shape != tuple(c0["widths"]):  # records keep the configured width
        host_params, host_masks = pad_width(host_params, c0["widths"]), pad_width(host_masks, c0["widths"])
    conn = connectivity.stats_records(connectivity.connectivity_stats_population(
        jax.tree.map(jnp.asarray, host_params), jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), host_masks)))
    diverged = np.asarray(pop.diverged)
    curves = train.loss_curves(pop, state.tcfg.steps_per_epoch(len(x_all)))  # (P, epochs; LTH: rounds · epochs)
    shapes = state.trained_shapes or [tuple(shape)] * len(cfgs)
    for i, (rid, c) in enumerate(zip(ids, cfgs)):
        records.append({
            "run_id": rid, "config": identity.resolve(c), "status": "done",
            "accuracy": float(metrics["accuracy"][i]), "loss": float(metrics["loss"][i]),
            "weight_nnz": int(metrics["weight_nnz"][i]), "model_nnz": int(metrics["model_nnz"][i]),
            "diverged": bool(diverged[i]), "train_seconds": seconds / len(cfgs),
            "mask_weight_count": int(sum(np.sum(m["w"][i]) for m in host_masks)),
            "bias_rule": {"search": "in_degree", "structured": "blocks"}.get(kind, "out_degree"),
            "trained_widths": list(shapes[i]),
            "numeric_path": numeric_path.record_path(
                shapes[i], state.tcfg.kernel,
                compaction="x".join(map(str, shapes[i])) if state.trained_shapes is not None else "off"),
            "connectivity": conn[i],
            "loss_curve": curves[i],
            "masks": jax.tree.map(lambda a: a[i], host_masks),
            "params": jax.tree.map(lambda a: a[i], host_params),
        })
    return records


def run_population(configs: list[dict], chunk_steps: int = 390,
                   progress: Callable[[int, int, float], None] | None = None,
                   place: Callable[[train.Population], train.Population] | None = None,
                   observe: Callable[[train.Population], None] | None = None,
                   true_shape: bool = True, compact: bool = True) -> list[dict]:
    """Train the runs of `configs` (one program key) as one population; one record per run.
    Pruning-at-init runs train at their compacted widths unless `compact` is off (the same
    numbers up to float summation order; recorded in each record's numeric path).
    `place` puts the population on devices (the sweep runner shards it across accelerators);
    `observe(pop)` sees the population after every chunk. Phase-1 runs train at their true
    (bucketed) shape unless `true_shape` is off; records always hold full-width masks/params.
    (:func:`prepare_population` → the method's ``fit`` → :func:`finish_population`; successive
    halving trains the same in prefixes with :func:`advance_population`.)"""
    state = prepare_population(configs, chunk_steps, None, true_shape)
    compacted = compact and compactable(state)
    x_all, y_all = data.load(state.configs[0]["dataset"])
    if compacted:  # the masks are fixed from here on: train each shape group at its compacted widths
        pop, shapes = compaction.train_compacted(state.pop, x_all, y_all, state.tcfg, progress=progress,
                                                 observe=observe, place=place)
        state = dataclasses.replace(state, trained_shapes=[tuple(int(d) for d in sh) for sh in shapes])
    else:
        pop = state.pop if place is None else place(state.pop)
        pop = _method(state.kind, state.configs[0].get("method_params")).fit(pop, x_all, y_all, state.tcfg, progress=progress, observe=observe)
    return finish_population(dataclasses.replace(state, pop=pop, epoch=state.tcfg.epochs))


COMPACT_MIN_WIDTH = 32


@functools.lru_cache(maxsize=256)
def _compacts(kind: str, method_params: str, shape: tuple[int, ...], epochs: int, batch_size: int,
              dataset: str) -> bool:
    if kind in SEARCH_KINDS or max(shape) < COMPACT_MIN_WIDTH:
        return False
    method = _method(kind, json.loads(method_params))
    tcfg = train.TrainConfig(widths=shape, epochs=epochs, batch_size=batch_size)
    return bool(method.needs_budget and compaction.eligible(method, tcfg, data.load(dataset)[0].shape[0]))


def compacts(cfg: dict) -> bool:
    """Whether the run of resolved config `cfg` trains compacted (:mod:`sparsejax.compaction`):
    pruning-at-init runs (their masks are fixed before training and the method trains in one
    plain pass, no hook); exact up to float summation order. Only from width
    ``COMPACT_MIN_WIDTH`` on: below it the saving is small and each compacted shape group is one
    more compilation. Cached: planners ask it for every run."""
    return _compacts(cfg["method"], identity.canonical_value(cfg.get("method_params")), trained_widths(cfg),
                     int(cfg.get("epochs", 50)), int(cfg.get("batch_size", 128)),
                     str(cfg.get("dataset", "cubist_spiral")))


def compactable(state: PopulationState) -> bool:
    """Whether a population's runs train at compacted widths: :func:`compacts` of its configs
    (a population shares method, shape, epochs, batch size and dataset)."""
    return compacts(state.configs[0])
