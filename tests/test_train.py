"""The population trainer against an independent NumPy SGD, and its population guarantees."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import data, mlp, shuffle, train
from sparsejax.kernels import cpu as cpu_kernel

WIDTHS = (4, 5, 3)


def _subset(n=640):
    x, y = data.cubist_spiral()
    rng = np.random.default_rng(0)
    idx = rng.choice(len(x), n, replace=False)
    return x[idx], y[idx]


def _population(p, seed=0, widths=WIDTHS, lr=0.1, schedule="constant", density=None):
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(seed), p), widths)
    masks = None
    if density is not None:
        budget = int(density * mlp.weight_count(widths))
        wm = jax.vmap(lambda k: mlp.random_weight_masks(k, widths, budget))(jax.random.split(jax.random.PRNGKey(seed + 1), p))
        masks = mlp.masks_from_weights(wm)
    keys = train.model_keys(7, np.arange(p))
    return train.make_population(params, masks, lr, schedule, keys)


# ------------------------------------------------------------------------------- NumPy reference


def _np_forward_backward(ws, bs, x, y):
    """Hand-written backprop of the mean BCE-with-logits loss, float64."""
    hs, pre = [x], []
    for l, (w, b) in enumerate(zip(ws, bs)):
        z = hs[-1] @ w + b
        pre.append(z)
        hs.append(np.maximum(z, 0) if l < len(ws) - 1 else z)
    z = hs[-1][:, 0]
    dz = (1 / (1 + np.exp(-z)) - y) / len(y)
    d = dz[:, None]
    gws, gbs = [None] * len(ws), [None] * len(ws)
    for l in reversed(range(len(ws))):
        gws[l] = hs[l].T @ d
        gbs[l] = d.sum(0)
        if l:
            d = (d @ ws[l].T) * (pre[l - 1] > 0)
    return gws, gbs


_batch_indices = jax.jit(shuffle.batch_indices, static_argnums=(2, 3, 4))


def _np_train(params, masks, x_all, y_all, key, lr, factor_of_epoch, steps, spe, bs=128, mu=0.9, wd=5e-4):
    ws = [np.asarray(l["w"], np.float64) * np.asarray(m["w"]) for l, m in zip(params, masks)]
    bs_ = [np.asarray(l["b"], np.float64) * np.asarray(m["b"]) for l, m in zip(params, masks)]
    mw = [np.zeros_like(w) for w in ws]
    mb = [np.zeros_like(b) for b in bs_]
    for t in range(steps):
        idx = np.asarray(_batch_indices(key, jnp.int32(t), len(x_all), bs, spe))
        gws, gbs = _np_forward_backward(ws, bs_, x_all[idx].astype(np.float64), y_all[idx])
        eta = lr * factor_of_epoch(t // spe)
        for l, m in enumerate(masks):
            mw[l] = mu * mw[l] + (gws[l] + wd * ws[l]) * np.asarray(m["w"])
            mb[l] = mu * mb[l] + (gbs[l] + wd * bs_[l]) * np.asarray(m["b"])
            ws[l] = (ws[l] - eta * mw[l]) * np.asarray(m["w"])
            bs_[l] = (bs_[l] - eta * mb[l]) * np.asarray(m["b"])
    return ws, bs_


def _needs(kernel):
    if kernel == "fused" and not cpu_kernel.available():
        pytest.skip(f"the fused CPU kernel is unavailable here: {cpu_kernel.why_unavailable()}")


@pytest.mark.parametrize("kernel", ["xla", "fused"])
@pytest.mark.parametrize("schedule,factor", [
    ("step", lambda e: 0.1 ** ((e >= 1) + (e >= 2))),
    ("cosine", lambda e: 0.5 * (1 + np.cos(np.pi * e / 5))),
])
def test_matches_numpy_sgd(schedule, factor, kernel):
    _needs(kernel)
    x, y = _subset(700)  # 5 full minibatches per epoch; drop_last drops 60 points each epoch
    pop = _population(3, schedule=schedule, lr=0.2, density=0.6)
    cfg = train.TrainConfig(widths=WIDTHS, epochs=5, batch_size=128, milestones=(1, 2), chunk_steps=7,
                            kernel=kernel)
    out = train.train(pop, x, y, cfg)
    spe = cfg.steps_per_epoch(len(x))
    assert spe == 5
    for i in range(3):
        one = jax.tree.map(lambda a: a[i], pop.params)
        msk = jax.tree.map(lambda a: a[i], pop.masks)
        ws, bs = _np_train(one, msk, x, y, pop.key[i], 0.2, factor, steps=25, spe=spe)
        for l in range(4):
            np.testing.assert_allclose(out.params[l]["w"][i], ws[l], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out.params[l]["b"][i], bs[l], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["xla", "fused"])
def test_population_independence_and_chunking(kernel):
    _needs(kernel)
    x, y = _subset(1280)
    big = _population(64, density=0.5)
    alone = jax.tree.map(lambda a: a[17:18], big)
    cfg_a = train.TrainConfig(widths=WIDTHS, epochs=3, chunk_steps=30, kernel=kernel)
    cfg_b = train.TrainConfig(widths=WIDTHS, epochs=3, chunk_steps=7, kernel=kernel)
    out_big = train.train(big, x, y, cfg_a)
    out_one = train.train(alone, x, y, cfg_b)
    for lb, lo in zip(jax.tree.leaves(out_big.params), jax.tree.leaves(out_one.params)):
        np.testing.assert_allclose(lb[17], lo[0], rtol=1e-5, atol=1e-5)
    acc_big = train.evaluate(out_big.params, x, y)["accuracy"][17]
    acc_one = train.evaluate(out_one.params, x, y)["accuracy"][0]
    assert acc_big == acc_one


def test_masked_entries_stay_zero():
    x, y = _subset(1280)
    pop = _population(8, density=0.3)
    out = train.train(pop, x, y, train.TrainConfig(widths=WIDTHS, epochs=2, chunk_steps=10))
    for lp, lm in zip(jax.tree.leaves(out.params), jax.tree.leaves(pop.masks)):
        assert np.all(np.asarray(lp)[np.asarray(lm) == 0] == 0.0)
        assert np.any(np.asarray(lp)[np.asarray(lm) == 1] != 0.0)
    np.testing.assert_array_equal(np.asarray(mlp.weight_nnz(out.params)), np.asarray(mlp.weight_nnz(pop.masks)))


@pytest.mark.parametrize("kernel", ["xla", "fused"])
def test_divergence_is_contained(kernel):
    _needs(kernel)
    x, y = _subset(1280)
    cfg = train.TrainConfig(widths=WIDTHS, epochs=2, chunk_steps=20, kernel=kernel)
    lr = jnp.asarray([0.1, 1e6, 0.1, 0.05], jnp.float32)
    pop = _population(4)._replace(lr=lr)
    out = train.train(pop, x, y, cfg)
    np.testing.assert_array_equal(np.asarray(out.diverged), [False, True, False, False])
    assert not np.all(np.isfinite(np.asarray(out.params[0]["w"][1])))
    calm = jax.tree.map(lambda a: a[np.array([0, 2, 3])], pop)
    out_calm = train.train(calm, x, y, cfg)
    for lo, lc in zip(jax.tree.leaves(out.params), jax.tree.leaves(out_calm.params)):
        np.testing.assert_allclose(np.asarray(lo)[[0, 2, 3]], lc, rtol=1e-5, atol=1e-6)
    acc = train.evaluate(out.params, x, y)["accuracy"]
    acc_calm = train.evaluate(out_calm.params, x, y)["accuracy"]
    np.testing.assert_allclose(acc[[0, 2, 3]], acc_calm)


def test_second_call_does_not_compile_again():
    x, y = _subset(640)
    cfg = train.TrainConfig(widths=(3, 3, 3), epochs=1, chunk_steps=5)
    train.train(_population(5, widths=(3, 3, 3)), x, y, cfg)
    before = dict(train.TRACE_COUNT)
    with jax.log_compiles(True):
        train.train(_population(5, seed=3, widths=(3, 3, 3), lr=0.05, schedule="cosine"), x, y, cfg)
    assert train.TRACE_COUNT == before


def test_lr_factor_schedules():
    e = jnp.arange(50)
    np.testing.assert_allclose(train.lr_factor(jnp.int32(0), e, 50), 1.0)
    np.testing.assert_allclose(train.lr_factor(jnp.int32(1), e, 50), 0.5 * (1 + np.cos(np.pi * np.arange(50) / 50)), rtol=1e-6, atol=1e-7)
    step = np.asarray(train.lr_factor(jnp.int32(2), e, 50))
    np.testing.assert_allclose(step[:15], 1.0)
    np.testing.assert_allclose(step[15:30], 0.1, rtol=1e-6)
    np.testing.assert_allclose(step[30:], 0.01, rtol=1e-6)
    with pytest.raises(ValueError, match="schedule"):
        train.schedule_ids(["linear"])


def test_fused_kernel_equals_xla_step():
    _needs("fused")
    x, y = _subset(1280)
    pop = _population(6, widths=(16, 16, 16), density=0.4)
    outs = [train.train(pop, x, y, train.TrainConfig(widths=(16, 16, 16), epochs=1, chunk_steps=10, kernel=k))
            for k in ("xla", "fused")]
    for a, b in zip(jax.tree.leaves(outs[0].params), jax.tree.leaves(outs[1].params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="kernel"):
        train.TrainConfig(kernel="cuda")
