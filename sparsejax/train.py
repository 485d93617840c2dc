"""The population trainer: P masked MLPs trained by one jitted program (SPEC §3).

Structure (depth, widths, epochs, batch size, optimiser constants, the mask hook) is static and
closed over; everything that varies per model — parameters, masks, momentum buffers, learning
rate, schedule, data-order key, hook state — is a batched array with a leading axis P. The step
counter is shared and unbatched, so schedule predicates stay real branches (``lax.cond``).

A run is a sequence of jitted chunks (``lax.scan`` over ``chunk_steps`` steps) so progress can be
reported between chunks; a chunk's compiled program is cached on its static structure and shapes,
so a second run with the same shapes never compiles again.
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import time
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from sparsejax import mlp, shuffle
from sparsejax.kernels import cpu as cpu_kernel
from sparsejax.kernels import xla_lanes

Array = jax.Array
Params = mlp.Params

SCHEDULES = ("constant", "cosine", "step")
KERNELS = ("auto", "xla", "fused", "xla_lanes")  # xla_lanes: sparsejax/kernels/xla_lanes.py


def schedule_ids(names: Sequence[str]) -> np.ndarray:
    """Schedule names → int32 codes (index into SCHEDULES); ValueError naming the allowed ones."""
    out = []
    for name in names:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
        out.append(SCHEDULES.index(name))
    return np.asarray(out, np.int32)


def lr_factor(schedule: Array, epoch: Array, total_epochs: int,
              milestones: tuple[int, ...] = (15, 30), gamma: float = 0.1) -> Array:
    """Multiplier of the base learning rate at 0-based `epoch` (stepped once per epoch, as the
    reference). constant: 1; cosine: (1 + cos(π e / T)) / 2 with T = total_epochs, eta_min 0;
    step: γ^(number of milestones ≤ e). `schedule` may be batched, `epoch` is shared."""
    e = jnp.asarray(epoch, jnp.float32)
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * e / total_epochs))
    step = jnp.float32(gamma) ** sum((epoch >= m).astype(jnp.float32) for m in milestones)
    return jnp.where(schedule == 1, cosine, jnp.where(schedule == 2, step, 1.0)).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static structure of a training run (hashable: it keys the compilation cache)."""
    widths: tuple[int, ...] = mlp.DEFAULT_WIDTHS
    epochs: int = 50
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (15, 30)
    lr_gamma: float = 0.1
    chunk_steps: int = 390
    kernel: str = "auto"  # "xla", "fused" (the C++ CPU step) or "auto" (fused on CPU when built)

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel: unknown {self.kernel!r}; allowed: {', '.join(KERNELS)}")
        object.__setattr__(self, "widths", mlp.check_widths(self.widths))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        for name in ("epochs", "batch_size", "chunk_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def steps_per_epoch(self, n_examples: int) -> int:
        """Full minibatches per epoch (drop_last): 49,982 // 128 = 390."""
        spe = n_examples // self.batch_size
        if spe < 1:
            raise ValueError(f"batch_size {self.batch_size} exceeds the {n_examples} examples")
        return spe


class Population(NamedTuple):
    """Per-model state; every leaf has a leading axis P. ``loss_sums`` (P, E) float32: for each
    of the run's E epochs, the sum of that epoch's minibatch training losses (each step's
    ``mlp.loss`` before its update; :func:`loss_curves` divides by the steps per epoch); ``()``
    until :func:`with_loss_sums` or :func:`train` allocates it."""
    params: Params
    masks: Params
    momentum: Params
    lr: Array          # (P,) float32 base learning rate
    schedule: Array    # (P,) int32 index into SCHEDULES
    key: Array         # (P, 2) uint32 raw key data: fold_in(root, model_id)
    diverged: Array    # (P,) bool, sticky
    hook_state: Any = ()
    loss_sums: Any = ()


def with_loss_sums(pop: Population, epochs: int) -> Population:
    """`pop` with zero per-epoch loss sums (P, epochs), placed like its learning rates (sharded
    along P when they are)."""
    zeros = jnp.zeros((pop.lr.shape[0], int(epochs)), jnp.float32)
    return pop._replace(loss_sums=jax.device_put(zeros, pop.lr.sharding) if isinstance(pop.lr, jax.Array) else zeros)


def loss_curves(pop: Population, steps_per_epoch: int) -> np.ndarray:
    """(P, E) float32: each model's mean minibatch training loss of every epoch."""
    return np.asarray(pop.loss_sums, np.float32) / np.float32(steps_per_epoch)


@dataclasses.dataclass(frozen=True)
class MaskHook(abc.ABC):
    """A change of masks during training (GMP, RigL plug in here).

    ``is_event(step) -> bool`` is evaluated on the shared, unbatched 0-based step counter, so
    the event is a real ``lax.cond`` branch. ``update(pop, step, x, y) -> pop`` acts on the
    whole population (vmap inside as needed) at the start of an event step, after `step` SGD
    steps and before this step's gradient; (x, y) is this step's minibatch (P, B, 2), (P, B).
    With ``skip_optimizer`` the SGD step of an event step is skipped (RigL). Per-model numbers
    (count tables) live in ``pop.hook_state``.

    Subclass as a frozen dataclass whose fields are static hashable values (ints, floats,
    tuples): a hook keys the compilation cache, so equal hooks must compare equal and hash
    alike. A frozen dataclass does; ``functools.partial`` objects and bound methods compare by
    identity and would re-trace every population.
    """
    skip_optimizer: ClassVar[bool] = False

    @abc.abstractmethod
    def is_event(self, step: Array) -> Array:
        """Whether a mask event happens at the start of 0-based `step` (traced int32 scalar)."""

    @abc.abstractmethod
    def update(self, pop: Population, step: Array, x: Array, y: Array) -> Population:
        """The population after the event at `step`, given that step's minibatch."""


def model_keys(root: Array | int, model_ids: Array | Sequence[int]) -> Array:
    """Raw per-model key data (P, 2): ``fold_in(root, model_id)``, independent of batching."""
    root = jax.random.PRNGKey(root) if isinstance(root, (int, np.integer)) else root
    ids = jnp.asarray(model_ids, jnp.uint32)
    return jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(root, i)))(ids)


def make_population(params: Params, masks: Params | None, lr, schedule, keys: Array,
                    hook_state: Any = ()) -> Population:
    """A population ready to train: masks applied, momentum zero, nobody diverged.
    `lr` and `schedule` may be scalars (broadcast) or (P,) arrays; schedule may be names."""
    p = int(jax.tree.leaves(params)[0].shape[0])
    if masks is None:
        masks = jax.tree.map(jnp.ones_like, params)
    for lp, lm in zip(jax.tree.leaves(params), jax.tree.leaves(masks)):
        if lp.shape != lm.shape:
            raise ValueError(f"mask shape {lm.shape} does not match parameter shape {lp.shape}")
    if isinstance(schedule, str) or (isinstance(schedule, (list, tuple)) and schedule and isinstance(schedule[0], str)):
        schedule = schedule_ids([schedule] if isinstance(schedule, str) else schedule)
    lr = jnp.broadcast_to(jnp.asarray(lr, jnp.float32), (p,))
    if bool(jnp.any(lr <= 0)):
        raise ValueError("lr must be > 0")
    schedule = jnp.broadcast_to(jnp.asarray(schedule, jnp.int32), (p,))
    masks = jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), masks)
    params = mlp.apply_masks(params, masks)
    return Population(params=params, masks=masks, momentum=jax.tree.map(jnp.zeros_like, params),
                      lr=lr, schedule=schedule, key=jnp.asarray(keys, jnp.uint32),
                      diverged=jnp.zeros((p,), bool), hook_state=hook_state)


def _all_finite(tree) -> Array:
    return functools.reduce(jnp.logical_and,
                            [jnp.all(jnp.isfinite(l), axis=tuple(range(1, l.ndim))) for l in jax.tree.leaves(tree)])


def _mask_updates(masks: Params) -> optax.GradientTransformation:
    """optax transformation: updates multiplied by the 0/1 masks (masked coordinates get none)."""
    return optax.stateless(lambda updates, params: jax.tree.map(lambda u, m: u * m, updates, masks))


def torch_trace(momentum_coef: float) -> optax.GradientTransformation:
    """PyTorch's momentum buffer as an optax transformation: buf ← μ·buf + d (no dampening), from
    buf = 0 (``optax.TraceState``), so the first buffer is the first update, as torch.optim.SGD.
    The values are ``optax.trace``'s; the operand order is PyTorch's (μ·buf + d, not optax's
    d + μ·buf): under jit XLA contracts a multiply-add into an FMA, and which product it
    contracts follows the order, so only this order is bit-identical to the hand-written step
    in every program the step is fused into (seen: GMP's hook)."""
    def init(params):
        return optax.TraceState(trace=jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        buf = jax.tree.map(lambda b, d: momentum_coef * b + d, state.trace, updates)
        return buf, optax.TraceState(trace=buf)

    return optax.GradientTransformation(init, update)


def sgd_chain(lr: Array, masks: Params | None, momentum_coef: float, weight_decay: float) -> optax.GradientTransformation:
    """One model's masked PyTorch SGD as an optax chain of four links: weight decay added to the
    gradient (``optax.add_decayed_weights``: g + λ·p, as torch.optim.SGD), the mask (·m), the
    momentum buffer (:func:`torch_trace`), the learning rate (``optax.scale(lr)``: lr·buf). The
    result is the step to SUBTRACT (p − lr·buf, PyTorch's form); the caller re-masks.
    `lr` may be a traced per-model scalar (the chain is built inside the vmapped update).
    ``masks=None``: no mask link (a dense network, e.g. ProsPr's inner steps); the chain's
    trace state is then ``state[1]``, else ``state[2]``."""
    mask = () if masks is None else (_mask_updates(masks),)
    return optax.chain(optax.add_decayed_weights(weight_decay), *mask, torch_trace(momentum_coef), optax.scale(lr))


def sgd_update(params: Params, masks: Params, momentum: Params, grads: Params, lr: Array,
               momentum_coef: float, weight_decay: float) -> tuple[Params, Params]:
    """One model's PyTorch SGD step (momentum, no dampening, weight decay on weights and biases)
    restricted to unmasked coordinates, via :func:`sgd_chain`: buf ← μ·buf + (g + λ·p)·m;
    p ← (p − lr·buf)·m — the same operations in the same order as writing them out, so
    bit-identical to it under jit too. The momentum buffer is the chain's trace state."""
    chain = sgd_chain(lr, masks, momentum_coef, weight_decay)
    empty = chain.init(())  # the stateless links' states (no arrays)
    state = (empty[0], empty[1], optax.TraceState(trace=momentum), empty[3])
    step, state = chain.update(grads, state, params)
    params = jax.tree.map(lambda p, u, m: (p - u) * m, params, step, masks)
    return params, state[2].trace


def population_batch(pop: Population, x_all: Array, y_all: Array, step: Array, cfg: TrainConfig,
                     epoch_offset: Array) -> tuple[Array, Array]:
    """Each model's minibatch at `step`: x (P, B, 2), y (P, B)."""
    n = x_all.shape[0]
    spe = cfg.steps_per_epoch(n)
    idx = jax.vmap(lambda k: shuffle.batch_indices(k, step, n, cfg.batch_size, spe, epoch_offset))(pop.key)
    return x_all[idx], y_all[idx]


# Models per program of the XLA step. XLA picks a batched dot's loop order and vectorisation from
# its shapes, the population size included, so a vmap over the whole population sums a model's
# gradient in an order that depends on how many models share it (measured on the CPU: width 128
# trained 390 steps in a population of 40 ends at 96.881 %, alone at 96.895 %; width 16 differs
# between 1 and 2 models, width 12 between 2 and 3). Groups of a fixed size, the last zero-padded,
# give every model the same program whatever the population (tested bit for bit). The CPU size
# matches train.evaluate's model chunks. Other backends keep one vmap over the whole population:
# there the population is sharded over the devices, which a loop over groups would serialise;
# whether their numbers depend on the population size is not measured yet (no accelerator lent).
XLA_MODEL_GROUP = {"cpu": 16}


def vmap_models(fn: Callable, *args, group: int | None = None):
    """``jax.vmap(fn)(*args)`` over the population axis of every leaf, in fixed groups of
    `group` models (a lax.map over groups; default: this backend's ``XLA_MODEL_GROUP``, none
    off the CPU), so each model's numbers never depend on the population size. Padded models
    see zeros and are dropped."""
    group = group or XLA_MODEL_GROUP.get(jax.default_backend())
    if group is None:
        return jax.vmap(fn)(*args)
    p = jax.tree.leaves(args)[0].shape[0]
    pad = (-p) % group
    grouped = jax.tree.map(lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(
        (-1, group) + a.shape[1:]), args)
    out = jax.lax.map(lambda g: jax.vmap(fn)(*g), grouped)
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:])[:p], out)


FUSED_MAX_WIDTH = 64  # measured crossover (benchmarks/RESULTS.md): XLA's dots win at width 256


def resolve_kernel(kernel: str, widths: Sequence[int] = mlp.DEFAULT_WIDTHS) -> str:
    """"xla", "fused" or "xla_lanes": "auto" picks the fused C++ step on the CPU backend for widths up to
    FUSED_MAX_WIDTH when it could be built (logging why not, once, when it could not); "fused"
    insists on it. "xla_lanes" (the models-last XLA step) only when asked for by name."""
    if kernel == "xla_lanes":  # explicit only: "auto" does not pick it (not measured on a GPU yet)
        return kernel
    if kernel == "xla" or (kernel == "auto" and max(widths) > FUSED_MAX_WIDTH):
        return "xla"
    on_cpu = jax.default_backend() == "cpu"
    if kernel == "fused":
        if not on_cpu or not cpu_kernel.available():
            raise RuntimeError(f"kernel 'fused' is unavailable: {cpu_kernel.why_unavailable() or 'not on the CPU'}")
        return kernel
    if on_cpu and not cpu_kernel.available() and not _WARNED:
        _WARNED.append(True)
        logging.warning("using the XLA training step: %s", cpu_kernel.why_unavailable())
    return "fused" if on_cpu and cpu_kernel.available() else "xla"


_WARNED: list = []


def _train_step(cfg: TrainConfig, hook: MaskHook | None, kernel: str, data, pop: Population,
                step: Array) -> Population:
    x_all, y_all, rows_all, epoch_offset = data
    spe = cfg.steps_per_epoch(x_all.shape[0])
    batch = lambda p: population_batch(p, x_all, y_all, step, cfg, epoch_offset)  # noqa: E731
    if hook is not None:
        pop = jax.lax.cond(hook.is_event(step), lambda p: hook.update(p, step, *batch(p)), lambda p: p, pop)

    def sgd(pop: Population) -> tuple[Population, Array]:
        lr = pop.lr * lr_factor(pop.schedule, step // spe, cfg.epochs, cfg.milestones, cfg.lr_gamma)
        if kernel in ("fused", "fused_models"):  # one kernel step: it draws each model's minibatch itself
            keys = jax.vmap(lambda k: shuffle.epoch_round_keys(k, step // spe + epoch_offset))(pop.key)
            params, mom, loss = cpu_kernel.train_steps(
                pop.params, pop.masks, pop.momentum, rows_all, keys[None], lr[None], jnp.zeros((lr.shape[0], 1)),
                step, 0, 1, spe, cfg.batch_size, cfg.momentum, cfg.weight_decay, layout=_fused_layout(kernel))
            loss = loss[:, 0]
        elif kernel == "xla_lanes":  # models-last layout; draws the minibatch in (B, P) layout
            epoch = step // spe + epoch_offset
            keys = jax.vmap(lambda k: shuffle.epoch_round_keys(k, epoch))(pop.key)
            params, mom, loss = xla_lanes.sgd_step(pop.params, pop.masks, pop.momentum, x_all, y_all, keys,
                                                   step % spe, lr, cfg.batch_size, cfg.momentum, cfg.weight_decay)
        else:
            x, y = batch(pop)
            loss, grads = vmap_models(jax.value_and_grad(mlp.loss), pop.params, x, y)
            params, mom = jax.vmap(functools.partial(sgd_update, momentum_coef=cfg.momentum,
                                                     weight_decay=cfg.weight_decay))(
                pop.params, pop.masks, pop.momentum, grads, lr)
        return pop._replace(params=params, momentum=mom), loss

    def no_sgd(pop: Population) -> tuple[Population, Array]:  # the step's loss all the same
        return pop, vmap_models(mlp.loss, pop.params, *batch(pop))

    if hook is not None and hook.skip_optimizer:
        pop, loss = jax.lax.cond(hook.is_event(step), no_sgd, sgd, pop)
    else:
        pop, loss = sgd(pop)
    pop = pop._replace(diverged=pop.diverged | ~_all_finite(pop.params))
    if isinstance(pop.loss_sums, tuple):  # not allocated (a chunk program called directly): no curve
        return pop
    return pop._replace(loss_sums=pop.loss_sums.at[:, step // spe].add(loss))


def _step_by_step(cfg: TrainConfig, hook: MaskHook | None, kernel: str, data, pop: Population, steps: Array) -> Population:
    """:func:`_train_step` at each of `steps` in turn (an XLA scan)."""
    return jax.lax.scan(lambda p, s: (_train_step(cfg, hook, kernel, data, p, s), None), pop, steps)[0]


def _fused_layout(kernel: str) -> str:
    return "models" if kernel == "fused_models" else "auto"  # "fused_models": internal, benchmarks only


def _fused_steps(cfg: TrainConfig, kernel: str, data, pop: Population, start: Array, n_steps: int) -> Population:
    """`n_steps` steps of a population without a mask hook in one fused-kernel call: the same
    numbers as `n_steps` calls of :func:`_train_step` (bit for bit: the same per-step
    arithmetic, learning rates and keys per epoch, each step's loss added to its epoch's sum in
    step order). ``diverged`` is checked once at the end: without a hook a non-finite parameter
    stays non-finite (p - lr·buf and the mask's product keep an inf or NaN non-finite), so
    this equals checking after every step."""
    x_all, y_all, rows_all, epoch_offset = data
    spe = cfg.steps_per_epoch(x_all.shape[0])
    n_epochs = (n_steps - 1) // spe + 2  # the most epochs n_steps consecutive steps can touch
    e0 = start // spe
    # per epoch exactly the per-step path's expressions (a scalar epoch each)
    lr = jnp.stack([pop.lr * lr_factor(pop.schedule, e0 + i, cfg.epochs, cfg.milestones, cfg.lr_gamma)
                    for i in range(n_epochs)])
    keys = jnp.stack([jax.vmap(lambda k, e=e0 + i + epoch_offset: shuffle.epoch_round_keys(k, e))(pop.key)
                      for i in range(n_epochs)])
    curve = not isinstance(pop.loss_sums, tuple)
    sums, col0 = (pop.loss_sums, e0) if curve else (jnp.zeros((lr.shape[1], n_epochs), jnp.float32), 0)
    params, mom, sums = cpu_kernel.train_steps(pop.params, pop.masks, pop.momentum, rows_all, keys, lr, sums, start,
                                               col0, n_steps, spe, cfg.batch_size, cfg.momentum, cfg.weight_decay,
                                               layout=_fused_layout(kernel))
    pop = pop._replace(params=params, momentum=mom, diverged=pop.diverged | ~_all_finite(params))
    return pop._replace(loss_sums=sums) if curve else pop


# Steps per segment of a hooked chunk on the fused kernel (at most): a segment without a mask
# event is one kernel call, one with an event runs step by step (the hook's update between steps).
HOOK_SEGMENT = 16


def _segment_length(n_steps: int) -> int:
    """The largest divisor of `n_steps` in [HOOK_SEGMENT / 2, HOOK_SEGMENT] (15 for the usual
    390-step chunks), else HOOK_SEGMENT: a chunk cut into equal segments compiles one segment
    program instead of two (measured: a remainder segment made a hooked chunk compile 25-45 %
    longer). The length never changes the numbers."""
    return next((k for k in range(HOOK_SEGMENT, HOOK_SEGMENT // 2 - 1, -1) if n_steps % k == 0), HOOK_SEGMENT)


def _fused_hooked_steps(cfg: TrainConfig, hook: MaskHook, kernel: str, data, pop: Population, start: Array,
                        n_steps: int) -> Population:
    """`n_steps` steps with a mask hook on the fused kernel, in segments of at most
    HOOK_SEGMENT steps (:func:`_segment_length`): a segment with an event (``hook.is_event``
    of each of its steps) runs step by step (:func:`_step_by_step`), one without as one
    :func:`_fused_steps` call, which is the same
    computation there (masks stay fixed between events, so a non-finite parameter stays
    non-finite and ``diverged`` may be checked once). Bit-identical to step-by-step training."""
    def segment(pop: Population, s: Array, k: int) -> Population:
        steps = s + jnp.arange(k)
        return jax.lax.cond(jnp.any(jax.vmap(hook.is_event)(steps)),
                            lambda p: _step_by_step(cfg, hook, kernel, data, p, steps),
                            lambda p: _fused_steps(cfg, kernel, data, p, s, k), pop)

    k = _segment_length(n_steps)
    q, r = divmod(n_steps, k)
    if q:
        pop = jax.lax.scan(lambda p, i: (segment(p, start + i * k, k), None), pop, jnp.arange(q))[0]
    return segment(pop, start + q * k, r) if r else pop


TRACE_COUNT = {"chunk": 0}  # incremented at trace time; tests use it to prove caching works


def chunk_fn(cfg: TrainConfig, hook: MaskHook | None, n_steps: int):
    """The jitted program training `n_steps` steps from step `start`: (pop, x, y, start,
    epoch_offset) -> pop. Cached on the static structure and the resolved kernel."""
    return _chunk_fn(cfg, hook, n_steps, resolve_kernel(cfg.kernel, cfg.widths))


@functools.lru_cache(maxsize=64)
def _chunk_fn(cfg: TrainConfig, hook: MaskHook | None, n_steps: int, kernel: str):
    def run(pop: Population, x_all, y_all, start, epoch_offset):
        TRACE_COUNT["chunk"] += 1
        fused = kernel in ("fused", "fused_models")
        data = (x_all, y_all, cpu_kernel.pack_rows(x_all, y_all) if fused else None, epoch_offset)
        if fused and hook is None:  # the whole chunk in one kernel call
            return _fused_steps(cfg, kernel, data, pop, start, n_steps)
        if fused:  # the stretches between the hook's events in one kernel call each
            return _fused_hooked_steps(cfg, hook, kernel, data, pop, start, n_steps)
        return _step_by_step(cfg, hook, kernel, data, pop, start + jnp.arange(n_steps))
    return jax.jit(run, donate_argnums=(0,))


def train(pop: Population, x_all, y_all, cfg: TrainConfig, hook: MaskHook | None = None,
          epoch_offset: int = 0, progress: Callable[[int, int, float], None] | None = None,
          observe: Callable[[Population], None] | None = None,
          start_step: int = 0, stop_step: int | None = None) -> Population:
    """Train the population for ``cfg.epochs`` epochs; returns the final population.

    `epoch_offset` shifts the data-order epochs (LTH's later rounds see fresh orders while their
    schedules restart). `progress(steps_done, total_steps, seconds)` is called after each chunk,
    and `observe(pop)` sees the population after each chunk (tests check invariants with it).

    Each step adds its minibatch losses to ``pop.loss_sums`` at its epoch (allocated here as
    zeros when it is ``()``; otherwise it must be (P, ``cfg.epochs``)); an event step of a hook
    with ``skip_optimizer`` adds the loss of its minibatch without the update.

    `start_step`/`stop_step` train only the steps [start, stop) of the ``cfg.epochs`` run (the
    schedules stay defined on all of it): a population stopped at step s and continued from s
    is bit-identical to one trained straight through: chunks stay on the grid of multiples of
    ``chunk_steps`` counted from step 0, so the same chunk programs run (when s is a multiple of
    ``chunk_steps``, exactly the same chunks; successive halving stops at epoch boundaries).
    """
    x_all = jnp.asarray(x_all, jnp.float32)
    y_all = jnp.asarray(y_all, jnp.float32).reshape(-1)
    full = cfg.epochs * cfg.steps_per_epoch(x_all.shape[0])
    total = full if stop_step is None else int(stop_step)
    if not 0 <= int(start_step) <= total <= full:
        raise ValueError(f"need 0 <= start_step <= stop_step <= {full}, got {start_step}, {stop_step}")
    if isinstance(pop.loss_sums, tuple):
        pop = with_loss_sums(pop, cfg.epochs)
    elif tuple(pop.loss_sums.shape) != (pop.lr.shape[0], cfg.epochs):
        raise ValueError(f"loss_sums: shape {tuple(pop.loss_sums.shape)}, expected {(pop.lr.shape[0], cfg.epochs)}")
    done, t0 = int(start_step), time.perf_counter()
    pop = jax.tree.map(lambda a: jnp.array(a, copy=True), pop)  # the chunks donate their input
    while done < total:
        n = min(cfg.chunk_steps - done % cfg.chunk_steps, total - done)  # chunks on the grid of step 0
        pop = chunk_fn(cfg, hook, n)(pop, x_all, y_all, jnp.int32(done), jnp.int32(epoch_offset))
        done += n
        if observe is not None:
            observe(pop)
        if progress is not None:
            jax.block_until_ready(pop.diverged)
            progress(done - int(start_step), total - int(start_step), time.perf_counter() - t0)
    return pop


# ---------------------------------------------------------------------------------------------
# evaluation


@functools.partial(jax.jit, static_argnames=("model_chunk", "data_chunk"))
def _evaluate(params: Params, x_all: Array, y_all: Array, model_chunk: int, data_chunk: int):
    n = x_all.shape[0]
    pad = (-n) % data_chunk
    xs = jnp.pad(x_all, ((0, pad), (0, 0))).reshape(-1, data_chunk, x_all.shape[1])
    ys = jnp.pad(y_all, (0, pad)).reshape(-1, data_chunk)
    valid = (jnp.arange(n + pad) < n).reshape(-1, data_chunk)

    def one_model(p):
        def body(acc, batch):
            x, y, v = batch
            z = mlp.apply(p, x)
            correct = jnp.sum(((z > 0) == (y > 0.5)) & v)
            lsum = jnp.sum(jnp.where(v, mlp.bce_with_logits(z, y), 0.0))
            return (acc[0] + correct, acc[1] + lsum), None
        (c, l), _ = jax.lax.scan(body, (jnp.int32(0), jnp.float32(0.0)), (xs, ys, valid))
        return c.astype(jnp.float32) / n, l / n

    return vmap_models(one_model, params, group=model_chunk)


def evaluate(params: Params, x_all, y_all, model_chunk: int = 16, data_chunk: int = 2048) -> dict[str, np.ndarray]:
    """Accuracy (logit > 0 ⇔ label 1) and mean BCE loss of every model on all points, plus nnz.
    Memory stays bounded: models in groups of `model_chunk` (the population is zero-padded to a
    multiple of it, so every model is evaluated by the same program and its numbers never depend
    on the population size), points in blocks of `data_chunk`."""
    x_all = jnp.asarray(x_all, jnp.float32)
    y_all = jnp.asarray(y_all, jnp.float32).reshape(-1)
    p = jax.tree.leaves(params)[0].shape[0]
    mc = model_chunk  # fixed, never min(model_chunk, p): one compiled shape, so a model's loss sums
    pad = (-p) % mc   # in the same order whatever the population size
    padded = jax.tree.map(lambda a: jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]), params) if pad else params
    acc, loss = _evaluate(padded, x_all, y_all, mc, min(data_chunk, x_all.shape[0]))
    return {"accuracy": np.asarray(acc[:p]), "loss": np.asarray(loss[:p]),
            "weight_nnz": np.asarray(mlp.weight_nnz(params)), "model_nnz": np.asarray(mlp.model_nnz(params))}
