"""FORCE (SPEC §5): as Iter SNIP, but re-scores |W_0 ⊙ g| (g on the pruned network) over all
weights, so pruned weights may return."""
from __future__ import annotations

import dataclasses

from sparsejax.pruning import registry
from sparsejax.pruning.iter_snip import IterSNIP, IterativeParams


@dataclasses.dataclass(frozen=True)
class FORCE(IterSNIP):
    name = "force"
    label = "FORCE"
    params_type = IterativeParams
    revive = True


registry.register(FORCE())
