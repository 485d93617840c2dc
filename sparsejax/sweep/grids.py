"""Run-config grids of the paper's experiments (SPEC §6), shared by the launchers."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from sparsejax import mlp
from sparsejax.pruning import registry
from sparsejax.sweep import plan as plan_lib

BENCH_INITS = "../shared/bench-inits"  # the paper's two fixed inits, beside the repository (never committed)
PAPER_METHODS = ("gmp", "lth", "snip", "iter_snip", "force", "grasp", "synflow", "prospr", "rigl")
PAPER_BUDGETS = (15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65)
PAPER_WIDTHS = (3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256)
BENCH95_BUDGETS = tuple(range(15, 27))
BENCH995_BUDGETS = (16, 18, 20, 22, 24, 25, 26, 27, 28, 29, 30, 32, 34, 36)


def dropped_budgets(methods: Sequence[str], widths: Sequence[int],
                    budgets: Sequence[int]) -> list[tuple[str, int, int]]:
    """The (method, width, budget) combinations :func:`pruning_configs` leaves out: budget B at or
    above the weight count N_w of width w (nothing to prune), for methods that take a budget."""
    out = []
    for w in widths:
        n_w = mlp.weight_count((w,) * 3)
        for m in methods:
            if registry.get(m).needs_budget:
                out += [(m, int(w), int(b)) for b in budgets if b >= n_w]
    return out


def pruning_configs(methods: Sequence[str], widths: Sequence[int], budgets: Sequence[int], lrs: Sequence[float],
                    schedules: Sequence[str], epochs: int, repeats: int = 1, init: str = "random",
                    method_params: Mapping[str, Mapping[str, Any]] | None = None,
                    data_seed: int | None = None) -> list[dict]:
    """methods × widths × budgets × lrs × schedules × seeds, budgets kept where B < N_w of the
    trained width (methods without a budget, e.g. dense, once per width). With a fixed init
    (a width-D file) a width w < D is the file's top-left slice (``optimal_width``).
    ``method_params``: per method, its hyperparameters other than the defaults (part of the id);
    ``data_seed``: one shared data order for every run (None: each run its own)."""
    for m in methods:
        registry.get(m)
    if int(epochs) < 1:
        raise ValueError(f"epochs: must be >= 1, got {epochs}")
    if int(repeats) < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    fixed = init != "random"
    base = mlp.widths_of(mlp.load_npz(init))[0] if fixed else None
    out = []
    for w in widths:
        if fixed and w > base:
            raise ValueError(f"widths: {w} is wider than the init file's width {base}")
        shape = dict(widths=[(base,) * 3], optimal_width=w if w < base else None) if fixed else dict(widths=[(w,) * 3])
        n_w = mlp.weight_count((w,) * 3)
        for m in methods:
            bs = [b for b in budgets if b < n_w] if registry.get(m).needs_budget else [None]
            if bs:
                mp = dict((method_params or {}).get(m) or {}) or None
                out += plan_lib.grid(method=m, **shape, budget=bs, lr=list(lrs), schedule=list(schedules),
                                     seed=list(range(int(repeats))), epochs=int(epochs), init=init,
                                     method_params=mp, data_seed=data_seed)
    if not out:
        raise ValueError(f"budgets: no budget below the weight count of widths {list(widths)}")
    return out
