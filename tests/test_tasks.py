"""The task registry reads and validates YAML; mistakes name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark import paths
from benchmark.errors import BenchError
from benchmark.tasks import apply_overrides, get_task, list_tasks, load_task_file


def _write_variant(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((paths.TASKS_DIR / "cifar10.yaml").read_text())
    edit(raw)
    path = tmp_path / "cifar10.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cifar10_task_is_typed() -> None:
    task = get_task("cifar10")
    assert task.kind == "classification" and task.num_classes == 10
    assert task.splits.val.from_split == "train" and task.splits.val.fraction == 0.1
    assert task.metrics.primary == "top1"
    assert task.optim.name == "sgd" and task.optim.nesterov


def test_every_registered_task_validates() -> None:
    tasks, broken = list_tasks()
    assert "cifar10" in {t.name for t in tasks}
    assert broken == {}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r.pop("num_classes"), "field 'num_classes': required field is missing"),
        (lambda r: r["optim"].update(lr="fast"), "field 'optim.lr'"),
        (lambda r: r.update(kind="segmentation"), "field 'kind'"),
        (lambda r: r["metrics"].update(primary="top5"), "metric 'top5' is not defined"),
        (lambda r: r["data"].update(adapter="imagenet"), "unknown adapter 'imagenet'"),
        (lambda r: r.update(epochs=3), "field 'epochs': unknown field"),
        (lambda r: r["splits"]["val"].update(fraction=1.5), "field 'splits.val"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path, edit, expected) -> None:
    path = _write_variant(tmp_path, edit)
    with pytest.raises(BenchError) as info:
        load_task_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_name_must_match_file(tmp_path) -> None:
    path = _write_variant(tmp_path, lambda r: r.update(name="other"))
    with pytest.raises(BenchError, match="must match the file name"):
        load_task_file(path)


def test_not_yaml(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(BenchError, match="is not valid YAML"):
        load_task_file(path)


def test_overrides_are_validated_like_the_file() -> None:
    task = apply_overrides(get_task("cifar10"), {"optim.lr": 0.1, "train.batch_size": 4})
    assert task.optim.lr == 0.1 and task.train.batch_size == 4
    with pytest.raises(BenchError, match="train.batch_size"):
        apply_overrides(task, {"train.batch_size": 0})
    with pytest.raises(BenchError, match="no field 'nothing'"):
        apply_overrides(task, {"nothing.here": 1})
