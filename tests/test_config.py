"""RunConfig: validation in the constructor, and a run id that covers every field."""
import dataclasses

import numpy as np
import pytest

from sparsejax import config as config_lib
from sparsejax.config import RunConfig
from sparsejax.sweep import identity

# One non-default value per field, each still a valid run (on top of BASE).
BASE = dict(method="gmp", budget=40)
ALTERNATIVES = {
    "method": dict(method="snip"),
    "widths": dict(widths=(8, 8, 8)),
    "budget": dict(budget=41),
    "mask": dict(method="dense", budget=None, widths=(2, 2, 2),
                 mask=[np.ones((2, 2)), np.eye(2), np.ones((2, 2)), np.ones((1, 2))]),
    "lr": dict(lr=0.05),
    "schedule": dict(schedule="cosine"),
    "epochs": dict(epochs=49),
    "seed": dict(seed=1),
    "init": None,  # a file: covered by test_init_file_hashes_content_not_path
    "dataset": dict(dataset="classic_spiral"),
    "batch_size": dict(batch_size=64),
    "momentum": dict(momentum=0.8),
    "weight_decay": dict(weight_decay=1e-4),
    "density": dict(method="random", budget=None, density=0.1),
    "structure": dict(method="structured", budget=None, structure=(3, 3, 3)),
    "mask_index": dict(method="search", budget=None, widths=(3, 3, 3), structure=(3, 3, 3), mask_index=7),
    "mask_space": dict(method="search", budget=None, widths=(3, 3, 3), structure=(3, 3, 3), mask_index=0,
                       mask_space={"max_weight_sum": 10}),
    "init_sha256": None,  # derived from the init file, never set by hand
    "optimal_width": dict(optimal_width=8),
    "milestones": dict(milestones=(10, 30)),
    "lr_gamma": dict(lr_gamma=0.5),
    "method_params": None,  # needs a method with params: test_method_params_change_the_id
    "data_seed": dict(data_seed=3),
}


def test_every_field_is_listed():
    assert set(ALTERNATIVES) == {f.name for f in dataclasses.fields(RunConfig)}


@pytest.mark.parametrize("field", sorted(k for k, v in ALTERNATIVES.items() if v is not None))
def test_every_field_changes_the_id(field):
    base = RunConfig.from_dict(BASE).run_id
    assert RunConfig.from_dict({**BASE, **ALTERNATIVES[field]}).run_id != base


def test_spelled_defaults_keep_the_id():
    short = RunConfig.from_dict(BASE)
    spelled = RunConfig.from_dict({**BASE, "milestones": [15, 30], "lr_gamma": 0.1, "method_params": None,
                                   "epochs": 50.0, "lr": np.float32(0.1), "data_seed": None})
    assert short.run_id == spelled.run_id == identity.run_id(BASE)
    # the ids of configs stored before these fields existed are unchanged
    assert "milestones" not in identity.canonical(short.to_dict())
    assert "data_seed" not in identity.canonical(short.to_dict())


def test_init_file_hashes_content_not_path(tmp_path, monkeypatch):
    from sparsejax import mlp
    import jax
    params = mlp.init(jax.random.PRNGKey(0), (4, 4, 4))
    a = tmp_path / "a.npz"
    mlp.save_npz(str(a), params)
    b = tmp_path / "sub" / "b.npz"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    monkeypatch.chdir(tmp_path)
    ra = RunConfig.from_dict(dict(widths=(4, 4, 4), init="a.npz"))
    rb = RunConfig.from_dict(dict(widths=(4, 4, 4), init=str(b)))
    assert ra.init_sha256 == rb.init_sha256 is not None


@dataclasses.dataclass(frozen=True)
class ToyParams:
    steps: int = 10
    temperature: float = 200.0


def test_method_params_change_the_id(monkeypatch):
    from sparsejax.pruning import registry
    method = registry.get("gmp")
    monkeypatch.setattr(config_lib, "params_type", lambda m: ToyParams if m == "gmp" else config_lib.NoParams)
    base = RunConfig.from_dict(BASE)
    assert RunConfig.from_dict({**BASE, "method_params": {"steps": 10}}).run_id == base.run_id
    assert RunConfig.from_dict({**BASE, "method_params": ToyParams()}).method_params is None
    changed = RunConfig.from_dict({**BASE, "method_params": {"steps": 11}})
    assert changed.run_id != base.run_id and changed.method_params == {"steps": 11}
    assert changed.params() == ToyParams(steps=11)
    other = RunConfig.from_dict({**BASE, "method_params": {"temperature": 100}})
    assert len({base.run_id, changed.run_id, other.run_id}) == 3
    with pytest.raises(ValueError, match="^method_params: 'gmp' has no parameter 'nope'"):
        RunConfig.from_dict({**BASE, "method_params": {"nope": 1}})
    assert method is registry.get("gmp")


@pytest.mark.parametrize("bad,needle", [
    (dict(method="nope"), "^method: unknown 'nope'"),
    (dict(budget=None), "^budget: method 'gmp' needs a weight budget"),
    (dict(budget=560), r"^budget: must be in \[1, 559\]"),
    (dict(lr=0), "^lr: must be > 0"),
    (dict(lr=float("nan")), "^lr: must be finite"),
    (dict(epochs=1.5), "^epochs: must be an integer"),
    (dict(schedule="linear"), "^schedule: unknown 'linear'"),
    (dict(widths=(3, 0, 3)), "^widths: must be >= 1"),
    (dict(milestones=(30, 15)), "^milestones: must be strictly increasing"),
    (dict(dataset="mnist"), "^dataset: unknown 'mnist'"),
    (dict(colour="red"), "^colour: unknown config field"),
    (dict(method="structured", budget=None, structure=(17, 3, 3)), "^structure: need 3 unit counts"),
    (dict(method="search", budget=None, widths=(3, 3, 3), structure=(3, 3, 3), mask_index=25992),
     r"^mask_index: must be in \[0, 25992\)"),
    (dict(init="/nonexistent.npz"), "^init: not a file"),
    (dict(data_seed=-1), "^data_seed: must be >= 0"),
    (dict(data_seed=0.5), "^data_seed: must be an integer"),
])
def test_bad_configs_name_the_field(bad, needle):
    with pytest.raises(ValueError, match=needle):
        RunConfig.from_dict({**BASE, **bad})


def test_frozen_and_kinds():
    rc = RunConfig.from_dict(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rc.lr = 0.2
    assert rc.kind == "prune"
    assert RunConfig.from_dict(ALTERNATIVES["structure"] | {"method": "structured"}).kind == "structured"
    s = RunConfig.from_dict(ALTERNATIVES["mask_index"])
    assert s.kind == "search" and s.trained_widths == (3, 3, 3)


def test_reaches_is_strict():
    assert config_lib.reaches(0.9501, 0.95)
    assert not config_lib.reaches(0.95, 0.95)
    assert not config_lib.reaches(float("nan"), 0.95)
