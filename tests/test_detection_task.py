"""The voc task file and the typed `detection` section: sizes by task, smoke overrides, and the
sections that belong to one kind only refused in the other."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark import paths
from benchmark.errors import BenchError
from benchmark.tasks import apply_overrides, for_subset, get_task, load_task_file


def test_voc_task_is_typed() -> None:
    task = get_task("voc")
    assert task.kind == "detection" and task.num_classes == 20 and task.input is None
    assert task.splits.train == "trainval" and task.splits.test == "test"
    assert task.splits.val.from_split == "trainval" and task.splits.val.fraction == 0.1
    assert task.metrics.primary == "map_voc07"
    assert task.data.args == {"trainval_years": [2007]}
    det = task.detection
    assert (det.train_min_size, det.train_max_size, det.test_min_size, det.test_max_size) == (
        600, 1000, 600, 1000,
    )  # fmt: skip
    smoke = for_subset(task, "tiny")
    assert (smoke.detection.train_min_size, smoke.detection.test_max_size) == (128, 160)
    assert smoke.train.batch_size == 2 and smoke.optim.lr == pytest.approx(0.01 * 2 / 16)


def test_detection_options_by_set() -> None:
    task = apply_overrides(
        get_task("voc"),
        {
            "detection.train_min_size": [480, 512, 544, 576, 608],
            "data.args.trainval_years": [2007, 2012],
            "detection.trainable_backbone_layers": 0,
        },
    )
    assert task.detection.train_min_size == [480, 512, 544, 576, 608]
    assert task.data.args["trainval_years"] == [2007, 2012]
    with pytest.raises(BenchError, match="detection.trainable_backbone_layers"):
        apply_overrides(task, {"detection.trainable_backbone_layers": 6})
    with pytest.raises(BenchError, match="has no field 'detection.min_size'"):
        apply_overrides(task, {"detection.min_size": 500})


def _variant(tmp_path: Path, source: str, edit) -> Path:
    raw = yaml.safe_load((paths.TASKS_DIR / f"{source}.yaml").read_text())
    edit(raw)
    path = tmp_path / f"{source}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("source", "edit", "expected"),
    [
        ("voc", lambda r: r.pop("detection"), "needs a 'detection' section"),
        ("voc", lambda r: r.update(input={"image_size": 600}), "'input' is not used by detection"),
        ("cifar10", lambda r: r.update(detection={}), "'detection' is only for tasks of kind"),
        ("cifar10", lambda r: r.pop("input"), "needs an 'input' section"),
        ("voc", lambda r: r["metrics"].update(primary="top1"), "metric 'top1' is not defined"),
    ],
)
def test_sections_belong_to_their_kind(tmp_path: Path, source: str, edit, expected: str) -> None:
    path = _variant(tmp_path, source, edit)
    with pytest.raises(BenchError) as info:
        load_task_file(path)
    assert str(info.value).startswith(str(path)) and expected in str(info.value)
