"""The registry: names in the paper's order, unknown names, configured instances. (Every method
through prune + train: tests/test_methods_table.py.)"""
import dataclasses

import pytest

from sparsejax.pruning import registry


def test_registry_names_and_unknown():
    # the paper's methods first, in this order; later registrations (new methods) follow
    assert registry.names()[:11] == ["dense", "random", "gmp", "lth", "snip", "iter_snip", "force", "grasp",
                                     "synflow", "prospr", "rigl"]
    with pytest.raises(ValueError, match="unknown method 'magic'; allowed: dense, random"):
        registry.get("magic")
    assert registry.get("snip").init_scheme == "xavier_normal" == registry.get("grasp").init_scheme
    assert registry.get("synflow").init_scheme == "torch"


def test_instance_configures_params_and_is_static():
    gmp = registry.instance("gmp", {"cubic_events": 150})
    assert gmp.params.cubic_events == 150 and gmp.params.interval_divisor == 200
    assert gmp == registry.instance("gmp", {"cubic_events": 150}) and hash(gmp) == hash(registry.instance("gmp", {"cubic_events": 150}))
    assert gmp != registry.get("gmp") and registry.get("gmp").params.cubic_events == 199  # the default untouched
    assert registry.instance("gmp", dataclasses.replace(registry.get("gmp").params, cubic_events=150)) == gmp
    with pytest.raises(ValueError, match="cubic_events: must be an integer >= 1"):
        registry.instance("gmp", {"cubic_events": 0})
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.get("gmp"))
    # the hook is equal by value and carries the params that shape it
    from sparsejax import train
    cfg = train.TrainConfig(widths=(4, 4, 4))
    assert registry.instance("gmp", {"interval_divisor": 100}).hook(cfg, 49_982) != registry.get("gmp").hook(cfg, 49_982)
    assert registry.instance("rigl", {"delta_t": 50}).hook(cfg, 49_982) != registry.get("rigl").hook(cfg, 49_982)
