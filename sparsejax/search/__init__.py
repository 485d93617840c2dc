"""The combinatorial search (SPEC §4, the paper's Algorithm 1).

    from sparsejax.search import eligible_masks, MaskSpace
    eligible_masks(2, 3).shape          # every eligible 2->3 layer mask, (K, 3, 2) PyTorch layout
    space = MaskSpace((3, 3, 3))        # the phase-2 product, indexed in ascending model nnz
    space.nnz_levels()                  # (nnz, count, start) of every level

Entry points (imported on first use):

* ``eligible_masks``, ``eligible_codes``, ``weight_count_range`` (:mod:`.eligible`): the layer
  masks phase 2 may use;
* ``MaskSpace``, ``phase1_configs``, ``select_sparsest`` (:mod:`.product`): the search spaces;
* ``SearchSettings``, ``phase1_plan``, ``select_phase1``, ``phase2_plan``, ``run_phase2``
  (:mod:`.combinatorial`): both phases on the sweep engine and its store;
* :mod:`.halving` (successive halving) and :mod:`.beyond` (configurations near the frontier).
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "eligible_masks": "sparsejax.search.eligible",
    "eligible_codes": "sparsejax.search.eligible",
    "weight_count_range": "sparsejax.search.eligible",
    "MaskSpace": "sparsejax.search.product",
    "phase1_configs": "sparsejax.search.product",
    "select_sparsest": "sparsejax.search.product",
    "SearchSettings": "sparsejax.search.combinatorial",
    "phase1_plan": "sparsejax.search.combinatorial",
    "select_phase1": "sparsejax.search.combinatorial",
    "phase2_plan": "sparsejax.search.combinatorial",
    "run_phase2": "sparsejax.search.combinatorial",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import an entry point on first use (PEP 562). Unknown names raise AttributeError, so
    ``from sparsejax.search import halving`` still imports the submodule."""
    if name not in _LAZY:
        raise AttributeError(f"module 'sparsejax.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
