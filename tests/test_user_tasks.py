"""User tasks outside the package: `--tasks-dir` and BENCH_TASKS_DIR add to the built-in tasks,
a clash with a built-in name needs `replace: true`, `bench list tasks` says where each task comes
from, and an ImageFolder task runs end to end from its generated fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import bench, read_json, run_dirs

from benchmark.data.splits import load_split
from benchmark.errors import BenchError
from benchmark.tasks import get_task, list_tasks

USER_TASK = {
    "name": "shapes",
    "kind": "classification",
    "description": "my own images, one folder per class",
    "data": {"adapter": "imagefolder", "args": {"path": "shapes"}},
    "splits": {"train": "train", "val": {"from": "train", "fraction": 0.2}, "test": "test"},
    "num_classes": 3,
    "metrics": {"primary": "top1", "others": ["mean_per_class_accuracy"]},
    "optim": {"lr": 0.01},
    "train": {"epochs": 1, "batch_size": 4, "num_workers": 0},
    "input": {"image_size": 32, "resize_size": 32},
    "smoke": {"train": 8, "val": 2, "test": 6},
    "fixture": {"per_class": {"train": 4, "test": 2}, "image_size": 32},
}


def _write(folder: Path, task: dict, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or task['name']}.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def test_tasks_dir_adds_a_task_and_list_says_where_it_is_from(tmp_path, capsys) -> None:
    mine = tmp_path / "my-tasks"
    _write(mine, USER_TASK)
    assert bench("list", "tasks", "--tasks-dir", mine, "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["shapes"]["source"] == str(mine) and rows["cifar10"]["source"] == "built-in"
    assert rows["shapes"]["file"] == str(mine / "shapes.yaml")
    assert bench("list", "tasks", "--tasks-dir", mine) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["NAME", "KIND", "CLASSES", "PRIMARY_METRIC", "SOURCE"]
    assert any(line.split()[0] == "shapes" and str(mine) in line for line in lines)
    assert "shapes" not in {t.name for t in list_tasks()[0]}  # only where asked for


def test_bench_tasks_dir_adds_too(tmp_path, monkeypatch) -> None:
    mine = tmp_path / "env-tasks"
    _write(mine, USER_TASK)
    monkeypatch.setenv("BENCH_TASKS_DIR", str(mine))
    assert get_task("shapes").num_classes == 3 and get_task("cifar10").num_classes == 10


def test_a_built_in_name_needs_replace(tmp_path, capsys) -> None:
    mine = tmp_path / "clash"
    raw = yaml.safe_load((Path(__file__).parents[1] / "tasks" / "cifar10.yaml").read_text())
    raw["description"] = "my CIFAR-10"
    path = _write(mine, raw)
    assert bench("list", "tasks", "--tasks-dir", mine) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path}: task 'cifar10' has the name of a built-in task" in err
    assert "'replace: true'" in err and "\n" not in err
    raw["replace"] = True
    _write(mine, raw)
    assert get_task("cifar10", [mine]).description == "my CIFAR-10"
    missing = tmp_path / "nowhere"
    with pytest.raises(BenchError, match="task folder .*nowhere does not exist"):
        get_task("cifar10", [missing])


def test_imagefolder_split_files_keep_their_order(tmp_path) -> None:
    task_raw = {**USER_TASK, "name": "listed",
                "data": {"adapter": "imagefolder",
                         "args": {"path": "listed", "layout": "split_files",
                                  "split_files": {"train": "train.txt", "test": "test.txt"}}}}
    mine = tmp_path / "tasks"
    _write(mine, task_raw)
    data_root = tmp_path / "data"
    assert bench("data", "fixture", "--task", "listed", "--tasks-dir", mine, "--root",
                 data_root) == 0  # fmt: skip
    folder = data_root / "listed"
    listed = (folder / "test.txt").read_text().split()
    task = get_task("listed", [mine])
    test = load_split(task, data_root, "test", download=False)
    assert test.example_ids == listed and test.is_fixture
    assert test.class_names == sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert test.files == [folder / "test.txt"]
    (folder / "test.txt").write_text("class_000/nope.jpg\n")
    with pytest.raises(BenchError, match=r"test.txt line 1: 'class_000/nope.jpg' is not an image"):
        load_split(task, data_root, "test", download=False)


def test_imagefolder_task_outside_the_repository_runs(tmp_path, paper_resnet18) -> None:
    mine = tmp_path / "tasks"
    _write(mine, USER_TASK)
    data_root = tmp_path / "data"
    assert bench("data", "fixture", "--task", "shapes", "--tasks-dir", mine, "--root",
                 data_root) == 0  # fmt: skip
    assert sorted(p.name for p in (data_root / "shapes" / "train").iterdir()) == [
        "class_000", "class_001", "class_002"]  # fmt: skip
    code = bench("run", "--task", "shapes", "--tasks-dir", mine, "--backbone", paper_resnet18,
                 "--data-root", data_root, "--subset", "tiny", "--max-steps", "2",
                 "--accelerator", "cpu", "--num-workers", "0", "--results", tmp_path / "res")
    assert code == 0
    (run_dir,) = run_dirs(tmp_path / "res")
    record = read_json(run_dir / "record.json")
    assert record["status"] == "completed" and record["task"] == "shapes"
    assert record["data"]["fixture"] is True and record["data"]["sizes"]["test"] == 6
    assert record["class_names"] == ["class_000", "class_001", "class_002"]
    assert record["request"]["tasks_dirs"] == [str(mine)]
    assert 0.0 <= record["metrics"]["top1"] <= 1.0
