"""The one registry of pruning methods (SPEC §5): a dict filled by the method modules.

Each method lives in one module implementing :class:`sparsejax.pruning.base.Method` (the
protocol: params type, init scheme, data at init, scoring, mask hook, fit, training passes,
FLOPs, label) and registers its default instance with :func:`register` at its end. This module
imports the paper's methods in the paper's order (``sparsejax.pruning`` imports this module
first, so the order holds whichever module is imported first); a new method's module is
imported by whoever uses it, or by a line at the end of this file.

:func:`get` returns a method with its default params; :func:`instance` the method configured
with a run's ``method_params`` (the fields that differ from the defaults), a static, hashable
value (one compilation per distinct params).

Biases are never scored; after every mask change the hidden biases follow the out-degree rule
and the output bias stays on (``mlp.masks_from_weights(..., "out_degree")``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

REGISTRY: dict[str, Any] = {}


def register(method: Any) -> Any:
    """Add `method` (a default instance) under ``method.name``; ValueError if the name is taken."""
    if not getattr(method, "name", ""):
        raise ValueError(f"register: {type(method).__name__} has no name")
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} registered twice")
    REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests registering a toy method clean up with this)."""
    REGISTRY.pop(name, None)


def get(name: str) -> Any:
    """The method called `name` with its default params; ValueError naming every registered
    method otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(names())}")
    return REGISTRY[name]


def instance(name: str, method_params: Mapping[str, Any] | Any | None = None) -> Any:
    """The method `name` configured with `method_params`: None (its defaults), a mapping of
    params fields (e.g. a resolved run config's ``method_params``, the non-default fields), or
    an instance of its params type. ValueError naming an unknown field."""
    method = get(name)
    if method_params is None or (isinstance(method_params, Mapping) and not method_params):
        return method
    ptype = method.params_type
    if isinstance(method_params, ptype):
        params = method_params
    elif isinstance(method_params, Mapping):
        allowed = {f.name for f in dataclasses.fields(ptype)}
        unknown = sorted(set(method_params) - allowed)
        if unknown:
            raise ValueError(f"method_params: {name!r} has no parameter {unknown[0]!r}; "
                             f"allowed: {', '.join(sorted(allowed)) or '(none)'}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in method_params.items()}
        params = dataclasses.replace(method.params, **fixed)
    else:
        raise ValueError(f"method_params: need a mapping or a {ptype.__name__}, got {type(method_params).__name__}")
    return dataclasses.replace(method, params=params)


def names() -> list[str]:
    return list(REGISTRY)


# The paper's methods, in the paper's order (each module registers itself).
from sparsejax.pruning import base  # noqa: E402
from sparsejax.pruning import dense, random_masks, gmp, lth, snip, iter_snip, force, grasp, synflow, prospr, rigl  # noqa: E402,F401,E501

# Names kept for callers of the earlier single-module registry.
Method, AtInit = base.Method, base.AtInit
BATCH, draw_batches, with_weight_masks = base.BATCH, base.draw_batches, base.with_weight_masks
GRASP_PER_CLASS, GRASP_PREFIX, grasp_samples = grasp.GRASP_PER_CLASS, grasp.GRASP_PREFIX, grasp.grasp_samples
GMP, GMPHook, LTH, RigL, RigLHook = gmp.GMP, gmp.GMPHook, lth.LTH, rigl.RigL, rigl.RigLHook

from sparsejax.pruning.structure_first import StructureFirst; register(StructureFirst())  # noqa: E402  (issue #16)
