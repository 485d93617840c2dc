"""The public one-model API (sparsejax.pruning.api) computes what the trainer computes.

Each method's ``*_prune`` on one model with explicit data must equal the population path
(``registry`` at-init scorers, which draw each model's data from its key) for that model given
the same data; scores and counts are checked against their definitions elsewhere
(test_pruning_scores.py, test_reference_counts.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import data, mlp, train
from sparsejax.pruning import api, registry, saliency, schedules

WIDTHS = (4, 4, 4)  # N = 44
BUDGETS = (9, 20)
LR = 0.1


@pytest.fixture(scope="module")
def setup():
    x, y = data.cubist_spiral()
    keys = train.model_keys(3, np.arange(len(BUDGETS)))
    return jnp.asarray(x), jnp.asarray(y), keys


def _one(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


@pytest.mark.parametrize("name", ["snip", "iter_snip", "force", "grasp", "synflow", "prospr", "random", "rigl"])
def test_api_equals_the_population_path(name, setup):
    x, y, keys = setup
    method = registry.get(name)
    params = mlp.init_population(jax.random.split(jax.random.PRNGKey(11), len(BUDGETS)), WIDTHS,
                                 method.init_scheme)
    budgets = jnp.asarray(BUDGETS, jnp.int32)
    lr = jnp.full((len(BUDGETS),), LR, jnp.float32)
    pop_masks = method.prune_at_init(params, budgets, keys, lr, x, y, WIDTHS)
    for i, b in enumerate(BUDGETS):
        p, k = _one(params, i), keys[i]
        if name == "snip":
            xs, ys = registry.draw_batches(k, x, y, 1)
            got = api.snip_prune(p, xs[0], ys[0], b)
        elif name in ("iter_snip", "force"):
            xs, ys = registry.draw_batches(k, x, y, saliency.ITER_STEPS)
            got = (api.force_prune if name == "force" else api.iter_snip_prune)(p, xs, ys, b)
        elif name == "grasp":
            got = api.grasp_prune(p, *registry.grasp_samples(k, x, y), b)
        elif name == "synflow":
            got = api.synflow_prune(p, b)
        elif name == "prospr":
            xs, ys = registry.draw_batches(k, x, y, 4)
            got = api.prospr_prune(p, xs, ys, LR, b)
        elif name == "random":
            got = api.random_prune(jax.random.wrap_key_data(k), WIDTHS, b)
        else:
            got = api.rigl_init_masks(jax.random.wrap_key_data(k), WIDTHS, b)
            np.testing.assert_array_equal([int(np.sum(np.asarray(m))) for m in got], api.erk_counts(WIDTHS, b))
        assert sum(int(np.sum(np.asarray(m))) for m in got) == b
        for g, m in zip(got, pop_masks):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(m[i]), err_msg=f"{name} B={b}")


def test_scores_select_the_masks(setup):
    x, y, keys = setup
    p = mlp.init(jax.random.PRNGKey(2), WIDTHS)
    xs, ys = registry.draw_batches(keys[0], x, y, 4)
    for scores, masks in [(api.snip_scores(p, xs[0], ys[0]), api.snip_prune(p, xs[0], ys[0], 12)),
                          (api.synflow_scores(p), None),
                          (api.prospr_scores(p, xs, ys, LR), api.prospr_prune(p, xs, ys, LR, 12))]:
        assert [s.shape for s in scores] == [l["w"].shape for l in p]
        if masks is not None:  # the kept weights are the 12 highest scores (no ties here)
            flat = np.concatenate([np.asarray(s).T.ravel() for s in scores])
            kept = np.concatenate([np.asarray(m).T.ravel() for m in masks])
            assert kept.sum() == 12 and flat[kept > 0].min() > flat[kept == 0].max()
    # a one-step Iter SNIP from dense keeps iterative_counts(N, B, 1) = [B]: the top-B scores
    dense = [jnp.ones_like(l["w"]) for l in p]
    sc = api.iter_snip_scores(p, dense, xs[0], ys[0])
    flat = np.concatenate([np.asarray(s).T.ravel() for s in sc])
    kept = np.concatenate([np.asarray(m).T.ravel() for m in api.iter_snip_prune(p, xs[:1], ys[:1], 7)])
    assert kept.sum() == 7 and flat[kept > 0].min() >= flat[kept == 0].max()
    np.testing.assert_allclose(np.concatenate([np.asarray(s).T.ravel() for s in api.force_scores(p, dense, xs[0], ys[0])]),
                               flat, rtol=1e-6)  # identical from a dense mask


def test_magnitude_and_rigl_update():
    p = mlp.init(jax.random.PRNGKey(4), WIDTHS)
    m = api.magnitude_prune(p, None, 30)
    flat_w = np.concatenate([np.abs(np.asarray(l["w"])).T.ravel() for l in p])
    kept = np.concatenate([np.asarray(a).T.ravel() for a in m])
    assert kept.sum() == 30 and flat_w[kept > 0].min() > flat_w[kept == 0].max()
    m2 = api.magnitude_prune(p, m, 10)
    assert sum(int(np.sum(np.asarray(a))) for a in m2) == 10
    assert all(np.all(np.asarray(b) <= np.asarray(a)) for a, b in zip(m, m2))
    grads = tuple(jnp.asarray(np.random.default_rng(0).normal(size=l["w"].shape), jnp.float32) for l in p)
    f = float(schedules.rigl_drop_fractions()[0])
    new = api.rigl_update(p, m, grads, f)
    for a, b in zip(m, new):
        assert int(np.sum(np.asarray(a))) == int(np.sum(np.asarray(b)))
    assert any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(m, new))
    assert [np.asarray(b).tolist() for b in api.bias_masks(m2)] == \
        [np.asarray(b).tolist() for b in mlp.bias_masks_out_degree(list(m2))]


def test_bad_budget_is_one_clear_error():
    p = mlp.init(jax.random.PRNGKey(0), WIDTHS)
    for bad in (-1, 45, 3.5, True):
        with pytest.raises(ValueError, match=r"budget must be an int in \[0, 44\]"):
            api.synflow_prune(p, bad)
    with pytest.raises(ValueError, match="budget"):
        api.gmp_counts(44, 45)
    assert len(api.gmp_counts(44, 20)) == 201 and api.gmp_counts(44, 20)[-1] == 20
