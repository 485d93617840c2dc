"""Count schedules the trainer uses against the reference code's own expressions (issue #10).

The reference (stephenqz/sparsest) computes every count with Python floats / NumPy float64 and
truncates with int(). The functions ``ref_*`` below re-type those expressions from the reference's
training loops (not from sparsejax), then apply our one documented change: floor at B, cap at N,
last point exactly B (SPEC §5). They are compared, over the paper's whole grid, with the tables
the trainer actually hands to the device (``Method.count_table`` / ``prepare`` / what
``_prune_at_init`` receives).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparsejax import mlp, train
from sparsejax.pruning import base, magnitude, registry, rigl, schedules, topk

WIDTHS = (3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256)
BUDGETS = tuple(range(15, 27)) + (30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65)
T = 50 * 390  # 19,500 iterations


def n_weights(w: int) -> int:
    return 2 * w + w * w + w * w + w  # the reference config's total_weights


GRID = [(w, b) for w in WIDTHS for b in BUDGETS if b < n_weights(w)]


def floor_at_budget(counts, n, b):
    out = [min(max(int(c), b), n) for c in counts]
    out[-1] = b
    return np.asarray(out)


def ref_gmp_raw(n, b, total_iters=T):
    """main_loop.py: PRUNINGTIMES = 199.0, IDXMOD = int(total/(PRUNINGTIMES+1)); at every
    iteration with it % IDXMOD == 0 and it > 0: frac = it/(PRUNINGTIMES·IDXMOD),
    remain = B + (N − B)·(1 − frac)³, magnitude_prune(model, int(remain))."""
    pruning_times = 199.0
    idxmod = int(total_iters / (pruning_times + 1))
    out = []
    for it in range(total_iters):
        if it % idxmod == 0 and it > 0:
            sparsity_frac = it / (pruning_times * idxmod)
            out.append(int(b + (n - b) * ((1 - sparsity_frac) ** 3)))
    return out


def ref_synflow_raw(n, b):
    """SynFlow.py: ratio = (it+1.0)/100.0; prune int(N − B^ratio / N^(ratio−1)) (none if < 1)."""
    out = []
    for it in range(100):
        ratio = (it + 1.0) / 100.0
        to_prune = int(n - ((b ** ratio) / (n ** (ratio - 1.0))))
        out.append(n - to_prune if to_prune >= 1 else n)
    return out


def ref_iterative_raw(n, b):
    """FORCE.py 'exp' mode with prune_factor = B/float(N), 10 steps: keep int(N · perc)."""
    pf = b / float(n)
    steps = [np.exp(0 - ((x + 1) * (0 - np.log(pf)) / 10)) for x in range(10)]
    return [int(n * perc) for perc in steps]


def ref_lth_raw(n, b, epochs=250):
    """LTH_loop.py: at epoch % 50 == 0 (not the last): power = (epoch//50)/(epochs//50 − 1),
    keep int(N · (float(B)/N)^power)."""
    out = []
    for epoch in range(1, epochs + 1):
        if epoch % 50 == 0 and epoch != epochs:
            power = (epoch // 50) / (epochs // 50 - 1)
            out.append(int(n * ((float(b) / n) ** power)))
    return out


def ref_rigl(total_iters=T, delta=100):
    """rigL.py: after each backward pass step += 1; update iff step % ΔT == 0 and step < T_end
    (T_end = int(0.75·total)); drop fraction α/2·(1 + cos(step·π/T_end)). Returns the 0-based
    iterations and the fractions."""
    t_end = int(0.75 * total_iters)
    its, fracs = [], []
    for it in range(total_iters):
        step = it + 1
        if step % delta == 0 and step < t_end:
            its.append(it)
            fracs.append(0.3 / 2 * (1 + np.cos((step * np.pi) / t_end)))
    return its, fracs


def test_grid_is_the_papers():
    # width 3 (N = 27): 15..26; width 4 (N = 44): up to 40; width 5 (N = 65): all but 65
    assert len(GRID) == 12 + 16 + 22 + 23 * 8


def test_issue_examples_pinned():
    n3, n4, n16 = n_weights(3), n_weights(4), n_weights(16)
    assert ref_gmp_raw(n3, 20)[94] == 20 and schedules.gmp_counts(n3, 20)[94] == 20  # exact 20.99917
    assert ref_synflow_raw(n16, 44)[77] == 78 and schedules.synflow_counts(n16, 44)[77] == 78
    assert ref_lth_raw(n4, 22)[0] == 36 and schedules.lth_counts(n4, 22)[0] == 36
    # 201 GMP events, the last two overshooting to B − 1 in the reference
    raw = ref_gmp_raw(560, 55)
    assert len(raw) == 201 and raw[198] == 55 and raw[199] == raw[200] == 54


@pytest.mark.parametrize("name,ref,k", [("gmp", ref_gmp_raw, 201), ("synflow", ref_synflow_raw, 100),
                                        ("iter_snip", ref_iterative_raw, 10), ("force", ref_iterative_raw, 10),
                                        ("lth", ref_lth_raw, 4)])
def test_count_tables_match_reference_on_the_whole_grid(name, ref, k):
    method = registry.get(name)
    for w in WIDTHS:
        budgets = [b for ww, b in GRID if ww == w]
        widths = (w, w, w)
        n = mlp.weight_count(widths)
        assert n == n_weights(w)
        got = method.count_table(widths, np.asarray(budgets), T)
        assert got.shape == (len(budgets), k) and got.dtype == np.int32
        for b, row in zip(budgets, got):
            np.testing.assert_array_equal(row, floor_at_budget(ref(n, b), n, b), err_msg=f"{name} w={w} B={b}")


def test_old_float32_guard_would_fail_this_test():
    """The float32 counts with the ±1e-3 guard (kept for analysis.flops) differ from the
    reference on the grid: 42 GMP (width, budget) pairs at some event (issue #10 counted 43
    against the old 199-event schedule), 23 SynFlow pairs, LTH only at (4, 22)."""
    gmp32 = jax.jit(jax.vmap(jax.vmap(magnitude.gmp_target, (0, None, None)), (None, None, 0)), static_argnums=1)
    exp32 = jax.jit(jax.vmap(jax.vmap(topk.exponential_count, (None, None, 0, None, None)),
                             (None, 0, None, None, None)), static_argnums=(0, 3, 4))
    lth32 = jax.jit(jax.vmap(magnitude.lth_targets, (None, 0)), static_argnums=0)
    gmp_pairs, syn_pairs, lth_pairs = set(), set(), set()
    for w in WIDTHS:
        budgets = np.asarray([b for ww, b in GRID if ww == w], np.int32)
        n = n_weights(w)
        g = np.asarray(gmp32(jnp.arange(1, 202), n, jnp.asarray(budgets)))
        s = np.asarray(exp32(n, jnp.asarray(budgets), jnp.arange(1, 101), 100, "ceil"))
        t = np.asarray(lth32(n, jnp.asarray(budgets)))
        for i, b in enumerate(budgets):
            b = int(b)
            if np.any(g[i] != floor_at_budget(ref_gmp_raw(n, b), n, b)):
                gmp_pairs.add((w, b))
            if np.any(s[i] != floor_at_budget(ref_synflow_raw(n, b), n, b)):
                syn_pairs.add((w, b))
            if np.any(t[i] != floor_at_budget(ref_lth_raw(n, b), n, b)):
                lth_pairs.add((w, b))
    assert (len(gmp_pairs), len(syn_pairs), sorted(lth_pairs)) == (42, 23, [(4, 22)])


def test_at_init_methods_receive_the_reference_counts(monkeypatch):
    """What base._prune_at_init (the jitted scorer every population runs) is handed."""
    seen = {}

    def capture(method, params, budget, key, lr, x_all, y_all, widths, counts_PxK=None):
        seen[method.name] = np.asarray(counts_PxK)
        return ()

    monkeypatch.setattr(base, "_prune_at_init", capture)
    w = 16
    budgets = np.asarray([b for ww, b in GRID if ww == w], np.int32)
    n = n_weights(w)
    for name, ref in [("synflow", ref_synflow_raw), ("iter_snip", ref_iterative_raw), ("force", ref_iterative_raw)]:
        registry.get(name).prune_at_init(None, jnp.asarray(budgets), None, None, np.zeros((4, 2)), np.zeros(4),
                                         (w, w, w))
        np.testing.assert_array_equal(seen[name], [floor_at_budget(ref(n, int(b)), n, int(b)) for b in budgets])


def _fake_population(widths, budgets, weight_masks=None):
    """The fields ``prepare`` reads (masks, hook_state = the budgets); no training state."""
    p = len(budgets)
    if weight_masks is None:
        weight_masks = [jnp.ones((p, i, o), jnp.float32) for i, o in mlp.layer_shapes(widths)]
    masks = tuple({"w": m, "b": jnp.ones((p, m.shape[-1]), jnp.float32)} for m in weight_masks)
    return train.Population(params=masks, masks=masks, momentum=masks, lr=jnp.ones((p,)),
                            schedule=jnp.zeros((p,), jnp.int32), key=jnp.zeros((p, 2), jnp.uint32),
                            diverged=jnp.zeros((p,), bool), hook_state=jnp.asarray(budgets, jnp.int32))


def test_gmp_hook_state_is_the_reference_table():
    for w in (3, 16, 256):
        widths = (w, w, w)
        budgets = [b for ww, b in GRID if ww == w]
        n = n_weights(w)
        pop = registry.get("gmp").prepare(_fake_population(widths, budgets), train.TrainConfig(widths=widths), 49_982)
        np.testing.assert_array_equal(np.asarray(pop.hook_state),
                                      [floor_at_budget(ref_gmp_raw(n, b), n, b) for b in budgets])


def test_rigl_events_and_drop_counts_match_reference():
    its, fracs = ref_rigl()
    np.testing.assert_array_equal(schedules.rigl_event_steps(T), its)
    assert len(its) == 146 and its[0] == 99 and its[-1] == 14599
    np.testing.assert_array_equal(schedules.rigl_drop_fractions(T), fracs)
    hook = registry.RigL().hook(train.TrainConfig(), 49_982)
    ev = np.asarray(jax.jit(jax.vmap(hook.is_event))(jnp.arange(T)))
    np.testing.assert_array_equal(np.nonzero(ev)[0], its)
    # the drop counts the hook consumes: int(n_ones · f) in float64, per layer, for ERK counts of
    # the whole grid (float32 would differ for some n_ones >= 865: checked separately below)
    erk = jax.jit(jax.vmap(rigl.erk_counts, (None, 0)), static_argnums=0)
    for w in WIDTHS:
        widths = (w, w, w)
        budgets = [b for ww, b in GRID if ww == w]
        shapes = tuple(mlp.layer_shapes(widths))
        counts = np.asarray(erk(shapes, jnp.asarray(budgets)))
        # masks holding exactly the ERK counts (prepare reads only each layer's live count)
        wm = [jnp.asarray(np.stack([(np.arange(i * o) < c).reshape(i, o) for c in counts[:, l]]), jnp.float32)
              for l, (i, o) in enumerate(shapes)]
        pop = registry.get("rigl").prepare(_fake_population(widths, budgets, wm),
                                           train.TrainConfig(widths=widths), 49_982)
        table = np.asarray(pop.hook_state)
        assert table.shape == (len(budgets), 146, 4)
        for i in range(len(budgets)):
            ref = [[int(int(c) * f) for c in counts[i]] for f in fracs]
            np.testing.assert_array_equal(table[i], ref, err_msg=f"w={w} B={budgets[i]}")
    # why host float64: float32 floor(f·n) differs from int(n·f) for some larger live counts
    f32 = np.asarray(fracs, np.float32)
    assert any(np.any(np.floor(f32 * np.float32(n)) != [int(n * f) for f in fracs]) for n in range(860, 900))
    assert math.isclose(fracs[0], 0.15 * (1 + math.cos(100 * math.pi / 14625)))
