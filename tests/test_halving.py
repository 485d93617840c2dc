"""Successive halving over prefixes of the protocol (issue #15): a run trained in prefixes is
bit-identical to the same run trained straight through; a killed search resumes from stored
states; partial states verify their checksums.

Tiny shapes: (2,2,2) phase-2 masks, batch 4096 (12 steps per epoch), 2 epochs, chunks of 5
steps (so a rung at step 12 falls inside a chunk and the grid alignment is exercised)."""
import numpy as np
import pytest

from sparsejax import data, runs, train
from sparsejax.search import beyond, halving
from sparsejax.sweep import store as store_lib
from sparsejax.sweep.store import DamagedRecordError, Store

FAST = dict(batch_size=4096, epochs=2)
CHUNK = 5


def _configs(n_masks=4, lrs=(0.1, 0.2), schedules=("cosine", "step"), seeds=(0,)):
    return beyond.mask_configs((2, 2, 2), range(10, 10 + n_masks), lrs, schedules, seeds, **FAST)


def _bits(tree):
    return [np.asarray(a).view(np.uint32) for a in train.jax.tree.leaves(tree)]


def test_train_prefix_then_rest_equals_straight_bitwise():
    cfgs = _configs(2)
    straight = runs.prepare_population(cfgs, CHUNK)
    x, y = data.load("cubist_spiral")
    full = train.train(straight.pop, x, y, straight.tcfg)
    a = train.train(runs.prepare_population(cfgs, CHUNK).pop, x, y, straight.tcfg, stop_step=12)
    b = train.train(a, x, y, straight.tcfg, start_step=12)
    for u, v in zip(_bits(full), _bits(b)):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(_bits(a.params), _bits(full.params)))
    with pytest.raises(ValueError, match="start_step"):
        train.train(a, x, y, straight.tcfg, start_step=13, stop_step=12)


def test_promoted_equals_straight_through_the_store(tmp_path):
    """advance 0 -> 1, save every leaf in the store, restore, advance 1 -> 2, finish: the records
    equal run_population's, bit for bit on params."""
    cfgs = _configs(2)
    straight = runs.run_population(cfgs, CHUNK)
    st = runs.advance_population(runs.prepare_population(cfgs, CHUNK), 1)
    leaves = runs.population_leaves(st)
    with Store(str(tmp_path / "s.sqlite")) as s:
        store_lib.write_partials(s, [(rid, 1, {"accuracy": 0.5}, [a[i] for a in leaves])
                                     for i, rid in enumerate(st.ids)])
        saved = store_lib.read_partials(s, st.ids, 1)
        assert store_lib.partial_metrics(s, st.ids)[(st.ids[0], 1)] == {"accuracy": 0.5}
        assert store_lib.read_partials(s, st.ids, 2) == {}
    back = runs.restore_population(cfgs, [np.stack(a) for a in zip(*[saved[r] for r in st.ids])], 1,
                                   chunk_steps=CHUNK)
    promoted = runs.finish_population(runs.advance_population(back, 2))
    for p, q in zip(promoted, straight):
        assert p["run_id"] == q["run_id"]
        for key in ("accuracy", "loss", "model_nnz", "weight_nnz", "diverged", "connectivity"):
            assert p[key] == q[key]
        for u, v in zip(_bits(p["params"]), _bits(q["params"])):
            np.testing.assert_array_equal(u, v)


def test_damaged_partial_state_is_refused(tmp_path):
    path = str(tmp_path / "s.sqlite")
    with Store(path) as s:
        store_lib.write_partials(s, [("r1", 1, {"accuracy": 0.5}, [np.ones(3, np.float32)])])
        s._conn.execute("UPDATE partials SET metrics='{\"accuracy\":0.9}'")
        with pytest.raises(DamagedRecordError, match="r1"):
            store_lib.partial_metrics(s, ["r1"])


def test_select_keeps_best_per_bracket_and_diverged_last():
    s = halving.HalvingSettings(rungs=(1, 2), keep=0.5)
    m = {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.8}, "c": {"accuracy": 0.99, "diverged": True},
         "d": {"accuracy": 0.1}, "e": {"accuracy": 0.2}, "f": {"accuracy": 0.2}}
    br = {"a": 0, "b": 0, "c": 0, "d": 1, "e": 1, "f": 1}
    assert halving.select(list("abcdef"), m, br, s) == ["a", "b", "e", "f"]
    loss = {"a": {"loss": 0.3}, "b": {"loss": 0.1}}
    assert halving.select(["a", "b"], loss, {"a": 0, "b": 0},
                          halving.HalvingSettings(rungs=(1, 2), keep=0.5, signal="loss")) == ["b"]
    assert halving.halving_epochs(16, halving.HalvingSettings(rungs=(5, 15, 50), keep=0.25)) == 16 * 5 + 4 * 10 + 1 * 35


def test_halving_records_equal_straight_and_resume_after_kill(tmp_path):
    cfgs = _configs(4)  # 16 runs, 4 brackets (one per mask)
    s = halving.HalvingSettings(rungs=(1, 2), keep=0.5, population_size=4, chunk_steps=CHUNK)
    bracket = lambda c: c["mask_index"]  # noqa: E731
    ref = halving.run_halving(cfgs, str(tmp_path / "ref.sqlite"), s, bracket, log=lambda m: None)
    assert len(ref.records) == 8  # 2 of the 4 runs of each mask survive the rung
    assert ref.model_steps == 16 * 12 + 8 * 12
    straight = {r["run_id"]: r for r in runs.run_population([c for c in cfgs], CHUNK)}
    for rec in ref.records:
        assert rec["metrics"]["halving"] == {"rungs": [1, 2], "passed": [1], "keep": 0.5, "signal": "accuracy"}
        q = straight[rec["run_id"]]
        assert (rec["accuracy"], rec["loss"], rec["model_nnz"]) == (q["accuracy"], q["loss"], q["model_nnz"])
    # the survivors are the best half of each bracket at epoch 1 (independent ranking)
    for mi in range(10, 14):
        ids = [r for r in ref.rung_metrics if straight[r]["config"]["mask_index"] == mi]
        acc1 = sorted(ids, key=lambda r: (-ref.rung_metrics[r][1]["accuracy"], r))[:2]
        assert {r["run_id"] for r in ref.records if r["config"]["mask_index"] == mi} == set(acc1)

    # a kill after the first population of the last rung, then a resume
    path = str(tmp_path / "killed.sqlite")

    class Kill(Exception):
        pass

    def kill(rung, n):
        if rung == 2:
            raise Kill()
    with pytest.raises(Kill):
        halving.run_halving(cfgs, path, s, bracket, log=lambda m: None, after_population=kill)
    with Store(path, create=False) as st:
        assert len(st) == 4 and len(store_lib.partial_metrics(st, ref.rung_metrics)) == 16
    again = halving.run_halving(cfgs, path, s, bracket, log=lambda m: None)
    assert again.model_steps == 4 * 12  # only the 4 survivors not yet finished, from epoch 1
    assert sorted((r["run_id"], r["accuracy"], r["loss"]) for r in again.records) == \
        sorted((r["run_id"], r["accuracy"], r["loss"]) for r in ref.records)
    assert halving.run_halving(cfgs, path, s, bracket, log=lambda m: None).model_steps == 0


def test_would_cut_on_an_exhaustive_search():
    s = halving.HalvingSettings(rungs=(5, 15, 50), keep=0.5)
    rm = {"w": {5: {"accuracy": 0.6}, 15: {"accuracy": 0.9}, 50: {"accuracy": 0.99}},
          "x": {5: {"accuracy": 0.7}, 15: {"accuracy": 0.8}, 50: {"accuracy": 0.9}},
          "y": {5: {"accuracy": 0.8}, 15: {"accuracy": 0.95}, 50: {"accuracy": 0.95}},
          "z": {5: {"accuracy": 0.5}, 15: {"accuracy": 0.5}, 50: {"accuracy": 0.5}}}
    br = dict.fromkeys(rm, 0)
    assert halving.would_cut(rm, br, "w", s) == 5  # ranked 3rd of 4 at epoch 5
    assert halving.would_cut(rm, br, "y", s) is None
    assert halving.would_cut(rm, br, "w", halving.HalvingSettings(rungs=(5, 15, 50), keep=0.75)) is None


def test_audit_counts_cut_winners_per_bracket():
    rm = {"w": {5: {"accuracy": 0.6, "loss": 0.2}, 50: {"accuracy": 0.99}},
          "x": {5: {"accuracy": 0.7, "loss": 0.3}, 50: {"accuracy": 0.9}},
          "y": {5: {"accuracy": 0.9, "loss": 0.1}, 50: {"accuracy": 0.8}},
          "v": {5: {"accuracy": 0.1, "loss": 0.9}, 50: {"accuracy": 0.5}},
          "u": {5: {"accuracy": 0.2, "loss": 0.8}}}  # not trained to the end: ignored
    br = {"w": 0, "x": 0, "y": 0, "v": 1, "u": 1}
    rows = halving.audit(rm, br, (5, 50), (0.5,))
    # bracket 0: winner w is 3rd of 3 by accuracy at epoch 5 (cut), 2nd by loss (kept, ceil(1.5)=2)
    assert rows == [{"signal": "accuracy", "keep": 0.5, "brackets": 2, "cut_at": {5: 1}, "kept": 1},
                    {"signal": "loss", "keep": 0.5, "brackets": 2, "cut_at": {5: 0}, "kept": 2}]


def test_final_top_ranks_by_hand():
    rm = {"w": {5: {"accuracy": 0.6}, 50: {"accuracy": 0.99}},
          "x": {5: {"accuracy": 0.7}, 50: {"accuracy": 0.9}},
          "y": {5: {"accuracy": 0.9}, 50: {"accuracy": 0.8}}}
    got = halving.final_top_ranks(rm, dict.fromkeys(rm, 0), (5, 50), top=2)
    assert got == {0: [{"run_id": "w", "final": 0.99, "n": 3, "ranks": {5: 3}},
                       {"run_id": "x", "final": 0.9, "n": 3, "ranks": {5: 2}}]}
