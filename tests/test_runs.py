"""Run configs to records: explicit masks, their validation, and the record contents."""
import numpy as np
import pytest

from sparsejax import runs
from sparsejax.sweep import identity

WIDTHS = [3, 3, 3]


def _masks(rng):
    shapes = [(3, 2), (3, 3), (3, 3), (1, 3)]  # PyTorch (out, in)
    return [(rng.random(s) < 0.6).astype(np.uint8) | np.eye(*s, dtype=np.uint8) for s in shapes]


def test_explicit_mask_trains_only_its_weights():
    rng = np.random.default_rng(0)
    masks = _masks(rng)
    cfg = {"method": "dense", "widths": WIDTHS, "mask": masks, "epochs": 1}
    other = {"method": "dense", "widths": WIDTHS, "epochs": 1}
    rec, dense = runs.run_population([cfg, other])
    assert rec["config"]["mask"][0].startswith("mask:3x2:")  # stored encoded in the config
    assert rec["run_id"] != dense["run_id"] == identity.run_id(other)
    for layer, m in zip(rec["masks"], masks):
        np.testing.assert_array_equal(np.asarray(layer["w"]).T, m.astype(bool))
    for layer, m in zip(rec["params"], masks):
        assert np.all(np.asarray(layer["w"]).T[m == 0] == 0)
    assert rec["mask_weight_count"] == int(sum(m.sum() for m in masks))
    assert dense["mask_weight_count"] == 3 * 2 + 9 + 9 + 3


@pytest.mark.parametrize("bad,needle", [
    (lambda m: m[:3], "need 4 per-layer masks"),
    (lambda m: [m[0].T] + m[1:], "layer 0 has shape (2, 3)"),
    (lambda m: m[:1] + [m[1] * 2] + m[2:], "0/1 matrix"),
])
def test_bad_explicit_masks_name_the_field(bad, needle):
    cfg = {"method": "dense", "widths": WIDTHS, "mask": bad(_masks(np.random.default_rng(1))), "epochs": 1}
    with pytest.raises(ValueError, match="^mask: .*" + needle.replace("(", r"\(").replace(")", r"\)")):
        runs.validate(cfg)


def test_explicit_mask_needs_method_dense():
    cfg = {"method": "snip", "budget": 10, "widths": WIDTHS, "mask": _masks(np.random.default_rng(2)), "epochs": 1}
    with pytest.raises(ValueError, match="^mask: an explicit mask trains with method 'dense'"):
        runs.validate(cfg)


def test_same_init_file_by_relative_and_absolute_path_is_one_run(tmp_path, monkeypatch):
    from sparsejax import mlp
    import jax
    mlp.save_npz(str(tmp_path / "i.npz"), mlp.init(jax.random.PRNGKey(0), (3, 3, 3)))
    monkeypatch.chdir(tmp_path)
    rel = {"method": "dense", "widths": [3, 3, 3], "init": "i.npz", "epochs": 1}
    absolute = dict(rel, init=str(tmp_path / "i.npz"))
    assert identity.run_id(runs.validate(rel)) == identity.run_id(runs.validate(absolute))


def test_data_seed_gives_runs_one_data_order():
    """Runs sharing a data_seed draw the same minibatch sequence (independently checked through
    shuffle.batch_indices); other runs keep their own. A run's numbers do not depend on whether
    its population shares one order (the kernel then gathers each minibatch once for all)."""
    import jax.numpy as jnp

    from sparsejax import shuffle
    from sparsejax.sweep import identity

    def search(i, **kw):
        return {"method": "search", "widths": [3, 2, 2], "structure": [3, 2, 2], "mask_index": i, "epochs": 1,
                "lr": 0.1, **kw}
    cfgs = [runs.validate(c) for c in (search(3, data_seed=5), search(40, data_seed=5), search(3),
                                       search(3, data_seed=6), search(41, data_seed=5, lr=0.05))]
    keys = np.asarray(runs.data_keys(cfgs, runs.run_keys([identity.run_id(c) for c in cfgs])))
    order = [np.asarray(shuffle.batch_indices(jnp.asarray(k), jnp.int32(7), 49_982, 128, 390)) for k in keys]
    np.testing.assert_array_equal(order[0], order[1])
    np.testing.assert_array_equal(order[0], order[4])
    assert not np.array_equal(order[0], order[2]) and not np.array_equal(order[0], order[3])
    assert len({identity.run_id(c) for c in cfgs}) == 5
    shared = runs.run_population([cfgs[0], cfgs[1], cfgs[4]])  # one order: gathered once
    mixed = runs.run_population([cfgs[0], cfgs[2], cfgs[1]])    # mixed orders: per model
    for a, b in ((shared[0], mixed[0]), (shared[1], mixed[2])):
        assert a["run_id"] == b["run_id"] and a["accuracy"] == b["accuracy"]
        for la, lb in zip(a["params"], b["params"]):
            np.testing.assert_array_equal(la["w"], lb["w"])
