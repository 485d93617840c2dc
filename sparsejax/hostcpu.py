"""What CPU this host has, read once from /proc/cpuinfo: the numeric path records its vector
ISA and model (sweep.numeric_path), and the fused kernel's build cache is keyed by its feature
flags (kernels.cpu), so both read the same answer."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, feature flags) of the first CPU in /proc/cpuinfo; ("", empty) where there is
    none (not Linux, or unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return "", frozenset()
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags
