"""Validation carving and subsets are deterministic, stratified and nested."""

from __future__ import annotations

import numpy as np

from benchmark.data.selection import carve, stratified_order, take_subset


def test_carve_is_deterministic_stratified_and_disjoint() -> None:
    labels = np.repeat(np.arange(10), 50)
    kept, carved = carve(labels, len(labels), 0.1, seed=0)
    kept2, carved2 = carve(labels, len(labels), 0.1, seed=0)
    assert np.array_equal(carved, carved2) and np.array_equal(kept, kept2)
    assert len(carved) == 50 and len(kept) == 450
    assert not set(kept) & set(carved)
    assert np.bincount(labels[carved]).tolist() == [5] * 10
    _, other = carve(labels, len(labels), 0.1, seed=1)
    assert not np.array_equal(carved, other)


def test_subsets_are_balanced_and_nested() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=200)
    small = take_subset(labels, 200, 10, seed=0)
    large = take_subset(labels, 200, 40, seed=0)
    assert set(small) <= set(large)
    assert np.bincount(labels[small], minlength=5).tolist() == [2] * 5
    assert len(take_subset(labels, 200, None, seed=0)) == 200
    assert len(take_subset(labels, 200, 1000, seed=0)) == 200


def test_fewer_examples_than_classes_still_works() -> None:
    labels = np.repeat(np.arange(10), 3)
    picked = take_subset(labels, 30, 4, seed=0)
    assert len(set(labels[picked])) == 4


def test_order_is_a_permutation() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2])
    order = stratified_order(labels, 6, seed=0)
    assert sorted(order.tolist()) == list(range(6))
    assert sorted(labels[order[:3]].tolist()) == [0, 1, 2]


def test_multilabel_is_stratified_on_the_most_balanced_attribute() -> None:
    rng = np.random.default_rng(0)
    rare = (rng.random(100) < 0.05).astype(int)
    balanced = np.r_[np.ones(50, int), np.zeros(50, int)]
    labels = np.stack([rare, balanced], axis=1) * 2 - 1  # CelebA's -1/1 style
    picked = take_subset(labels, 100, 8, seed=0)
    assert (labels[picked, 1] > 0).sum() == 4
