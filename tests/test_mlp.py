"""The masked-MLP pytrees: counts, masks, bias rules, checkpoints with PyTorch names, slicing."""
import os
import subprocess
import sys
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import mlp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH95 = os.path.join(REPO, "..", "shared", "bench-inits", "bench95_init.npz")


def test_weight_counts_and_structured_nnz():
    assert mlp.weight_count((16, 16, 16)) == 560 and mlp.weight_count((256,) * 3) == 131_840
    assert [mlp.structured_nnz(c) for c in [(3, 3, 3), (7, 3, 3), (6, 3, 2), (3, 2, 2)]] == [37, 61, 50, 26]
    p = mlp.init(jax.random.PRNGKey(0))
    m = mlp.structured_masks((16, 16, 16), (7, 3, 3))
    assert int(mlp.model_nnz(mlp.apply_masks(p, m))) == 61
    with pytest.raises(ValueError, match="widths"):
        mlp.check_widths([16, 0, 16])


def test_inits_follow_pytorch_bounds_and_xavier_std():
    p = mlp.init_population(jax.random.split(jax.random.PRNGKey(0), 64), (16, 16, 16))
    w2 = np.asarray(p[1]["w"])
    assert np.abs(w2).max() <= 0.25 and np.abs(w2).max() > 0.24  # U(-1/sqrt(16), 1/sqrt(16))
    assert np.abs(np.asarray(p[0]["b"])).max() <= 1 / np.sqrt(2)
    x = mlp.init_population(jax.random.split(jax.random.PRNGKey(1), 256), (16, 16, 16), "xavier_normal")
    np.testing.assert_allclose(np.asarray(x[1]["w"]).std(), np.sqrt(2 / 32), rtol=0.03)
    with pytest.raises(ValueError, match="init scheme"):
        mlp.init(jax.random.PRNGKey(0), scheme="he")


def test_bias_rules():
    # layer 2 (in, out) = (3, 2): unit 1 of layer 1 has no outgoing weight; unit 0 of layer 2 no incoming
    wm = [np.ones((2, 3)), np.array([[0, 1], [0, 0], [0, 1]], float), np.ones((2, 1))]
    out_deg = [np.asarray(b) for b in mlp.bias_masks_out_degree([jnp.asarray(w) for w in wm])]
    in_deg = [np.asarray(b) for b in mlp.bias_masks_in_degree([jnp.asarray(w) for w in wm])]
    assert out_deg[0].tolist() == [1, 0, 1] and out_deg[1].tolist() == [1, 1] and out_deg[2].tolist() == [1]
    assert in_deg[0].tolist() == [1, 1, 1] and in_deg[1].tolist() == [0, 1] and in_deg[2].tolist() == [1]


def test_random_masks_are_exact_for_traced_budgets():
    f = jax.jit(lambda k, b: sum(m.sum() for m in mlp.random_weight_masks(k, (16, 16, 16), b)))
    for b in (1, 55, 559):
        assert int(f(jax.random.PRNGKey(b), b)) == b


def test_npz_round_trip_with_torch_names(tmp_path):
    p = mlp.init(jax.random.PRNGKey(3), (5, 4, 3))
    path = str(tmp_path / "net.npz")
    mlp.save_npz(path, p)
    with np.load(path) as f:
        assert sorted(f.files) == sorted(f"{n}.{k}" for n in mlp.TORCH_NAMES_4 for k in ("weight", "bias"))
        assert f["first_layer.weight"].shape == (5, 2) and f["clf.weight"].shape == (1, 3)
    q = mlp.load_npz(path)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_array_equal(a, b)
    x = jax.random.normal(jax.random.PRNGKey(0), (7, 2))
    np.testing.assert_allclose(mlp.apply(p, x), mlp.apply(q, x))
    np.savez(str(tmp_path / "bad.npz"), **{"first_layer.weight": np.zeros((5, 2))})
    with pytest.raises(ValueError, match="missing array first_layer.bias"):
        mlp.load_npz(str(tmp_path / "bad.npz"))


def test_slice_width_keeps_the_top_left_units():
    p = mlp.init(jax.random.PRNGKey(4), (16, 16, 16))
    s = mlp.slice_width(p, 3)
    assert mlp.widths_of(s) == (3, 3, 3)
    np.testing.assert_array_equal(s[1]["w"], p[1]["w"][:3, :3])
    np.testing.assert_array_equal(s[3]["w"], p[3]["w"][:3, :])
    # the sliced network equals the wide one with every other unit masked out
    m = mlp.structured_masks((16, 16, 16), (3, 3, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
    np.testing.assert_allclose(mlp.apply(s, x), mlp.apply(mlp.apply_masks(p, m), x), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not os.path.exists(BENCH95), reason="the paper's init files are not beside the repository")
def test_reads_the_papers_init():
    p = mlp.load_npz(BENCH95, (16, 16, 16))
    assert mlp.widths_of(p) == (16, 16, 16) and int(mlp.model_nnz(p)) == 609


def test_train_launcher_writes_one_line_per_model(tmp_path):
    out = tmp_path / "t.jsonl"
    cmd = [sys.executable, "-m", "experiments.train", "--widths=4", "--densities=0.5,0.9", "--seeds=0,1",
           "--epochs=1", f"--output={out}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(rows) == 4 and len({r["run_id"] for r in rows}) == 4
    for r in rows:
        assert r["config"]["method"] == "random" and 0 <= r["accuracy"] <= 1
        assert r["weight_nnz"] <= round(r["config"]["density"] * 44)
    bad = subprocess.run(cmd[:3] + ["--lrs=-1", f"--output={tmp_path / 'bad.jsonl'}"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--lrs" in bad.stderr and not (tmp_path / "bad.jsonl").exists()
