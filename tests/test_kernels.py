"""The fused CPU step (both layouts: models in SIMD lanes, one model at a time) against the XLA
step (``vmap`` of ``grad``), for every shape class the lanes layout handles: compiled-in shapes,
1- and 2-unit layers, non-uniform and deeper shapes, with masks, momentum, weight decay,
per-model learning rates and mixed schedules, and a population that is not a whole number of
lane groups."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import data, mlp, shuffle, train
from sparsejax.kernels import cpu as cpu_kernel

pytestmark = pytest.mark.skipif(not cpu_kernel.available() or jax.default_backend() != "cpu",
                                reason="the fused CPU kernel is unavailable here")

# compiled-in shapes first, then shapes that run the runtime-size code (1- and 2-unit layers,
# non-uniform, one and four hidden layers)
SHAPES = [(3, 3, 3), (3, 2, 2), (6, 3, 2), (7, 3, 3), (16, 16, 16), (4, 4, 4), (1, 2, 1), (2, 1, 2), (5, 9, 4, 2), (1,),
          (12, 8, 4)]
P = 19  # not a multiple of 8 or 16: the last lane group is padded


def _subset(n=768):
    x, y = data.cubist_spiral()
    idx = np.random.default_rng(0).choice(len(x), n, replace=False)
    return jnp.asarray(x[idx]), jnp.asarray(y[idx])


def _population(widths, p=P, seed=0):
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(seed), p), widths)
    budget = max(1, int(0.6 * mlp.weight_count(widths)))
    wm = jax.vmap(lambda k: mlp.random_weight_masks(k, widths, budget))(jax.random.split(jax.random.PRNGKey(seed + 1), p))
    lr = np.linspace(0.05, 0.4, p).astype(np.float32)
    schedules = [train.SCHEDULES[i % 3] for i in range(p)]
    pop = train.make_population(params, mlp.masks_from_weights(wm), lr, schedules, train.model_keys(5, np.arange(p)))
    # non-zero momentum buffers, so the first step already tests mu * buf
    mom = jax.tree.map(lambda a: 0.01 * jnp.sin(jnp.arange(a.size, dtype=jnp.float32).reshape(a.shape)), pop.params)
    mom = jax.tree.map(lambda b, m: b * m, mom, pop.masks)
    return pop._replace(momentum=mom)


@functools.partial(jax.jit, static_argnames=("cfg", "layout", "steps"))
def _kernel_train(pop, x, y, cfg, layout, steps):
    """`steps` one-step calls of cpu_kernel.train_steps with the trainer's glue (schedule factor,
    keys, the loss summed per epoch), written here independently of train._train_step."""
    spe = cfg.steps_per_epoch(x.shape[0])

    def body(pop, step):
        lr = pop.lr * train.lr_factor(pop.schedule, step // spe, cfg.epochs, cfg.milestones)
        keys = jax.vmap(lambda k: shuffle.epoch_round_keys(k, step // spe))(pop.key)
        params, mom, loss = cpu_kernel.train_steps(pop.params, pop.masks, pop.momentum, cpu_kernel.pack_rows(x, y),
                                                   keys[None], lr[None], jnp.zeros((lr.shape[0], 1)), step, 0, 1, spe,
                                                   cfg.batch_size, cfg.momentum, cfg.weight_decay, layout=layout)
        return pop._replace(params=params, momentum=mom, loss_sums=pop.loss_sums.at[:, step // spe].add(loss[:, 0])), None

    return jax.lax.scan(body, pop._replace(loss_sums=jnp.zeros((pop.lr.shape[0], cfg.epochs))), jnp.arange(steps))[0]


def _xla_train(pop, x, y, cfg, steps):
    """The XLA step (vmap of grad) for `steps` steps, through the trainer."""
    return train._chunk_fn(cfg, None, steps, "xla")(jax.tree.map(jnp.copy, pop), x, y, jnp.int32(0), jnp.int32(0))


def _close(a, b, rtol=1e-4, atol=2e-5):
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(la), np.asarray(lb), rtol=rtol, atol=atol)


# the lanes layout (the default) on every shape class; the one-model-at-a-time layout on three
@pytest.mark.parametrize("layout,widths", [("lanes", w) for w in SHAPES]
                         + [("models", w) for w in ((3, 3, 3), (5, 9, 4, 2), (12, 8, 4))],
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_kernel_equals_xla_step(widths, layout):
    x, y = _subset()  # 6 steps per epoch; milestones (1, 2) so the step schedule changes twice
    steps = 18
    cfg = train.TrainConfig(widths=widths, epochs=3, milestones=(1, 2), weight_decay=1e-2, momentum=0.9,
                            chunk_steps=steps)
    pop = _population(widths)
    ref = _xla_train(pop, x, y, cfg, steps)
    out = _kernel_train(pop, x, y, cfg, layout, steps)
    _close(out.params, ref.params)
    _close(out.momentum, ref.momentum)
    for lp, lm in zip(jax.tree.leaves(out.params), jax.tree.leaves(pop.masks)):
        assert np.all(np.asarray(lp)[np.asarray(lm) == 0] == 0.0)  # masked entries stay exactly zero
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(out.params), jax.tree.leaves(pop.params))]
    assert all(moved)


@pytest.mark.parametrize("widths", [(3, 3, 3), (5, 9, 4, 2)], ids=lambda w: "x".join(map(str, w)))
def test_trainer_fused_path_equals_xla(widths):
    """train.train with kernel='fused' (the lanes layout at these widths) against kernel='xla'."""
    x, y = _subset()
    pop = _population(widths)
    outs = [train.train(pop, x, y, train.TrainConfig(widths=widths, epochs=2, chunk_steps=5, kernel=k))
            for k in ("xla", "fused")]
    _close(outs[0].params, outs[1].params)
    np.testing.assert_array_equal(np.asarray(outs[0].diverged), np.asarray(outs[1].diverged))


@pytest.mark.parametrize("widths", [(3, 3, 3), (12, 8, 4)], ids=lambda w: "x".join(map(str, w)))
def test_one_data_order_equals_xla(widths):
    """Every model on one data order (equal keys, a shared data_seed): the kernel gathers each
    minibatch once for the population; still the XLA step's numbers."""
    x, y = _subset()
    steps = 12
    cfg = train.TrainConfig(widths=widths, epochs=2, milestones=(1,), chunk_steps=steps)
    pop = _population(widths)
    pop = pop._replace(key=jnp.broadcast_to(pop.key[:1], pop.key.shape))
    _close(_kernel_train(pop, x, y, cfg, "lanes", steps).params, _xla_train(pop, x, y, cfg, steps).params)


def test_lanes_never_cross():
    """A model's numbers are bit-identical whichever lane and group it runs in, and a diverging
    neighbour in the same group (lr 1e6) leaves it untouched."""
    widths = (7, 3, 3)
    x, y = _subset()
    cfg = train.TrainConfig(widths=widths, epochs=2, chunk_steps=12)
    pop = _population(widths)
    pop = pop._replace(lr=pop.lr.at[16].set(1e6).at[18].set(1e6))
    big = _kernel_train(pop, x, y, cfg, "lanes", 12)
    assert not np.all(np.isfinite(np.asarray(big.params[0]["w"][16])))
    for i in (0, 9, 17):
        alone = _kernel_train(jax.tree.map(lambda a: a[i:i + 1], pop), x, y, cfg, "lanes", 12)
        for lb, lo in zip(jax.tree.leaves((big.params, big.momentum)), jax.tree.leaves((alone.params, alone.momentum))):
            np.testing.assert_array_equal(np.asarray(lb)[i], np.asarray(lo)[0])
            assert np.all(np.isfinite(np.asarray(lo)))


@pytest.mark.parametrize("layout,widths", [("lanes", (3, 3, 3)), ("lanes", (5, 9, 4, 2)), ("models", (12, 8, 4))],
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("shared", [False, True], ids=["own_orders", "one_order"])
def test_many_steps_per_call_equal_one_step_calls(widths, layout, shared):
    """The trainer's hook-free chunks (all their steps in one kernel call, crossing epochs:
    learning rates, keys and loss columns per epoch) are bit-identical to one-step calls, for
    chunks that start mid-epoch; a model that diverges is flagged all the same."""
    x, y = _subset()  # 6 steps per epoch
    cfg = train.TrainConfig(widths=widths, epochs=4, milestones=(1, 2), weight_decay=1e-2, chunk_steps=7,
                            kernel="fused" if layout == "lanes" else "auto")
    pop = _population(widths)
    pop = pop._replace(lr=pop.lr.at[4].set(1e6))
    if shared:
        pop = pop._replace(key=jnp.broadcast_to(pop.key[:1], pop.key.shape))
    ref = _kernel_train(pop, x, y, cfg, layout, 24)
    kernel = "fused" if layout == "lanes" else "fused_models"
    out = train.with_loss_sums(jax.tree.map(jnp.copy, pop), cfg.epochs)
    for start, n in ((0, 7), (7, 7), (14, 7), (21, 3)):  # chunks of 7 steps cross the 6-step epochs
        out = train._chunk_fn(cfg, None, n, kernel)(out, x, y, jnp.int32(start), jnp.int32(0))
    for a, b in zip(jax.tree.leaves((ref.params, ref.momentum, ref.loss_sums)),
                    jax.tree.leaves((out.params, out.momentum, out.loss_sums))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.asarray(out.diverged).tolist() == [i == 4 for i in range(P)]


@dataclasses.dataclass(frozen=True)
class _DropHook(train.MaskHook):
    """At steps 6, 13 and 37 drop every live weight with |w| < 0.1 (optionally skipping SGD there)."""
    skip: bool = False

    @property
    def skip_optimizer(self):
        return self.skip

    def is_event(self, step):
        return (step == 6) | (step == 13) | (step == 37)

    def update(self, pop, step, x, y):
        masks = tuple({"w": m["w"] * (jnp.abs(p["w"]) >= 0.1), "b": m["b"]} for p, m in zip(pop.params, pop.masks))
        return pop._replace(masks=masks, params=mlp.apply_masks(pop.params, masks))


@pytest.mark.parametrize("skip", [False, True], ids=["sgd_at_events", "skip_optimizer"])
def test_hooked_chunks_equal_step_by_step(skip):
    """With a mask hook the fused trainer runs the stretches between events as one kernel call
    each (chunks of 17 steps: segments of 16 and one of 1; the last chunk, 14, one segment):
    bit-identical to training step by step, events and skipped optimiser steps included."""
    x, y = _subset()  # 6 steps per epoch, 48 steps
    widths = (3, 3, 3)
    cfg = train.TrainConfig(widths=widths, epochs=8, milestones=(2, 5), chunk_steps=17, kernel="fused")
    hook = _DropHook(skip)
    pop = train.with_loss_sums(_population(widths), cfg.epochs)
    pop = pop._replace(lr=pop.lr.at[4].set(1e6))
    data = (x, y, cpu_kernel.pack_rows(x, y), jnp.int32(0))
    ref = jax.jit(lambda p: jax.lax.scan(lambda q, t: (train._train_step(cfg, hook, "fused", data, q, t), None), p,
                                         jnp.arange(48))[0])(jax.tree.map(jnp.copy, pop))
    out = train.train(pop, x, y, cfg, hook=hook)
    assert int(np.sum(np.asarray(out.masks[1]["w"]))) < int(np.sum(np.asarray(pop.masks[1]["w"])))  # events ran
    for a, b in zip(jax.tree.leaves((ref.params, ref.momentum, ref.masks, ref.loss_sums, ref.diverged)),
                    jax.tree.leaves((out.params, out.momentum, out.masks, out.loss_sums, out.diverged))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.asarray(out.diverged)[4]


def test_layout_choice_and_errors():
    assert cpu_kernel.pick_layout((2, 3, 3, 3, 1)) == "lanes"
    assert cpu_kernel.pick_layout((2, 64, 64, 64, 1)) == "models"
    x, y = _subset()  # 6 steps per epoch
    rows = cpu_kernel.pack_rows(x, y)
    pop = _population((40, 3, 3), p=2)
    keys, lr, loss = jnp.zeros((1, 2, 4), jnp.uint32), pop.lr[None], jnp.zeros((2, 1))
    call = functools.partial(cpu_kernel.train_steps, pop.params, pop.masks, pop.momentum, rows)
    with pytest.raises(ValueError, match="lanes"):
        call(keys, lr, loss, 0, 0, 1, 6, 128, 0.9, 5e-4, layout="lanes")
    with pytest.raises(ValueError, match="layout"):
        call(keys, lr, loss, 0, 0, 1, 6, 128, 0.9, 5e-4, layout="simd")
    with pytest.raises(ValueError, match="round keys"):
        call(keys[0], lr, loss, 0, 0, 1, 6, 128, 0.9, 5e-4)
    with pytest.raises(Exception, match="fewer epochs"):  # steps 5 and 6 touch two epochs; one given
        jax.block_until_ready(call(keys, lr, loss, 5, 0, 2, 6, 128, 0.9, 5e-4))


@pytest.mark.parametrize("widths", [(3, 3, 3), (5, 9, 4, 2)], ids=lambda w: "x".join(map(str, w)))
def test_loss_output_equals_xla(widths):
    """The kernel's per-model minibatch loss (summed per epoch by the trainer) against the XLA
    step's, with logits scaled from ~1 to ~1e3 (the lanes layout sums the logs as the log of one
    product: its exponent must track products far beyond float range) and a model that
    diverges to NaN (its loss must turn NaN, never a number)."""
    x, y = _subset()
    pop = _population(widths)
    scale = jnp.geomspace(1.0, 60.0, P, dtype=jnp.float32)  # per model: every layer's weights x scale
    params = jax.tree.map(lambda a: a * scale.reshape((-1,) + (1,) * (a.ndim - 1)), pop.params)
    pop = pop._replace(params=params, lr=jnp.full((P,), 1e-4, jnp.float32).at[3].set(1e6))
    cfg = train.TrainConfig(widths=widths, epochs=2, chunk_steps=12)
    sums = [train._chunk_fn(cfg, None, 12, k)(train.with_loss_sums(jax.tree.map(jnp.copy, pop), 2), x, y,
                                              jnp.int32(0), jnp.int32(0)).loss_sums for k in ("xla", "fused")]
    ref, out = np.asarray(sums[0]), np.asarray(sums[1])
    assert np.isnan(ref[3, 1]) and np.isnan(out[3, 1])
    assert np.nanmax(ref[:, 0]) > 1e3  # the large-logit regime is reached
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("method", [None, "rigl"])
def test_chunk_benchmark_compares_equal_populations(method):
    """benchmarks/chunk_ab.py's comparison runs and finds the two programs' populations
    bit-identical (no timing is checked)."""
    from benchmarks import chunk_ab
    old, new, same = chunk_ab.compare((3, 3, 3), 19, 5, 1, method)
    assert same and old > 0 and new > 0
