"""Hand-written kernels for the CPU hot loop (see :mod:`sparsejax.kernels.cpu`)."""
