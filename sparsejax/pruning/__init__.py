"""Pruning methods (SPEC §5). Importing the package loads the registry first, so the methods
register in the paper's order whichever module is imported first."""
from sparsejax.pruning import registry  # noqa: F401
