"""Shared test set-up: drop JAX's compiled programs after every test module.

Each XLA:CPU executable keeps a few memory mappings (~3 per compile, measured), and the suite
compiles tens of thousands of programs in one process (the jobs' tests run in-process); without
this the process reaches the kernel's vm.max_map_count (65,530) late in the run and XLA's next
compile crashes with a segmentation fault. Clearing per module keeps the count to one module's.
"""
import gc

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _clear_jax_caches_after_module():
    yield
    jax.clear_caches()
    gc.collect()
