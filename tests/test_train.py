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
    """Hand-written backprop of the mean BCE-with-logits loss, float64: (weight grads, bias
    grads, the loss)."""
    hs, pre = [x], []
    for l, (w, b) in enumerate(zip(ws, bs)):
        z = hs[-1] @ w + b
        pre.append(z)
        hs.append(np.maximum(z, 0) if l < len(ws) - 1 else z)
    z = hs[-1][:, 0]
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    dz = (1 / (1 + np.exp(-z)) - y) / len(y)
    d = dz[:, None]
    gws, gbs = [None] * len(ws), [None] * len(ws)
    for l in reversed(range(len(ws))):
        gws[l] = hs[l].T @ d
        gbs[l] = d.sum(0)
        if l:
            d = (d @ ws[l].T) * (pre[l - 1] > 0)
    return gws, gbs, loss


_batch_indices = jax.jit(shuffle.batch_indices, static_argnums=(2, 3, 4))


def _np_train(params, masks, x_all, y_all, key, lr, factor_of_epoch, steps, spe, bs=128, mu=0.9, wd=5e-4):
    """(weights, biases, each step's minibatch loss before its update (T,))."""
    ws = [np.asarray(l["w"], np.float64) * np.asarray(m["w"]) for l, m in zip(params, masks)]
    bs_ = [np.asarray(l["b"], np.float64) * np.asarray(m["b"]) for l, m in zip(params, masks)]
    mw = [np.zeros_like(w) for w in ws]
    mb = [np.zeros_like(b) for b in bs_]
    loss_T = np.zeros(steps)
    for t in range(steps):
        idx = np.asarray(_batch_indices(key, jnp.int32(t), len(x_all), bs, spe))
        gws, gbs, loss_T[t] = _np_forward_backward(ws, bs_, x_all[idx].astype(np.float64), y_all[idx])
        eta = lr * factor_of_epoch(t // spe)
        for l, m in enumerate(masks):
            mw[l] = mu * mw[l] + (gws[l] + wd * ws[l]) * np.asarray(m["w"])
            mb[l] = mu * mb[l] + (gbs[l] + wd * bs_[l]) * np.asarray(m["b"])
            ws[l] = (ws[l] - eta * mw[l]) * np.asarray(m["w"])
            bs_[l] = (bs_[l] - eta * mb[l]) * np.asarray(m["b"])
    return ws, bs_, loss_T


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
        ws, bs, _ = _np_train(one, msk, x, y, pop.key[i], 0.2, factor, steps=25, spe=spe)
        for l in range(4):
            np.testing.assert_allclose(out.params[l]["w"][i], ws[l], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out.params[l]["b"][i], bs[l], rtol=1e-5, atol=1e-6)


# (12,12,12) and (16,16,16): shapes where a plain vmap of the XLA step sums differently for 2 and
# 3 models, or for 1 and 2 (measured); the step groups models so no shape can
@pytest.mark.parametrize("kernel,widths", [("xla", WIDTHS), ("xla", (12, 12, 12)), ("xla", (16, 16, 16)),
                                           ("fused", WIDTHS)], ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_population_independence_and_chunking(kernel, widths):
    """A model trained in a population of 64 (model 17: the second group of the XLA step) and
    alone, with other chunkings: the same parameters bit for bit, the same accuracy."""
    _needs(kernel)
    x, y = _subset(1280)
    big = _population(64, density=0.5, widths=widths)
    alone = jax.tree.map(lambda a: a[17:18], big)
    three = jax.tree.map(lambda a: a[15:18], big)
    cfg_a = train.TrainConfig(widths=widths, epochs=3, chunk_steps=30, kernel=kernel)
    cfg_b = train.TrainConfig(widths=widths, epochs=3, chunk_steps=7, kernel=kernel)
    out_big = train.train(big, x, y, cfg_a)
    out_one = train.train(alone, x, y, cfg_b)
    out_three = train.train(three, x, y, cfg_a)
    for lb, lo, lt in zip(jax.tree.leaves(out_big.params), jax.tree.leaves(out_one.params),
                          jax.tree.leaves(out_three.params)):
        np.testing.assert_array_equal(np.asarray(lb)[17], np.asarray(lo)[0])
        np.testing.assert_array_equal(np.asarray(lt)[2], np.asarray(lo)[0])
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


@pytest.mark.parametrize("kernel,widths", [("xla", WIDTHS), ("xla_lanes", WIDTHS), ("fused", WIDTHS),
                                           ("fused", (20, 5, 3))],
                         ids=["xla", "xla_lanes", "fused_lanes", "fused_models"])
def test_loss_curve_matches_numpy(kernel, widths):
    """Each epoch's recorded loss is the mean of its 5 minibatch losses, each before its step, as
    the float64 NumPy loop computes them; on both XLA steps and both layouts of the fused step
    (lanes at (4, 5, 3), one model at a time at width 20). The parameters stay those without
    the curve (test_matches_numpy_sgd; the kernels' tests)."""
    _needs(kernel)
    if kernel == "fused":
        assert cpu_kernel.pick_layout(mlp.layer_dims(widths)) == ("lanes" if widths == WIDTHS else "models")
    x, y = _subset(700)
    pop = _population(3, widths=widths, schedule="cosine", lr=0.2, density=0.6)
    cfg = train.TrainConfig(widths=widths, epochs=5, chunk_steps=7, kernel=kernel)
    out = train.train(pop, x, y, cfg)
    curves = train.loss_curves(out, 5)
    assert curves.shape == (3, 5) and curves.dtype == np.float32
    for i in range(3):
        one = jax.tree.map(lambda a: a[i], pop.params)
        msk = jax.tree.map(lambda a: a[i], pop.masks)
        _, _, loss_T = _np_train(one, msk, x, y, pop.key[i], 0.2, lambda e: 0.5 * (1 + np.cos(np.pi * e / 5)),
                                 steps=25, spe=5)
        np.testing.assert_allclose(curves[i], loss_T.reshape(5, 5).mean(axis=1), rtol=1e-4)
    assert curves[:, -1].mean() < curves[:, 0].mean()  # it trains
    with pytest.raises(ValueError, match="loss_sums"):
        train.train(out, x, y, train.TrainConfig(widths=widths, epochs=4, kernel=kernel))


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


# ------------------------------------------------------------------------------- mask hooks


def _np_keep_top(scores, k):
    """Highest first, NaN last, ties by lower index (PyTorch flat order)."""
    nan = np.isnan(scores)
    order = np.lexsort((np.arange(scores.size), np.where(nan, 0.0, -scores), nan))
    keep = np.zeros(scores.size)
    keep[order[:k]] = 1.0
    return keep


def _np_rigl_train(params, wmasks, x_all, y_all, key, lr, steps, spe, event_shift=0, grad_shift=0,
                   skip_sgd=True, bs=128, mu=0.9, wd=5e-4):
    """The reference's RigL loop in float64 NumPy: after each backward pass its counter
    s = i + 1; if s % 100 == 0 and s < T_end (= int(0.75·steps)): per layer drop
    int(n_on·f) smallest |W|, f = 0.15·(1 + cos(s·π/T_end)), grow as many largest |dense grad|
    (this iteration's minibatch) among the rest, zero grown/dropped momentum, skip the SGD step.
    The shifts and `skip_sgd=False` give the wrong variants the test must tell apart."""
    t_end = int(0.75 * steps)
    ws = [np.asarray(l["w"], np.float64) * m for l, m in zip(params, wmasks)]
    bs_ = [np.asarray(l["b"], np.float64) for l in params]
    ms = [np.asarray(m, np.float64) for m in wmasks]
    mb = [np.asarray(b, np.float64) for b in mlp.bias_masks_out_degree([jnp.asarray(m) for m in ms])]
    bs_ = [b * m for b, m in zip(bs_, mb)]
    vw = [np.zeros_like(w) for w in ws]
    vb = [np.zeros_like(b) for b in bs_]
    events, loss_T = [], np.zeros(steps)
    for t in range(steps):
        idx = np.asarray(_batch_indices(key, jnp.int32(t), len(x_all), bs, spe))
        gws, gbs, loss_T[t] = _np_forward_backward(ws, bs_, x_all[idx].astype(np.float64), y_all[idx])
        s = t + 1 - event_shift
        if s > 0 and s % 100 == 0 and s < t_end:
            events.append(t)
            if grad_shift:
                idx2 = np.asarray(_batch_indices(key, jnp.int32(t + grad_shift), len(x_all), bs, spe))
                dense, _, _ = _np_forward_backward(ws, bs_, x_all[idx2].astype(np.float64), y_all[idx2])
            else:
                dense = gws
            f = 0.3 / 2 * (1 + np.cos((s * np.pi) / t_end))
            new = []
            for w, m, g in zip(ws, ms, dense):
                wf, mf, gf = w.T.ravel(), m.T.ravel(), g.T.ravel()
                n_on = int(mf.sum())
                d = int(n_on * f)
                kept = _np_keep_top(np.where(mf > 0, np.abs(wf), np.nan), n_on - d)
                grown = _np_keep_top(np.where(kept == 0, np.abs(gf), np.nan), d)
                new.append((kept + grown).reshape(m.T.shape).T)
            new_b = [np.asarray(b, np.float64) for b in mlp.bias_masks_out_degree([jnp.asarray(m) for m in new])]
            vw = [v * m0 * m1 for v, m0, m1 in zip(vw, ms, new)]
            vb = [v * m0 * m1 for v, m0, m1 in zip(vb, mb, new_b)]
            ms, mb = new, new_b
            ws = [w * m for w, m in zip(ws, ms)]
            bs_ = [b * m for b, m in zip(bs_, mb)]
            if skip_sgd:  # the trainer records this step's loss at the parameters after the event
                loss_T[t] = _np_forward_backward(ws, bs_, x_all[idx].astype(np.float64), y_all[idx])[2]
                continue
        for l in range(len(ws)):
            vw[l] = mu * vw[l] + (gws[l] + wd * ws[l]) * ms[l]
            vb[l] = mu * vb[l] + (gbs[l] + wd * bs_[l]) * mb[l]
            ws[l] = (ws[l] - lr * vw[l]) * ms[l]
            bs_[l] = (bs_[l] - lr * vb[l]) * mb[l]
    return ws, bs_, ms, events, loss_T


@pytest.mark.parametrize("kernel", ["xla", "fused"])
def test_rigl_timing_matches_reference_loop(kernel):
    """RigL's updates at 0-based iterations 99 and 199 (T = 300, T_end = 225), each on that
    iteration's minibatch with that SGD step skipped — equal to the reference's loop, and
    distinguishable from one step late, the next minibatch's gradient, or no skipped step."""
    _needs(kernel)
    from sparsejax.pruning import registry
    x, y = _subset(1280)
    widths = (4, 4, 4)
    p = 4
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(5), p), widths)
    wm = jax.vmap(lambda k: tuple(mlp.random_weight_masks(k, widths, 24)))(jax.random.split(jax.random.PRNGKey(6), p))
    keys = train.model_keys(9, np.arange(p))
    pop = train.make_population(params, mlp.masks_from_weights(list(wm)), 0.1, "constant", keys,
                                hook_state=jnp.full((p,), 24, jnp.int32))
    cfg = train.TrainConfig(widths=widths, epochs=30, chunk_steps=50, kernel=kernel)
    spe = cfg.steps_per_epoch(len(x))
    assert spe * cfg.epochs == 300
    method = registry.get("rigl")
    ev = np.asarray(jax.vmap(method.hook(cfg, len(x)).is_event)(jnp.arange(300)))
    np.testing.assert_array_equal(np.nonzero(ev)[0], [99, 199])
    out = method.fit(pop, x, y, cfg)
    changed, differs = 0, [0, 0, 0]
    for i in range(p):
        one = jax.tree.map(lambda a: np.asarray(a[i]), params)
        m0 = [np.asarray(m[i]) for m in wm]
        ws, bs, ms, events, loss_T = _np_rigl_train(one, m0, x, y, pop.key[i], 0.1, 300, spe)
        assert events == [99, 199]
        np.testing.assert_allclose(train.loss_curves(out, spe)[i], loss_T.reshape(-1, spe).mean(axis=1), rtol=1e-4)
        for l in range(4):
            np.testing.assert_array_equal(np.asarray(out.masks[l]["w"][i]), ms[l])
            np.testing.assert_allclose(out.params[l]["w"][i], ws[l], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(out.params[l]["b"][i], bs[l], rtol=1e-4, atol=1e-5)
        changed += int(any(np.any(ms[l] != m0[l]) for l in range(4)))
        for v, variant in enumerate(({"event_shift": 1}, {"grad_shift": 1}, {"skip_sgd": False})):
            ws_v, _, ms_v, _, _ = _np_rigl_train(one, m0, x, y, pop.key[i], 0.1, 300, spe, **variant)
            differs[v] += int(any(np.any(ms_v[l] != ms[l]) or not np.allclose(ws_v[l], ws[l], rtol=1e-4, atol=1e-5)
                                  for l in range(4)))
    assert changed > 0, "RigL never changed a mask"
    # each wrong variant ends elsewhere for some model, so the comparison above pins all three
    assert min(differs) > 0, differs


def test_hooks_are_equal_by_value():
    from sparsejax.pruning import registry
    cfg = train.TrainConfig(widths=(3, 3, 3), epochs=1)
    for name in ("gmp", "rigl"):
        a, b = registry.get(name).hook(cfg, 49_982), registry.get(name).hook(cfg, 49_982)
        assert a is not b and a == b and hash(a) == hash(b)
        assert a != registry.get(name).hook(train.TrainConfig(widths=(3, 3, 3), epochs=2), 49_982)


@pytest.mark.parametrize("name", ["gmp", "rigl"])
def test_second_population_traces_nothing(name):
    """A second population of the same method and shapes (other budgets, lr, seeds) reuses every
    compiled program: no jaxpr is traced (jax's trace events, counted; not timed)."""
    from sparsejax import runs
    base = {"method": name, "widths": [3, 3, 3], "epochs": 1, "schedule": "cosine"}
    runs.run_population([dict(base, budget=15, lr=0.1), dict(base, budget=20, lr=0.05)], chunk_steps=130)
    traced = []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traced.append(kw.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    before = dict(train.TRACE_COUNT)
    try:
        runs.run_population([dict(base, budget=17, lr=0.2), dict(base, budget=22, lr=0.1, schedule="step")],
                            chunk_steps=130)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert train.TRACE_COUNT == before
    assert traced == [], traced


def test_evaluate_is_independent_of_population_size():
    """A model's accuracy and loss are bit-identical evaluated alone or among 37 others."""
    from sparsejax import data
    x, y = data.load("cubist_spiral")
    keys = jax.random.split(jax.random.PRNGKey(3), 37)
    params = mlp.init_population(keys, (5, 4, 3))
    many = train.evaluate(params, x, y)
    for i in (0, 17, 36):
        one = train.evaluate(jax.tree.map(lambda a: a[i:i + 1], params), x, y)
        assert one["loss"][0] == many["loss"][i] and one["accuracy"][0] == many["accuracy"][i]
