"""Every registered pruning method through prune + train on a tiny problem (one test, all methods)."""
import jax
import numpy as np
import pytest

from sparsejax import mlp, runs
from sparsejax.pruning import registry

WIDTHS = (4, 4, 4)  # 44 weights
BUDGETS = (9, 20)


@pytest.mark.parametrize("name", registry.names())
def test_method_prunes_to_budget_and_trains(name):
    method = registry.get(name)
    base = {"method": name, "widths": list(WIDTHS), "epochs": 1, "lr": 0.1, "schedule": "cosine"}
    cfgs = [dict(base, budget=b) for b in BUDGETS] if method.needs_budget else [base]
    seen = []

    def observe(pop):
        for lp, lm in zip(jax.tree.leaves(pop.params), jax.tree.leaves(pop.masks)):
            assert np.all(np.asarray(lp)[np.asarray(lm) == 0] == 0.0), "a masked entry is nonzero"
        seen.append(1)

    records = runs.run_population(cfgs, chunk_steps=130, observe=observe)
    assert len(seen) == (5 * 3 if name == "lth" else 3)
    n_w = mlp.weight_count(WIDTHS)
    for cfg, rec in zip(cfgs, records):
        for key in ("run_id", "config", "accuracy", "loss", "weight_nnz", "model_nnz", "diverged",
                    "mask_weight_count", "bias_rule", "masks", "params", "train_seconds"):
            assert key in rec, key
        assert 0.0 <= rec["accuracy"] <= 1.0 and np.isfinite(rec["loss"]) and not rec["diverged"]
        budget = cfg.get("budget", n_w)
        wm = [np.asarray(l["w"], np.float32) for l in rec["masks"]]
        assert rec["mask_weight_count"] == budget == int(sum(m.sum() for m in wm))
        assert rec["weight_nnz"] <= budget
        # the bias rule: hidden bias i kept iff unit i has an outgoing weight; output bias kept
        expected = [np.asarray(b) > 0 for b in mlp.bias_masks_out_degree(wm)]
        for layer, exp in zip(rec["masks"], expected):
            np.testing.assert_array_equal(np.asarray(layer["b"]), exp)
        params = rec["params"]
        assert rec["weight_nnz"] == int(sum(np.count_nonzero(l["w"]) for l in params))
        assert rec["model_nnz"] == rec["weight_nnz"] + int(sum(np.count_nonzero(l["b"]) for l in params))


def test_registry_names_and_unknown():
    # the paper's methods first, in this order; later registrations (new methods) follow
    assert registry.names()[:11] == ["dense", "random", "gmp", "lth", "snip", "iter_snip", "force", "grasp",
                                     "synflow", "prospr", "rigl"]
    with pytest.raises(ValueError, match="unknown method 'magic'; allowed: dense, random"):
        registry.get("magic")
    assert registry.get("snip").init_scheme == "xavier_normal" == registry.get("grasp").init_scheme
    assert registry.get("synflow").init_scheme == "torch"
