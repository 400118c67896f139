"""Deterministic example selection: carving a validation split and taking subsets.

Both are seeded by the task, never by the run seed, so runs with different seeds (and different
backbones) train and test on exactly the same examples, which the paired statistics rely on.
"""

from __future__ import annotations

import numpy as np


def stratified_order(labels: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` that interleaves classes round-robin.

    Taking any prefix gives a class-balanced subset, and a smaller subset is always contained in
    a larger one. Written by hand because scikit-learn's stratified splitters need at least one
    example per class in each part and do not nest, which tiny smoke subsets violate.
    Multi-label targets ([N, K]) are stratified on their most balanced column (positive rate
    closest to one half: CelebA's Male, say), so a small subset keeps both values of it;
    ``None`` shuffles.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        return rng.permutation(n)
    if labels.ndim == 1:
        keys = labels
    else:
        balance = np.abs((labels > 0).mean(axis=0) - 0.5)
        keys = labels[:, int(np.argmin(balance))] > 0
    per_class = [rng.permutation(np.flatnonzero(keys == c)) for c in np.unique(keys)]
    rank = np.empty(n, dtype=np.int64)
    for members in per_class:
        rank[members] = np.arange(len(members))
    class_of = np.empty(n, dtype=np.int64)
    for c, members in enumerate(per_class):
        class_of[members] = c
    # sort by (position within class, class order) -> round-robin over classes
    return np.lexsort((class_of, rank))


def carve(
    labels: np.ndarray | None, n: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (kept, carved) with ``round(fraction * n)`` stratified examples
    carved off (at least one, and at least one kept)."""
    order = stratified_order(labels, n, seed)
    n_carved = min(max(1, round(fraction * n)), n - 1)
    return np.sort(order[n_carved:]), np.sort(order[:n_carved])


def take_subset(
    labels: np.ndarray | None, n: int, n_wanted: int | None, seed: int
) -> np.ndarray:
    """``n_wanted`` stratified positions out of ``range(n)`` (all when ``None``), sorted."""
    if n_wanted is None or n_wanted >= n:
        return np.arange(n)
    return np.sort(stratified_order(labels, n, seed)[:n_wanted])
