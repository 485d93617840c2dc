"""Compacted training (issue 18): plans, exact compact/scatter round trips, and compacted training
equal to full-width training for every at-init method (sparsejax.compaction)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import compaction, connectivity, data, mlp, train
from sparsejax.pruning import registry

AT_INIT = ("random", "snip", "iter_snip", "force", "grasp", "synflow", "prospr")
N_POINTS = 8192  # a fixed random subset: 64 steps per epoch keeps 14 trainings affordable on 2 cores
EPOCHS = 2


@pytest.fixture(scope="module")
def subset():
    x, y = data.load("cubist_spiral")
    sel = np.random.default_rng(0).permutation(len(x))[:N_POINTS]
    return np.asarray(x[sel], np.float32), np.asarray(y[sel], np.float32)


def _random_population(rng, widths, p, density):
    """Random masked params and out-degree masks with per-layer random densities."""
    shapes = mlp.layer_shapes(widths)
    wm = [(rng.random((p, i, o)) < rng.uniform(0, density)).astype(np.float32) for i, o in shapes]
    masks = mlp.masks_from_weights([jnp.asarray(w) for w in wm], "out_degree")
    params = tuple({"w": jnp.asarray(rng.standard_normal((p, i, o)), jnp.float32),
                    "b": jnp.asarray(rng.standard_normal((p, o)), jnp.float32)} for i, o in shapes)
    return mlp.apply_masks(params, masks), masks


def _carried_reference(masks, p, l):
    """Brute force: hidden unit j of layer l (0-based hidden index) of model p carries a kept
    weight or bias."""
    w_in, w_out, b = (np.asarray(masks[l]["w"][p]), np.asarray(masks[l + 1]["w"][p]), np.asarray(masks[l]["b"][p]))
    out = []
    for j in range(w_in.shape[1]):
        if any(w_in[i, j] for i in range(w_in.shape[0])) or any(w_out[j, k] for k in range(w_out.shape[1])) or b[j]:
            out.append(j)
    return out


def test_bucket_width_hand_computed():
    b = compaction.DEFAULT_BUCKETS
    assert compaction.bucket_width(0, 256, b) == 4   # a layer with nothing kept still has width >= 1
    assert compaction.bucket_width(4, 256, b) == 4
    assert compaction.bucket_width(5, 256, b) == 8
    assert compaction.bucket_width(17, 256, b) == 32
    assert compaction.bucket_width(129, 256, b) == 256  # above the last bucket: full width
    assert compaction.bucket_width(9, 12, b) == 12      # never above the full width
    assert compaction.bucket_width(3, 3, b) == 3        # a narrow layer stays full
    assert compaction.bucket_width(0, 2, b) == 2
    with pytest.raises(ValueError, match="outside"):
        compaction.bucket_width(17, 16, b)
    with pytest.raises(ValueError, match="buckets"):
        compaction.check_buckets((8, 4))
    with pytest.raises(ValueError, match="buckets"):
        compaction.check_buckets(())


@pytest.mark.parametrize("seed", range(6))
def test_plan_never_drops_a_carrying_unit(seed):
    """Property over random masks, widths and buckets: the plan lists exactly the carrying units
    (brute force) in original order, then sentinels; the shape is the smallest allowed width
    that holds every model's count; compacting keeps every kept weight and bias."""
    rng = np.random.default_rng(seed)
    widths = tuple(int(w) for w in rng.choice([1, 3, 5, 16, 20, 37, 64], size=rng.integers(1, 4)))
    buckets = tuple(sorted(set(int(b) for b in rng.choice([2, 4, 8, 16, 32], size=3))))
    p = 7
    params, masks = _random_population(rng, widths, p, density=rng.choice([0.05, 0.3, 1.0]))
    plan = compaction.plan_compaction(masks, buckets)
    assert plan.full_widths == widths and plan.num_models == p
    for l, full in enumerate(widths):
        counts = []
        for m in range(p):
            ref = _carried_reference(masks, m, l)
            counts.append(len(ref))
            idx = plan.index[l][m]
            assert list(idx[:len(ref)]) == ref
            assert np.all(idx[len(ref):] == full)
            assert plan.counts_PxL[m, l] == len(ref)
            assert plan.model_shapes_PxL[m, l] == compaction.bucket_width(len(ref), full, buckets)
        allowed = [w for w in (*buckets, full) if max(max(counts), 1) <= w <= full]
        assert plan.shape[l] == min(allowed)
    params_c, masks_c = compaction.compact(params, masks, plan)
    assert mlp.widths_of(params_c) == plan.shape
    for full_layer, c_layer in zip(masks, masks_c):
        for k in ("w", "b"):
            np.testing.assert_array_equal(np.sum(np.asarray(full_layer[k]), axis=tuple(range(1, full_layer[k].ndim))),
                                          np.sum(np.asarray(c_layer[k]), axis=tuple(range(1, c_layer[k].ndim))))
    # padding slots: zero parameters, zero weight masks, zero bias masks
    for l in range(len(widths)):
        pad = ~plan.valid(l)
        for tree in (params_c, masks_c):
            assert np.all(np.asarray(tree[l]["b"])[pad] == 0)
            assert np.all(np.asarray(tree[l]["w"]).transpose(0, 2, 1)[pad] == 0)
            assert np.all(np.asarray(tree[l + 1]["w"])[pad] == 0)


@pytest.mark.parametrize("seed,widths", [(0, (16, 16, 16)), (1, (5, 33, 2)), (2, (64, 8, 128)), (3, (7,))])
def test_scatter_back_inverts_compact_exactly(seed, widths):
    rng = np.random.default_rng(seed)
    params, masks = _random_population(rng, widths, 5, density=0.2)
    plan = compaction.plan_compaction(masks)
    back_p, back_m = compaction.scatter_back(*compaction.compact(params, masks, plan), plan, widths)
    for a, b in zip(jax.tree.leaves((params, masks)), jax.tree.leaves((back_p, back_m))):
        assert a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    momentum = mlp.apply_masks(jax.tree.map(lambda a: a * 0.5 + 1.0, params), masks)
    back = compaction.scatter_tree(compaction.compact_tree(momentum, plan), plan)
    for a, b in zip(jax.tree.leaves(momentum), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="full_widths"):
        compaction.scatter_back(*compaction.compact(params, masks, plan), plan, tuple(w + 1 for w in widths))
    with pytest.raises(ValueError, match="compact"):
        compaction.compact_tree(params[:-1] + ({"w": params[-1]["w"][:, :1], "b": params[-1]["b"]},), plan)


def _assert_same_training(full: train.Population, comp: train.Population, x, y, atol=2e-5):
    """Compacted-then-scattered training equals full-width training: masks, diverged flags and
    connectivity counts exactly; params, momentum and logits up to float summation order;
    accuracy exactly (a deterministic comparison on this machine)."""
    for a, b in zip(jax.tree.leaves(full.masks), jax.tree.leaves(comp.masks)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for tree_f, tree_c in ((full.params, comp.params), (full.momentum, comp.momentum)):
        for a, b in zip(jax.tree.leaves(tree_f), jax.tree.leaves(tree_c)):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=atol)
            np.testing.assert_array_equal(np.asarray(a) != 0, np.asarray(b) != 0)  # same nonzeros
    for f in ("lr", "schedule", "key", "diverged"):
        np.testing.assert_array_equal(np.asarray(getattr(full, f)), np.asarray(getattr(comp, f)))
    ef, ec = train.evaluate(full.params, x, y), train.evaluate(comp.params, x, y)
    np.testing.assert_array_equal(ef["accuracy"], ec["accuracy"])
    np.testing.assert_allclose(ec["loss"], ef["loss"], rtol=0, atol=atol)
    for k in ("weight_nnz", "model_nnz"):
        np.testing.assert_array_equal(ef[k], ec[k])
    zf = jax.vmap(mlp.apply, in_axes=(0, None))(full.params, jnp.asarray(x[:2048]))
    zc = jax.vmap(mlp.apply, in_axes=(0, None))(comp.params, jnp.asarray(x[:2048]))
    np.testing.assert_allclose(np.asarray(zc), np.asarray(zf), rtol=0, atol=10 * atol)
    sf = connectivity.stats_records(connectivity.connectivity_stats_population(full.params, full.masks))
    sc = connectivity.stats_records(connectivity.connectivity_stats_population(comp.params, comp.masks))
    assert sf == sc


def _pruned_population(name, widths, budgets, x, y, per_budget=2):
    method = registry.get(name)
    p = per_budget * len(budgets)
    keys = train.model_keys(11, np.arange(p))
    params = mlp.init_population(jax.vmap(jax.random.wrap_key_data)(keys), widths, method.init_scheme)
    budget = jnp.asarray([budgets[i % len(budgets)] for i in range(p)], jnp.int32)
    lr = jnp.asarray([0.1, 0.05] * (p // 2), jnp.float32)
    wm = method.prune_at_init(params, budget, keys, lr, jnp.asarray(x), jnp.asarray(y), widths)
    masks = mlp.masks_from_weights(wm, "out_degree")
    return train.make_population(params, masks, lr, ["cosine", "constant"] * (p // 2), keys, hook_state=budget)


# every at-init method at width 16, and three of them at width 32 (CI time: each case compiles
# the full-width and every compacted shape)
@pytest.mark.parametrize("name,width,budgets", [(m, 16, (20, 40)) for m in AT_INIT]
                         + [(m, 32, (20, 40)) for m in ("random", "snip", "synflow")])
def test_compacted_training_equals_full_width(name, width, budgets, subset):
    x, y = subset
    widths = (width,) * 3
    cfg = train.TrainConfig(widths=widths, epochs=EPOCHS)
    method = registry.get(name)
    assert compaction.eligible(method, cfg, len(x))
    pop = _pruned_population(name, widths, budgets, x, y)
    full = train.train(pop, x, y, cfg)
    comp, shapes = compaction.train_compacted(pop, x, y, cfg)
    plan = compaction.plan_compaction(pop.masks)
    assert any(min(s) < width for s in shapes), shapes  # the test really trains narrower layers
    own = [tuple(int(v) for v in row) for row in plan.model_shapes_PxL]
    assert all(all(a >= b for a, b in zip(s, o)) for s, o in zip(shapes, own))  # a group never drops a unit
    assert len(set(shapes)) <= compaction.MAX_GROUPS
    _assert_same_training(full, comp, x, y)


def test_group_by_shape_merges_the_cheapest_pairs_down_to_max_groups():
    import types
    rows = [(4, 4, 4)] * 10 + [(8, 4, 4)] + [(16, 16, 16)] * 5 + [(16, 16, 8)] + [(4, 8, 4)] * 3
    plan = types.SimpleNamespace(model_shapes_PxL=np.asarray(rows), num_models=len(rows))
    every = compaction.group_by_shape(plan, max_groups=10)  # enough groups: one per distinct shape
    assert {s: list(i) for s, i in every.items()} == {
        s: [k for k, r in enumerate(rows) if r == s] for s in sorted(set(rows))}
    for g in (1, 2, 3):
        groups = compaction.group_by_shape(plan, max_groups=g)
        assert len(groups) == min(g, len(set(rows)))
        assert sorted(i for idx in groups.values() for i in idx) == list(range(len(rows)))
        for shape, idx in groups.items():
            assert all(all(a >= b for a, b in zip(shape, rows[i])) for i in idx)
            assert shape == tuple(np.max([rows[i] for i in idx], axis=0))  # the group's per-layer max
    two = compaction.group_by_shape(plan, max_groups=2)  # the wide models stay apart from the narrow
    assert set(two) == {(8, 8, 4), (16, 16, 16)}
    with pytest.raises(ValueError, match="max_groups"):
        compaction.group_by_shape(plan, max_groups=0)


def test_split_and_unsplit_agree_and_keep_model_order(subset):
    """Grouping by shape changes nothing per model (independent keys and data orders)."""
    x, y = subset
    widths = (32, 32, 32)
    cfg = train.TrainConfig(widths=widths, epochs=1)
    pop = _pruned_population("random", widths, (12, 60), x, y, per_budget=3)
    split, shapes_split = compaction.train_compacted(pop, x, y, cfg, split=True)
    whole, shapes_whole = compaction.train_compacted(pop, x, y, cfg, split=False)
    plan = compaction.plan_compaction(pop.masks)
    assert len(compaction.group_by_shape(plan)) > 1  # the case really splits
    assert set(shapes_whole) == {plan.shape}
    _assert_same_training(whole, split, x, y)
    calls = []
    compaction.train_compacted(pop, x, y, cfg, progress=lambda d, t, s: calls.append((d, t)))
    # progress counts population steps, each group in proportion to its models: model-steps and
    # ETAs stay true however many shape groups there are
    assert calls[-1][0] == pytest.approx(64) and {t for _, t in calls} == {64}
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    sizes = [len(i) for i in compaction.group_by_shape(plan).values()]
    assert calls[0][0] == pytest.approx(sizes[0] * 64 / sum(sizes)) or calls[0][0] < sizes[0] * 64 / sum(sizes)


def _hand_built_masks():
    """Widths (6, 6, 6), two models. Model 0 (hand-computed plan below):
    hidden 1: units 0, 1 active; 2 output-dead (in-weight, no out-weight); 3 constant (no
    in-weight, out-weight, bias on by the out-degree rule); 4, 5 empty.
    hidden 2: unit 1 fed by 0 and 3; unit 4 fed by 1; unit 5 constant; unit 0 empty.
    hidden 3: units 2, 3 reach the output (3 is constant too: fed only by constant unit 5);
    unit 0 output-dead (fed by hidden-2 unit 1).
    Model 1: model 0 with its hidden units reversed (the same network, other positions)."""
    w = [np.zeros((2, 6)), np.zeros((6, 6)), np.zeros((6, 6)), np.zeros((6, 1))]
    w[0][0, 0] = w[0][1, 0] = w[0][1, 1] = w[0][0, 2] = 1
    w[1][0, 1] = w[1][3, 1] = w[1][1, 4] = 1
    w[2][1, 2] = w[2][4, 2] = w[2][5, 3] = w[2][1, 0] = 1
    w[3][2, 0] = w[3][3, 0] = 1
    rev = [w[0][:, ::-1], w[1][::-1, ::-1], w[2][::-1, ::-1], w[3][::-1, :]]
    return mlp.masks_from_weights([jnp.asarray(np.stack([a, b]), jnp.float32) for a, b in zip(w, rev)], "out_degree")


def test_hand_built_constant_and_output_dead_units(subset):
    x, y = subset
    widths = (6, 6, 6)
    masks = _hand_built_masks()
    plan = compaction.plan_compaction(masks, buckets=(2, 4))
    np.testing.assert_array_equal(plan.counts_PxL, [[4, 3, 3], [4, 3, 3]])
    assert plan.shape == (4, 4, 4)
    np.testing.assert_array_equal(plan.index[0], [[0, 1, 2, 3], [2, 3, 4, 5]])
    np.testing.assert_array_equal(plan.index[1], [[1, 4, 5, 6], [0, 1, 4, 6]])
    np.testing.assert_array_equal(plan.index[2], [[0, 2, 3, 6], [2, 3, 5, 6]])

    keys = train.model_keys(3, np.arange(2))
    params = mlp.init_population(jax.vmap(jax.random.wrap_key_data)(keys), widths)
    # positive constant-unit biases, so the constants really reach the output
    params[0]["b"] = params[0]["b"].at[:, jnp.asarray([3, 2])].set(jnp.asarray([[0.5, 0.0], [0.0, 0.5]]))
    params[1]["b"] = params[1]["b"].at[0, 5].set(0.3).at[1, 0].set(0.3)
    pop = train.make_population(params, masks, 0.1, "cosine", keys)
    status = connectivity.unit_status(jax.tree.map(lambda a: a[0], pop.params), jax.tree.map(lambda a: a[0], masks))
    assert bool(status["constant"][0][3]) and bool(status["constant"][1][5])
    assert bool(status["output_dead_only"][0][2]) and bool(status["output_dead_only"][2][0])
    cfg = train.TrainConfig(widths=widths, epochs=EPOCHS)
    full = train.train(pop, x, y, cfg)
    comp, shapes = compaction.train_compacted(pop, x, y, cfg, buckets=(2, 4))
    assert shapes == [(4, 4, 4)] * 2
    _assert_same_training(full, comp, x, y)
    # the kept-but-special units really trained: the constant unit's bias and the output-dead
    # unit's in-weight (weight decay shrinks it) moved
    f0 = jax.tree.map(lambda a: np.asarray(a[0]), full.params)
    assert f0[0]["b"][3] != 0.5 and f0[0]["w"][0, 2] != np.asarray(pop.params[0]["w"][0, 0, 2])
    # the two models compute the same network structure at mirrored positions
    s = connectivity.stats_records(connectivity.connectivity_stats_population(comp.params, comp.masks))
    assert s[0]["active_units"] == s[1]["active_units"] and s[0]["n_constant"] == s[1]["n_constant"] == 3


def test_eligible_methods():
    cfg = train.TrainConfig(widths=(8, 8, 8), epochs=1)
    for name in AT_INIT + ("dense",):
        assert compaction.eligible(registry.get(name), cfg, 50_000), name
    for name in ("gmp", "rigl", "lth"):
        assert not compaction.eligible(registry.get(name), cfg, 50_000), name


def test_train_compacted_rejects_mismatched_config(subset):
    x, y = subset
    pop = _pruned_population("random", (8, 8, 8), (10,), x, y)
    with pytest.raises(ValueError, match="cfg.widths"):
        compaction.train_compacted(pop, x, y, train.TrainConfig(widths=(16, 16, 16), epochs=1))
