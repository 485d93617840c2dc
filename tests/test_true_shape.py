"""Phase-1 runs train at their true (bucketed) shape: the same numbers as the paper's masked
width-16 network up to float summation order, records at the configured width."""
import numpy as np
import pytest

from sparsejax import runs


@pytest.mark.parametrize("structure", [(7, 3, 2), (1, 2, 5)])
def test_true_shape_equals_masked_wide(structure):
    cfgs = [{"method": "structured", "widths": [16, 16, 16], "structure": list(structure), "epochs": 1,
             "lr": lr, "schedule": s} for lr, s in ((0.1, "constant"), (0.05, "cosine"))]
    assert runs.trained_widths(runs.validate(cfgs[0])) == tuple(min(16, -(-d // 4) * 4) for d in structure)
    small = runs.run_population(cfgs, chunk_steps=390)
    wide = runs.run_population(cfgs, chunk_steps=390, true_shape=False)
    for a, b in zip(small, wide):
        assert a["run_id"] == b["run_id"]
        assert a["trained_widths"] != b["trained_widths"] == [16, 16, 16]
        assert abs(a["accuracy"] - b["accuracy"]) <= 2e-4
        assert a["model_nnz"] == b["model_nnz"] and a["weight_nnz"] == b["weight_nnz"]
        assert a["connectivity"] == b["connectivity"]
        for la, lb in zip(a["masks"], b["masks"]):
            np.testing.assert_array_equal(la["w"], lb["w"])
            np.testing.assert_array_equal(la["b"], lb["b"])
        for la, lb in zip(a["params"], b["params"]):
            assert la["w"].shape == lb["w"].shape
            np.testing.assert_allclose(la["w"], lb["w"], atol=2e-4)
            np.testing.assert_allclose(la["b"], lb["b"], atol=2e-4)
        d1 = structure[0]  # units beyond the configuration never carry a value
        assert np.all(a["params"][0]["w"][:, d1:] == 0) and np.all(a["params"][0]["b"][d1:] == 0)


def test_compacted_pruning_runs_equal_full_width_and_say_so():
    cfgs = [{"method": m, "widths": [32, 32, 32], "budget": b, "epochs": 1, "lr": 0.1}
            for m, b in (("snip", 20), ("synflow", 40))]
    for cfg in cfgs:
        small = runs.run_population([cfg])
        full = runs.run_population([cfg], compact=False)
        for a, b in zip(small, full):
            assert a["run_id"] == b["run_id"]
            assert b["numeric_path"]["compaction"] == "off" and b["trained_widths"] == [32, 32, 32]
            assert a["numeric_path"]["compaction"] == "x".join(map(str, a["trained_widths"]))
            assert max(a["trained_widths"]) < 32
            assert abs(a["accuracy"] - b["accuracy"]) <= 2e-4
            assert a["model_nnz"] == b["model_nnz"] and a["connectivity"] == b["connectivity"]
            for la, lb in zip(a["masks"], b["masks"]):
                np.testing.assert_array_equal(la["w"], lb["w"])
