"""viz.network.analyse shows sparsejax.connectivity's unit statuses and counts: checked against a
brute-force path search (reach forward from the inputs and backward from the output)."""
from __future__ import annotations

import numpy as np

from sparsejax.viz import network


def _brute(params):
    sup = [p["w"] != 0 for p in params]
    dims = [sup[0].shape[0]] + [s.shape[1] for s in sup]
    f = [np.ones(dims[0], bool)]
    for s in sup:  # unit j reachable from an input
        f.append(np.array([any(f[-1][i] and s[i, j] for i in range(s.shape[0])) for j in range(s.shape[1])]))
    g = [np.ones(dims[-1], bool)]
    for s in reversed(sup):  # unit i reaches the output
        g.insert(0, np.array([any(s[i, j] and g[0][j] for j in range(s.shape[1])) for i in range(s.shape[0])]))
    status, eff = [], 0
    for l in range(1, len(dims) - 1):
        b_on = params[l - 1]["b"] != 0
        st = []
        for i in range(dims[l]):
            st.append("active" if f[l][i] and g[l][i] else "constant" if g[l][i] and b_on[i] else
                      "input_dead" if g[l][i] else "output_dead" if f[l][i] else "dead")
        status.append(st)
    for l, s in enumerate(sup):
        eff += int(sum(s[i, j] and f[l][i] and g[l + 1][j] for i in range(s.shape[0]) for j in range(s.shape[1])))
    eff_b = sum(int(np.sum((p["b"] != 0) & g[l + 1])) for l, p in enumerate(params))
    return status, {"effective_weight_nnz": eff, "effective_model_nnz": eff + eff_b,
                    "direct_weight_nnz": int(sum(s.sum() for s in sup)),
                    "active_units": [int(np.sum(f[l] & g[l])) for l in range(1, len(dims) - 1)],
                    "n_input_dead": int(sum((~f[l]).sum() for l in range(1, len(dims) - 1))),
                    "n_output_dead": int(sum((~g[l]).sum() for l in range(1, len(dims) - 1))),
                    "n_constant": sum(st.count("constant") for st in status)}


def test_analyse_matches_brute_force_paths():
    rng = np.random.default_rng(0)
    dims = (2, 5, 4, 3, 1)
    seen = set()
    for density in (0.25, 0.35, 0.5) * 4:
        params = tuple({"w": (rng.normal(size=(a, b)) * (rng.random((a, b)) < density)).astype(np.float32),
                        "b": (rng.normal(size=b) * (rng.random(b) < 0.6)).astype(np.float32)}
                       for a, b in zip(dims[:-1], dims[1:]))
        an = network.analyse(params)
        status, stats = _brute(params)
        assert an.status[1:-1] == status
        for k, v in stats.items():
            assert an.stats[k] == v, k
        seen.update(s for st in status for s in st)
    assert {"active", "constant", "input_dead", "output_dead", "dead"} <= seen  # every status met
