"""Datasets: the Cubist Spiral (SPEC §1), the classic spiral, and the 512² visualisation grid.

Everything here is NumPy: the data is built once on the host and handed to JAX as a constant.
"""
from __future__ import annotations

import functools

import numpy as np

N_VERTICES = 17
ARM_OFFSET = 15.0
POINTS_PER_ARM = 25_000
GRID_SIZE = 512
GRID_EXTENT = 2.25


def spiral_vertices() -> tuple[np.ndarray, np.ndarray]:
    """The 17 vertices of each arm of the Cubist Spiral, shape (17, 2) each: (arm A, arm B)."""
    theta = np.linspace(np.pi, 5 * np.pi, N_VERTICES) + 0.4 * np.pi
    radius = 10.0 * theta + np.pi
    u = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    centre = radius[:, None] * u
    return centre + ARM_OFFSET * u, centre - ARM_OFFSET * u


def segment_counts(vertices: np.ndarray, total: int = POINTS_PER_ARM) -> np.ndarray:
    """Points per segment: floor(share of the arm's length × total)."""
    lengths = np.linalg.norm(np.diff(vertices, axis=0), axis=1)
    return np.floor(lengths / lengths.sum() * total).astype(np.int64)


def _sample_arm(vertices: np.ndarray) -> np.ndarray:
    """Evenly spaced points on every segment, both endpoints included (SPEC §1.3)."""
    pieces = []
    for i, n in enumerate(segment_counts(vertices)):
        t = np.linspace(0.0, 1.0, n)[:, None]
        pieces.append(t * vertices[i] + (1.0 - t) * vertices[i + 1])
    return np.concatenate(pieces, axis=0)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Per-coordinate zero mean and unit unbiased (N−1) standard deviation, computed in float64
    and then rounded to float32 (a float32 mean over 50k points is off by ~3e-5)."""
    x = np.asarray(x, dtype=np.float64)
    return ((x - x.mean(axis=0)) / x.std(axis=0, ddof=1)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _cubist_spiral_cached() -> tuple[np.ndarray, np.ndarray]:
    arm_a, arm_b = spiral_vertices()
    pts_a, pts_b = _sample_arm(arm_a), _sample_arm(arm_b)
    x = np.concatenate([pts_a, pts_b], axis=0)
    x = x - x.min(axis=0)  # as the reference; cancelled by the standardisation
    y = np.concatenate([np.zeros(len(pts_a)), np.ones(len(pts_b))]).astype(np.float32)
    x, y = _standardise(x), y
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def cubist_spiral() -> tuple[np.ndarray, np.ndarray]:
    """The Cubist Spiral: x float32 (49982, 2) standardised, y float32 (49982,), arm A = 0 first."""
    return _cubist_spiral_cached()


@functools.lru_cache(maxsize=None)
def _classic_spiral_cached(n_per_class: int, turns: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(np.pi, np.pi + 2 * np.pi * turns, n_per_class) + 0.4 * np.pi
    radius = 10.0 * theta + np.pi
    u = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    centre = radius[:, None] * u
    x = np.concatenate([centre + offset * u, centre - offset * u], axis=0)
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)]).astype(np.float32)
    x = _standardise(x)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def classic_spiral(n_per_class: int = 25_000, turns: float = 2.0,
                   offset: float = ARM_OFFSET) -> tuple[np.ndarray, np.ndarray]:
    """The curved two-arm spiral of the paper's Figure 2a, on the same radius law as the Cubist one.

    Points are evenly spaced in angle along r = 10θ + π; the arms are offset by ±`offset` along the
    radial direction, exactly as the Cubist Spiral's vertices, so the two datasets differ only in
    the straightened edges.
    """
    if n_per_class < 2:
        raise ValueError(f"n_per_class must be >= 2, got {n_per_class}")
    return _classic_spiral_cached(int(n_per_class), float(turns), float(offset))


def grid(size: int = GRID_SIZE, extent: float = GRID_EXTENT) -> np.ndarray:
    """`size`² evenly spaced points on [−extent, extent]², float32 (size², 2), row-major with y
    running down the rows (row 0 is y = +extent) so reshaping to (size, size) gives an image."""
    xs = np.linspace(-extent, extent, size, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs[::-1])
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


DATASETS = {"cubist_spiral": cubist_spiral, "classic_spiral": classic_spiral}


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A dataset by name; raises ValueError naming the allowed ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]()
