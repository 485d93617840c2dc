"""Cubist Spiral against the facts of SPEC §1."""
import numpy as np

from sparsejax import data

ARM_A = [831, 928, 1025, 1123, 1220, 1318, 1415, 1513, 1610, 1708, 1806, 1903, 2001, 2099, 2197, 2294]
ARM_B = [609, 734, 860, 987, 1114, 1241, 1369, 1497, 1624, 1752, 1880, 2008, 2137, 2265, 2393, 2521]


def test_counts_and_labels():
    x, y = data.cubist_spiral()
    assert x.shape == (49982, 2) and x.dtype == np.float32
    assert y.shape == (49982,)
    assert int((y == 0).sum()) == int((y == 1).sum()) == 24991
    assert np.all(y[:24991] == 0) and np.all(y[24991:] == 1)  # arm A = label 0 first


def test_per_segment_counts():
    arm_a, arm_b = data.spiral_vertices()
    assert data.segment_counts(arm_a).tolist() == ARM_A
    assert data.segment_counts(arm_b).tolist() == ARM_B


def test_normalisation_box_and_first_points():
    x, y = data.cubist_spiral()
    np.testing.assert_allclose(x.min(0), [-1.687199, -2.201602], atol=1e-6)
    np.testing.assert_allclose(x.max(0), [1.770380, 1.742187], atol=1e-6)
    np.testing.assert_allclose(x[0], [0.584557, -0.800966], atol=1e-6)
    np.testing.assert_allclose(x[y == 1][0], [0.426233, -0.478896], atol=1e-6)
    np.testing.assert_allclose(x.astype(np.float64).mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(x.astype(np.float64).std(0, ddof=1), 1, atol=1e-6)


def test_duplicate_interior_vertices():
    x, _ = data.cubist_spiral()
    _, counts = np.unique(x, axis=0, return_counts=True)
    assert int((counts - 1).sum()) == 30


def test_classic_spiral_and_grid():
    x, y = data.classic_spiral(n_per_class=1000)
    assert x.shape == (2000, 2) and y.sum() == 1000
    np.testing.assert_allclose(x.std(0, ddof=1), 1, atol=1e-5)
    g = data.grid()
    assert g.shape == (512 * 512, 2)
    assert g.min() == -2.25 and g.max() == 2.25
    assert g[0].tolist() == [-2.25, 2.25] and g[511].tolist() == [2.25, 2.25]
