"""FLOPs to prune and train one model (SPEC §9 Table 1, paper Appendix C).

The paper counts "the floating operations utilised by the nonzero parameters (including biases)
throughout pruning and training" with the model-tools hooks, for width 16 and 55 nonzero weights.

Convention (what one unit of work costs)
----------------------------------------
A *pass* of S samples through a network with n nonzero parameters (weights + biases) costs

    S · n · flops_per_param · (1 + backward_factor)    for a pass that takes a gradient,
    S · n · flops_per_param                            for a forward-only pass.

Two conventions are provided:

* ``MODEL_TOOLS`` (default): ``flops_per_param = 1`` (a multiply-add per nonzero weight and an
  add per nonzero bias count as one operation, as model-tools' forward hooks count them),
  ``backward_factor = 0`` (the hooks see forward passes only). This is the only reading that
  reproduces the paper's magnitudes: dense training is 609 parameters × 19,500 steps × 128
  samples = 1.52e9, the paper's 1.5e9.
* ``FWD_BWD``: ``flops_per_param = 2`` (multiply and add separately), ``backward_factor = 2``
  (the backward pass costs two forwards: input and weight gradients). Six times MODEL_TOOLS for
  every method; the ordering is the same.

Each method computes its own FLOPs (``Method.flops(ctx)`` in its module, given a
:class:`FlopsContext`: convention, shape, budget, bias model), from its own params and the host
count schedules of :mod:`sparsejax.pruning.schedules`; :func:`method_flops` only dispatches.
What is counted per method (N weights, B kept, T = 19,500 steps of 128 samples; sorting,
top-k selection and evaluation are not counted):

* dense: T gradient passes of the dense network. random: T sparse passes.
* SNIP: one dense gradient pass on a minibatch, then T sparse passes.
* Iter SNIP / FORCE: 10 gradient passes on a minibatch each, pass j on the network left by
  step j − 1 (N, then ``schedules.iterative_counts``; FORCE scores the pruned network too),
  then T sparse passes.
* GraSP: 50 samples, three dense gradient passes (the gradient g, then the Hessian-gradient
  product: a gradient pass with a graph and its double backward, about two more passes).
* SynFlow: 100 data-free gradient passes on one sample, iteration i on the network left by
  iteration i − 1 (N, then ``schedules.synflow_counts``: the reference's counts; all biases:
  SynFlow never masks them during pruning).
* ProsPr: 3 inner SGD steps and the meta-loss on 4 minibatches (4 dense gradient passes) plus
  back-propagation through the 3 inner steps (one Hessian-vector product, about one more
  gradient pass, each): 7 dense gradient passes of a minibatch.
* GMP: dense until the first event, then the cubic schedule's counts (SPEC §5: an event every
  97 steps, 201 events, ``schedules.gmp_counts``) step by step: the weight count is
  integrated over the steps.
* LTH: 5 rounds of T steps; round r trains N, then ``schedules.lth_counts`` (the last B).
* RigL: T sparse passes on the ERK mask; every 100 steps while t < 0.75·T the step's pass is
  a dense gradient pass instead (the dense gradient of the drop/grow update; the optimiser
  step is skipped): 146 such steps at the paper's T.

Biases: a network with m weights is charged m + E[kept biases] parameters, the expectation of
the pruning rule (SPEC §5: hidden bias i kept iff unit i has an outgoing weight; the output bias
always kept) under uniform random placement of the m weights over all matrices (RigL: ERK
per-layer counts, uniform within each layer). Pruning methods that concentrate their weights
on fewer units keep fewer biases: pass measured final model nnz (``final_model_nnz``, e.g. from
a store with :func:`final_model_nnz_from_rows`) to charge the sparse phase with those instead.
The paper's gaps between RigL (2.1e8), GraSP (2.0e8) and the other pruning-at-init methods
(1.9e8) are of this kind: 1e7 FLOPs is 4 parameters over T, while every pruning overhead
except RigL's is below 2e6.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from sparsejax import mlp
from sparsejax.pruning import schedules

N_EXAMPLES = 49_982
BATCH = 128
EPOCHS = 50
STEPS_PER_EPOCH = N_EXAMPLES // BATCH  # 390
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH  # 19,500

TABLE1_METHODS = ("lth", "dense", "gmp", "rigl", "grasp", "prospr", "snip", "iter_snip", "force", "synflow")
# The paper's Table 1 (width 16, 55 nonzero weights).
PAPER_TABLE1 = {"lth": 3.4e9, "dense": 1.5e9, "gmp": 5.3e8, "rigl": 2.1e8, "grasp": 2.0e8, "prospr": 1.9e8,
                "snip": 1.9e8, "iter_snip": 1.9e8, "force": 1.9e8, "synflow": 1.9e8}


class _Labels(Mapping):
    """Method name -> figure label, read from the registry (each method's ``label``)."""

    def _registry(self) -> dict:
        from sparsejax.pruning import registry
        return {n: registry.get(n).label for n in registry.names()}

    def __getitem__(self, name: str) -> str:
        from sparsejax.analysis.pareto import series_parts  # late: pareto imports the store

        method, params = series_parts(name)  # a variant series: sfp[mean_replace=True]
        label = self._registry()[method]
        return f"{label} [{params}]" if params else label

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry())

    def __len__(self) -> int:
        return len(self._registry())


METHOD_LABELS: Mapping[str, str] = _Labels()


@dataclasses.dataclass(frozen=True)
class Convention:
    """Cost of one nonzero parameter in one sample's pass (see the module docstring)."""
    name: str
    flops_per_param: float
    backward_factor: float

    def pass_flops(self, samples: float, params: float, grad: bool = True) -> float:
        return float(samples) * float(params) * self.flops_per_param * (1.0 + (self.backward_factor if grad else 0.0))


MODEL_TOOLS = Convention("model_tools", 1.0, 0.0)
FWD_BWD = Convention("fwd_bwd", 2.0, 2.0)
CONVENTIONS = {c.name: c for c in (MODEL_TOOLS, FWD_BWD)}


def _convention(convention: str | Convention) -> Convention:
    if isinstance(convention, Convention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; allowed: {', '.join(CONVENTIONS)}")
    return CONVENTIONS[convention]


# ----------------------------------------------------------------------------- bias model


def _log_comb(a: int, k: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(k + 1) - math.lgamma(a - k + 1)


def _p_none_in(pool: int, subset: int, drawn: int) -> float:
    """P(none of `drawn` uniform draws without replacement from `pool` falls in `subset`)."""
    if drawn > pool - subset:
        return 0.0
    return math.exp(_log_comb(pool - subset, drawn) - _log_comb(pool, drawn))


def expected_bias_nnz(widths: Sequence[int], weights: int | None = None,
                      layer_counts: Sequence[int] | None = None) -> float:
    """E[kept biases] under the pruning rule (SPEC §5) for weights placed uniformly at random:
    either `weights` over all matrices, or `layer_counts[l]` within matrix l. The output bias
    always counts."""
    shapes = mlp.layer_shapes(widths)
    n_total = sum(i * o for i, o in shapes)
    total = 1.0
    for l in range(len(shapes) - 1):
        fan_in, fan_out = shapes[l + 1]  # the next layer's row of unit i has fan_out entries
        if layer_counts is not None:
            p_empty = _p_none_in(fan_in * fan_out, fan_out, int(layer_counts[l + 1]))
        else:
            p_empty = _p_none_in(n_total, fan_out, int(weights))
        total += shapes[l][1] * (1.0 - p_empty)
    return total


def params_at(widths: Sequence[int], weights: int) -> float:
    """Weights plus expected kept biases of a network with `weights` uniformly placed weights."""
    return float(weights) + expected_bias_nnz(widths, weights=int(weights))


def erk_layer_counts(widths: Sequence[int], budget: int) -> np.ndarray:
    """RigL's per-layer counts (the project's ERK, :func:`sparsejax.pruning.rigl.erk_counts`)."""
    from sparsejax.pruning import rigl
    return rigl.erk_layer_counts(widths, budget)


# ----------------------------------------------------------------------------- schedules


def weights_per_step(n_total: int, event_steps: Sequence[int], counts: Sequence[int], total_steps: int) -> np.ndarray:
    """Weights trained at every step (T,): N until the first event, then each event's count."""
    out = np.full((int(total_steps),), int(n_total), np.int64)
    for step, m in zip(event_steps, counts):
        out[int(step):] = int(m)
    return out


def gmp_weight_counts(n_total: int, budget: int, total_steps: int = TOTAL_STEPS) -> np.ndarray:
    """Weights trained at every step (T,) under GMP's default schedule (SPEC §5)."""
    return weights_per_step(n_total, schedules.gmp_event_steps(total_steps),
                            schedules.gmp_counts(n_total, budget, total_steps), total_steps)


def lth_round_counts(n_total: int, budget: int, rounds: int = schedules.LTH_ROUNDS) -> np.ndarray:
    """Weights trained in each LTH round (N first, B last): ``schedules.lth_counts``."""
    return np.concatenate([[int(n_total)], schedules.lth_counts(n_total, budget, rounds)]).astype(np.int64)


def rigl_update_steps(total_steps: int = TOTAL_STEPS) -> int:
    """RigL's update iterations (146 for T = 19,500): ``schedules.rigl_event_steps``."""
    return len(schedules.rigl_event_steps(total_steps))


# ----------------------------------------------------------------------------- per method


@dataclasses.dataclass(frozen=True)
class FlopsContext:
    """What a method's ``flops`` needs: the convention, the shape, the budget and the bias model.
    ``sparse``: parameters of the network at B weights (uniform placement, or the measured
    ``final_model_nnz``); ``dense``: of the full network."""
    conv: Convention
    widths: tuple[int, ...]
    budget: int
    total_steps: int = TOTAL_STEPS
    batch: int = BATCH
    final_model_nnz: float | None = None

    @property
    def n_total(self) -> int:
        return mlp.weight_count(self.widths)

    @property
    def dense(self) -> float:
        return params_at(self.widths, self.n_total)

    @property
    def sparse(self) -> float:
        return float(self.final_model_nnz) if self.final_model_nnz is not None else params_at(self.widths, self.budget)

    def params_at(self, weights: int) -> float:
        """Parameters of a network with `weights` weights (B: ``sparse``, which may be measured)."""
        return self.sparse if int(weights) == self.budget else params_at(self.widths, weights)

    def uniform(self, weights: int) -> float:
        """Parameters of a network with `weights` uniformly placed weights (the bias model)."""
        return params_at(self.widths, weights)

    def step(self, params: float) -> float:
        """One training step (a gradient pass over a minibatch) of a network with `params`."""
        return self.conv.pass_flops(self.batch, params)

    def steps_at(self, weights_T: np.ndarray) -> float:
        """Training steps at the given weight count per step (T,)."""
        uniq, times = np.unique(np.asarray(weights_T), return_counts=True)
        return float(sum(int(t) * self.step(self.params_at(int(c))) for c, t in zip(uniq, times)))


def method_flops(method: str, width: int = 16, budget: int = 55, convention: str | Convention = MODEL_TOOLS,
                 final_model_nnz: float | None = None, total_steps: int = TOTAL_STEPS,
                 batch: int = BATCH, depth: int = 3, method_params: Mapping[str, Any] | None = None
                 ) -> dict[str, float]:
    """``{"prune": ..., "train": ..., "total": ...}`` FLOPs of one run of `method` with
    `method_params` (module docstring): the method's own ``flops``. `final_model_nnz` replaces
    the bias model for the phase trained at B weights."""
    from sparsejax.pruning import registry
    ctx = FlopsContext(_convention(convention), (int(width),) * depth, int(budget), int(total_steps), int(batch),
                       None if final_model_nnz is None else float(final_model_nnz))
    prune, train = registry.instance(method, method_params).flops(ctx)
    return {"prune": float(prune), "train": float(train), "total": float(prune + train)}


def flops_table(width: int = 16, budget: int = 55, convention: str | Convention = MODEL_TOOLS,
                final_model_nnz: Mapping[str, float] | None = None,
                methods: Sequence[str] = TABLE1_METHODS) -> dict[str, float]:
    """Total FLOPs per method (Table 1's rows by default), in Table 1's order."""
    final = dict(final_model_nnz or {})
    return {m: method_flops(m, width, budget, convention, final.get(m))["total"] for m in methods}


def final_model_nnz_from_rows(rows: Sequence[Mapping[str, Any]], width: int = 16, budget: int = 55,
                              init: str = "random") -> dict[str, float]:
    """Median realised model nnz per method over the store's runs at (`width`, `budget`)."""
    by_method: dict[str, list[float]] = {}
    for r in rows:
        if (r.get("kind") == "pruning" and r.get("width") == width and r.get("budget") == budget
                and r.get("init_name", "random") == init and r.get("model_nnz") is not None):
            by_method.setdefault(str(r["method"]), []).append(float(r["model_nnz"]))
    return {m: float(np.median(v)) for m, v in by_method.items()}
