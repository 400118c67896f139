"""``protocol: linear``: frozen features (cached) -> the L-BFGS probe -> test predictions.

The runner owns the run (key, lock, record, ``predictions.npz``); this module turns a planned
run's backbone and data into the same prediction arrays fine-tuning saves, plus the record's
``probe`` section: the chosen C, the validation curve, and each split's feature cache key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.errors import BenchError
from benchmark.feature_cache import FeatureCache
from benchmark.tasks import Task

SPLITS = ("train", "val", "test")


def check_protocol(task: Task) -> None:
    """Refuse, before any data is read, a protocol the task's kind does not have."""
    if task.kind == "detection" and task.protocol != "finetune":
        raise BenchError(
            f"task {task.name}: detection has no linear protocol ({task.protocol!r}); use "
            f"--protocol finetune (--set detection.trainable_backbone_layers=0 freezes the "
            f"backbone)."
        )


@dataclass
class ProbeOutcome:
    predictions: dict[str, np.ndarray]  # what predictions.npz holds, as for fine-tuning
    probe: dict[str, Any]  # the record's ``probe`` section


def split_features(
    request: Any, task: Task, backbone: Any, datamodule: Any, data_identity: dict[str, Any],
    subset: str, cache: FeatureCache | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Each split's features through the cache: ({split: CachedFeatures}, {split: what the
    record says about them}). A backbone without a sha256 (random initialisation) has no
    stable identity: its features are computed and not cached."""
    from benchmark.data.datamodule import TransformedSplit
    from benchmark.data.transforms import eval_transform
    from benchmark.feature_cache import CachedFeatures, entry_key
    from benchmark.features import extract, feature_network, key_parts, resolve_device

    assert task.input is not None
    cache = cache or FeatureCache()
    device = resolve_device(request.accelerator)
    transform = eval_transform(task.input)
    network, layer = feature_network(backbone.model)
    sha = backbone.provenance.get("sha256")
    out: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for split in SPLITS:
        selected = datamodule.splits[split]
        parts = key_parts(
            backbone_sha256=sha, arch=backbone.arch, task=task.name, split=split,
            subset=subset, data_identity=data_identity, transform=transform, layer=layer,
            precision=request.precision,
        )  # fmt: skip
        ids = np.asarray(selected.example_ids, np.str_)

        def compute(selected: Any = selected, split: str = split,
                    ids: np.ndarray = ids) -> dict[str, np.ndarray]:  # fmt: skip
            arrays = extract(
                network, TransformedSplit(selected, transform),
                batch_size=task.train.batch_size, num_workers=datamodule.num_workers,
                device=device, precision=request.precision, label=f"{task.name}/{split}",
            )  # fmt: skip
            return {**arrays, "example_ids": ids}

        t0 = time.perf_counter()
        if sha:
            got = cache.get_or_compute(parts, compute)
        else:
            arrays = compute()
            got = CachedFeatures(arrays["features"], arrays["targets"], ids, entry_key(parts),
                                 hit=False)  # fmt: skip
        if not np.array_equal(got.example_ids, ids):  # the key says they match; make sure
            raise RuntimeError(f"feature cache entry {got.key} holds other examples than "
                               f"{task.name}/{split}")  # fmt: skip
        out[split] = got
        info[split] = {
            "key": got.key, "cached": bool(sha), "hit": got.hit,
            "shape": list(got.features.shape), "seconds": round(time.perf_counter() - t0, 3),
        }  # fmt: skip
    info["layer"] = layer
    info["device"] = str(device)
    info["cache_dir"] = str(cache.root)
    return out, info


def run_probe(
    request: Any, task: Task, backbone: Any, datamodule: Any, data_identity: dict[str, Any],
    subset: str, score: Any,
) -> ProbeOutcome:  # fmt: skip
    """Features for train/val/test, C chosen on val by ``score`` (the task's primary metric of
    (logits, targets)), refit on train + val, test logits in the shape fine-tuning saves."""
    from benchmark.protocols.linear_probe import c_grid, fit_probe  # scikit-learn: when used

    t0 = time.perf_counter()
    feats, info = split_features(request, task, backbone, datamodule, data_identity, subset)
    extracted = time.perf_counter() - t0
    spec = task.probe
    grid = c_grid(spec.c_min, spec.c_max, spec.c_count)
    multilabel = task.kind == "multilabel"
    print(f"linear probe: {len(grid)} values of C from {spec.c_min:g} to {spec.c_max:g}, "
          f"{'one binary problem per label' if multilabel else 'multinomial'}", flush=True)
    t1 = time.perf_counter()
    result = fit_probe(
        (feats["train"].features, feats["train"].targets),
        (feats["val"].features, feats["val"].targets),
        feats["test"].features,
        num_outputs=task.num_classes, multilabel=multilabel, score=score, grid=grid,
        max_iter=spec.max_iter, tol=spec.tol,
    )  # fmt: skip
    fitted = time.perf_counter() - t1
    print(f"chosen C = {result.chosen_c:.3g} (val {max(result.val_scores):.4f})", flush=True)
    test = feats["test"]
    predictions = {
        "example_id": np.asarray(test.example_ids, np.str_),
        "target": np.asarray(test.targets).astype(np.int64),
        "logits": result.test_logits.astype(np.float32),
    }
    probe = {
        "method": "L2 logistic regression, L-BFGS (scikit-learn), standardised features; "
                  + ("one binary problem per label, one shared C" if multilabel
                     else "multinomial"),
        "chosen_C": result.chosen_c,
        "val_metric": task.metrics.primary,
        "val_curve": result.curve,
        "iterations": result.iterations,
        "not_converged_C": result.not_converged,
        "refit_on": ["train", "val"],
        "features": info,
        "seconds": {"features": round(extracted, 3), "probe": round(fitted, 3)},
    }  # fmt: skip
    return ProbeOutcome(predictions, probe)
