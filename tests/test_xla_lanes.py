"""The models-last XLA step (sparsejax.kernels.xla_lanes) against the default XLA step."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import data, mlp, shuffle, train
from sparsejax.kernels import xla_lanes


def _subset(n=1280):
    x, y = data.cubist_spiral()
    idx = np.random.default_rng(0).choice(len(x), n, replace=False)
    return x[idx], y[idx]


def _population(p, widths, density=0.5, seed=0):
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(seed), p), widths)
    budget = int(density * mlp.weight_count(widths))
    wm = jax.vmap(lambda k: mlp.random_weight_masks(k, widths, budget))(jax.random.split(jax.random.PRNGKey(seed + 1), p))
    lr = np.linspace(0.02, 0.3, p).astype(np.float32)            # per-model learning rates
    schedule = [train.SCHEDULES[i % 3] for i in range(p)]         # and schedules
    return train.make_population(params, mlp.masks_from_weights(wm), lr, schedule, train.model_keys(3, np.arange(p)))


def test_batch_indices_equal_the_per_model_draw():
    keys = train.model_keys(11, np.arange(5))
    n, b, spe = 1000, 128, 7
    for step in (0, 3, 9):
        epoch = step // spe
        rk = jax.vmap(lambda k: shuffle.epoch_round_keys(k, epoch))(keys)
        got = xla_lanes.batch_indices_BxP(rk, jnp.int32(step % spe), n, b)
        want = jax.vmap(lambda k: shuffle.batch_indices(k, jnp.int32(step), n, b, spe))(keys)
        np.testing.assert_array_equal(np.asarray(got).T, np.asarray(want))


@pytest.mark.parametrize("widths", [(3, 3, 3), (7, 3, 3), (4, 17, 20)])  # (4, 17, 20): the reduce branch
def test_loss_and_gradients_equal_autodiff(widths):
    p = 6
    pop = _population(p, widths)
    x, y = _subset(640)
    idx = np.random.default_rng(1).integers(0, len(x), (p, 128))
    xb, yb = jnp.asarray(x[idx]), jnp.asarray(y[idx])
    want_loss, want = jax.vmap(jax.value_and_grad(mlp.loss))(pop.params, xb, yb)
    loss, got = xla_lanes.loss_and_grads_lanes(xla_lanes.to_lanes(pop.params), jnp.moveaxis(xb, (0, 2), (2, 0)), yb.T)
    for a, b in zip(jax.tree.leaves(xla_lanes.from_lanes(got)), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)


@pytest.mark.parametrize("widths", [(3, 3, 3), (6, 5, 4)])
def test_training_equals_the_xla_step(widths):
    """Masks, momentum, weight decay, per-model lr and all three schedules, two epochs."""
    x, y = _subset(640)
    pop = _population(9, widths)
    outs = [train.train(pop, x, y, train.TrainConfig(widths=widths, epochs=2, chunk_steps=7, kernel=k))
            for k in ("xla", "xla_lanes")]
    for a, b, m in zip(jax.tree.leaves(outs[0].params), jax.tree.leaves(outs[1].params), jax.tree.leaves(pop.masks)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        assert np.all(np.asarray(b)[np.asarray(m) == 0] == 0)  # masked entries stay exactly 0
    for a, b in zip(jax.tree.leaves(outs[0].momentum), jax.tree.leaves(outs[1].momentum)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.any(np.asarray(outs[1].diverged))


def _drop_is_event(step):
    return (step == 6) | (step == 13)


def _drop_update(pop, step, x, y, threshold=0.1):
    """At steps 6 and 13 drop every live weight with |w| < threshold."""
    masks = tuple({"w": m["w"] * (jnp.abs(p["w"]) >= threshold), "b": m["b"]}
                  for p, m in zip(pop.params, pop.masks))
    return pop._replace(masks=masks, params=mlp.apply_masks(pop.params, masks))


def _drop_hook(skip_optimizer: bool):
    """The test hook for either MaskHook interface (a NamedTuple of functions, or the abstract
    frozen dataclass that replaces it)."""
    if hasattr(train.MaskHook, "_fields"):
        return train.MaskHook(_drop_is_event, _drop_update, skip_optimizer)
    return (_DropSkip if skip_optimizer else _Drop)()


if not hasattr(train.MaskHook, "_fields"):
    @dataclasses.dataclass(frozen=True)
    class _Drop(train.MaskHook):
        def is_event(self, step):
            return _drop_is_event(step)

        def update(self, pop, step, x, y):
            return _drop_update(pop, step, x, y)

    @dataclasses.dataclass(frozen=True)
    class _DropSkip(_Drop):
        skip_optimizer = True


@pytest.mark.parametrize("skip_optimizer", [False, True])
def test_hooks_and_epoch_offset_equal_the_xla_step(skip_optimizer):
    """Mask events run on the models-first state between lanes steps (with and without the
    skipped optimiser step); epoch_offset shifts the data order the same way in both steps."""
    x, y = _subset(640)
    widths = (5, 5, 5)
    pop = _population(4, widths, density=1.0)
    outs = [train.train(pop, x, y, train.TrainConfig(widths=widths, epochs=4, chunk_steps=20, kernel=k),
                        hook=_drop_hook(skip_optimizer), epoch_offset=3) for k in ("xla", "xla_lanes")]
    for a, b in zip(jax.tree.leaves(outs[0].masks), jax.tree.leaves(outs[1].masks)):
        np.testing.assert_array_equal(a, b)
    assert int(np.sum(np.asarray(outs[1].masks[1]["w"]))) < 4 * 25  # the events dropped weights
    for a, b in zip(jax.tree.leaves(outs[0].params), jax.tree.leaves(outs[1].params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_kernel_name_is_explicit_only():
    assert train.resolve_kernel("xla_lanes", (3, 3, 3)) == "xla_lanes"
    assert train.resolve_kernel("auto", (3, 3, 3)) != "xla_lanes"
