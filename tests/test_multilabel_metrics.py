"""Multi-label metrics equal scikit-learn's on fixed predictions, including the awkward cases
(an attribute with no positives, one with no negatives, logits that all lie in [0, 1])."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, balanced_accuracy_score

from benchmark.errors import BenchError
from benchmark.metrics import compute_metrics, metric_names

ATTRS = ["Bald", "Smiling", "Male", "No_Beard", "Young", "Eyeglasses"]
GROUPS = {"hair": ["Bald"], "mouth": ["Smiling"], "whole": ["Male", "Young"],
          "rest": ["No_Beard", "Eyeglasses"]}  # fmt: skip
ALL = [
    "mean_attribute_accuracy", "per_attribute_accuracy", "balanced_accuracy",
    "per_attribute_balanced_accuracy", "mean_average_precision",
    "per_attribute_average_precision", "per_attribute_positive_rate", "per_group_accuracy",
    "per_group_balanced_accuracy", "per_group_average_precision",
]  # fmt: skip


@pytest.fixture(scope="module")
def fixed() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(7)
    n = 60
    targets = (rng.random((n, len(ATTRS))) < [0.0, 0.5, 0.4, 1.0, 0.7, 0.1]).astype(np.int64)
    # informative but imperfect scores, with ties (rounded) and some exact zeros
    logits = np.round(rng.normal(0, 1.5, targets.shape) + 1.2 * (targets * 2 - 1), 1)
    logits[:5, 1] = 0.0
    return torch.from_numpy(logits).float(), torch.from_numpy(targets)


def _sklearn(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
    y, s = targets.numpy(), logits.numpy().astype(np.float64)
    pred = (s > 0).astype(np.int64)
    k = y.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on single-class columns
        bal = [balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(k)]
    ap = [average_precision_score(y[:, j], s[:, j]) if y[:, j].any() else np.nan for j in range(k)]
    return {
        "acc": np.array([accuracy_score(y[:, j], pred[:, j]) for j in range(k)]),
        "bal": np.array(bal),
        "ap": np.array(ap),
    }


def test_every_multilabel_metric_is_registered() -> None:
    assert set(ALL) <= set(metric_names("multilabel"))


def test_metrics_equal_scikit_learn(fixed) -> None:
    logits, targets = fixed
    got = compute_metrics("multilabel", ALL, logits, targets, ATTRS, groups=GROUPS)
    ref = _sklearn(logits, targets)

    assert got["mean_attribute_accuracy"] == pytest.approx(ref["acc"].mean(), abs=1e-12)
    assert list(got["per_attribute_accuracy"]) == ATTRS
    assert list(got["per_attribute_accuracy"].values()) == pytest.approx(ref["acc"], abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(ref["bal"].mean(), abs=1e-12)
    per_bal = list(got["per_attribute_balanced_accuracy"].values())
    assert per_bal == pytest.approx(ref["bal"], abs=1e-12)

    # Bald has no positive: AP undefined -> null, and left out of the mean
    per_ap = got["per_attribute_average_precision"]
    assert per_ap["Bald"] is None
    defined = [j for j, a in enumerate(ATTRS) if a != "Bald"]
    assert [per_ap[ATTRS[j]] for j in defined] == pytest.approx(ref["ap"][defined], abs=1e-6)
    assert got["mean_average_precision"] == pytest.approx(np.nanmean(ref["ap"]), abs=1e-6)
    # the all-positive attribute (No_Beard) has AP 1 and balanced accuracy = its recall
    assert per_ap["No_Beard"] == pytest.approx(1.0)

    rates = got["per_attribute_positive_rate"]
    assert list(rates.values()) == pytest.approx(targets.double().mean(0).tolist())

    index = {a: j for j, a in enumerate(ATTRS)}
    for metric, key in (("per_group_accuracy", "acc"), ("per_group_balanced_accuracy", "bal"),
                        ("per_group_average_precision", "ap")):  # fmt: skip
        assert list(got[metric]) == list(GROUPS)
        for group, members in GROUPS.items():
            values = ref[key][[index[m] for m in members]]
            expected = None if np.isnan(values).all() else np.nanmean(values)
            if expected is None:
                assert got[metric][group] is None
            else:
                assert got[metric][group] == pytest.approx(expected, abs=1e-6)


def test_logits_inside_zero_one_are_still_logits() -> None:
    """torchmetrics treats floats in [0, 1] as probabilities; a logit of 0.3 must still count
    as positive (probability 0.57), as scikit-learn on ``logits > 0`` says."""
    targets = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    logits = torch.tensor([[0.3, 0.2], [0.1, 0.9], [0.4, 0.6], [0.05, 0.01]])
    got = compute_metrics("multilabel", ["per_attribute_accuracy"], logits, targets, ["a", "b"])
    ref = _sklearn(logits, targets)
    assert list(got["per_attribute_accuracy"].values()) == pytest.approx(ref["acc"])
    # every prediction is positive; thresholding these as probabilities would give b = 1.0
    assert got["per_attribute_accuracy"] == {"a": 0.5, "b": 0.5}


def test_group_metrics_need_groups(fixed) -> None:
    logits, targets = fixed
    with pytest.raises(ValueError, match="needs the task's groups"):
        compute_metrics("multilabel", ["per_group_accuracy"], logits, targets, ATTRS)


def test_module_loss_is_bce_with_logits_and_groups_are_checked() -> None:
    import torchvision

    from benchmark.models.multilabel import MultiLabelModule
    from benchmark.tasks import apply_overrides, get_task

    task = get_task("celeba")
    names = [a for members in task.groups.values() for a in members]
    module = MultiLabelModule(torchvision.models.resnet18(), task, names)
    logits = torch.randn(4, 40)
    targets = (torch.rand(4, 40) > 0.5).long()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
    assert module.loss(logits, targets) == pytest.approx(float(expected))

    bad = apply_overrides(task, {"groups.eyes": ["Arched_Eyebrow"]})
    with pytest.raises(BenchError, match="groups.eyes names 'Arched_Eyebrow'.*Arched_Eyebrows"):
        MultiLabelModule(torchvision.models.resnet18(), bad, names)
