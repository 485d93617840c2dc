"""sparsejax: populations of tiny masked MLPs trained at once in JAX, reproducing "Sparsest
Models Elude Pruning" (Zhang & Papyan, ICML 2024).

    import sparsejax as sj
    x, y = sj.load_data("cubist_spiral")                     # 49,982 points, labels 0/1
    cfg = sj.RunConfig(method="gmp", widths=(16, 16, 16), budget=40, lr=0.1, schedule="cosine")
    [rec] = sj.run_population([cfg.to_dict()])               # one record: accuracy, nnz, masks, ...

The entry points below are imported on first use (``import sparsejax`` itself loads neither JAX
nor NumPy-heavy modules):

========================  ===================================================================
``load_data``, ``data``   the datasets (``data.load(name) -> (x, y)``; ``data.DATASETS``)
``RunConfig``             one validated run: ``.to_dict()`` (what the trainer takes), ``.run_id``
``run_population``        train configs sharing one program as one population -> records
``train_population``      the same, padded to a bucket size and spread over all devices
``Plan``, ``run_sweep``   a validated, de-duplicated grid of runs; train it into a store (resumes)
``registry``              the pruning-method registry (``registry.get(name)``, ``registry.names()``)
``pruning_methods``       the registered method names (``pruning.registry.names``)
``prune``                 the explicit-data pruning API for one model (``pruning.api``)
``search``                the combinatorial search: ``eligible_masks``, ``MaskSpace``, phases 1/2
``Store``                 the SQLite sweep store (``Store(path, create=False)`` reads)
``export``, ``merge``     flat csv/jsonl export of a store; merging stores
``load_table``            a store as a list of flat rows (``analysis.pareto.load_table``)
``figures``, ``build_report``  the paper's figures; the HTML report of a store
``viewer``                the sparse-model viewer page (``viewer.load_models``/``build_html``)
========================  ===================================================================
"""
from __future__ import annotations

import importlib
from typing import Any

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "data": ("sparsejax.data", None),
    "load_data": ("sparsejax.data", "load"),
    "RunConfig": ("sparsejax.config", "RunConfig"),
    "run_population": ("sparsejax.runs", "run_population"),
    "train_population": ("sparsejax.sweep.runner", "train_population"),
    "Plan": ("sparsejax.sweep.plan", "Plan"),
    "run_sweep": ("sparsejax.sweep.runner", "run_sweep"),
    "registry": ("sparsejax.pruning.registry", None),
    "prune": ("sparsejax.pruning.api", None),
    "search": ("sparsejax.search", None),
    "Store": ("sparsejax.sweep.store", "Store"),
    "export": ("sparsejax.sweep.store", "export"),
    "merge": ("sparsejax.sweep.store", "merge"),
    "load_table": ("sparsejax.analysis.pareto", "load_table"),
    "figures": ("sparsejax.viz.figures", None),
    "build_report": ("sparsejax.viz.report", "build_report"),
    "viewer": ("sparsejax.viz.viewer", None),
}

__all__ = sorted([*_LAZY, "pruning_methods"])


def pruning_methods() -> list[str]:
    """The registered pruning-method names, the paper's 11 first (``registry.names()``)."""
    from sparsejax.pruning import registry
    return registry.names()


def __getattr__(name: str) -> Any:
    """Import an entry point on first use (PEP 562), so ``import sparsejax`` stays cheap."""
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'sparsejax' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
