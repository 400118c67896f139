"""`bench run` for a finished run answers "already done" without torch: the run key computed
from the task YAML, the cached checkpoint sha256 and the adapters' index part is the runner's
key, and a changed task, checkpoint or dataset is a new run, never "done"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import bench, run_dirs

from benchmark.backbones import create_backbone
from benchmark.file_digests import FileDigests
from benchmark.request import RunRequest
from benchmark.run_key import already_done, backbone_key_identity

TRAINING = ("torch", "torchvision", "pytorch_lightning", "lightning", "lightning_fabric",
            "torchmetrics")  # fmt: skip
TINY = ["--task", "cifar10", "--subset", "tiny", "--max-steps", "2", "--accelerator", "cpu",
        "--num-workers", "0"]  # fmt: skip


@pytest.fixture(autouse=True)
def _private_digest_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "done-xdg"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cifar_root, paper_resnet18) -> tuple[list[str], Path]:
    """One real tiny run, by a checkpoint file that names its own architecture."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "done-xdg"))
    results = tmp_path_factory.mktemp("done-results")
    argv = [*TINY, "--backbone", str(paper_resnet18), "--data-root", str(cifar_root),
            "--results", str(results)]  # fmt: skip
    try:
        assert bench("run", *argv) == 0
    finally:
        mp.undo()
    (run_dir,) = run_dirs(results)
    return argv, run_dir


def _cli(argv: list[str], importtime: bool = False) -> subprocess.CompletedProcess:
    """`bench run ...` in a fresh interpreter; fails if a training module was imported."""
    code = ("import sys, benchmark.cli; rc = benchmark.cli.main(sys.argv[1:]); "
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING!r} "
            "or m.startswith('benchmark.models')); assert not bad, bad; "
            "assert 'benchmark.data.cifar_index' in sys.modules; sys.exit(rc)")  # fmt: skip
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-c", code, "run", *argv],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)  # fmt: skip


def test_already_done_without_torch(finished) -> None:
    argv, run_dir = finished
    proc = _cli(argv, importtime=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"already done: {run_dir} (pass --force to run it again)"
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "benchmark.run_key" in imported  # the listing is read: -X importtime worked
    assert not {m for m in imported if m.split(".")[0] in TRAINING}


def test_the_fast_key_is_the_runner_key(finished) -> None:
    argv, run_dir = finished
    request = _request(argv)
    assert already_done(request) == run_dir
    # the backbone part by itself, against the runner's resolution
    loaded = create_backbone(request.backbone)
    fast = backbone_key_identity(request.backbone, None)
    assert fast is not None
    assert (fast.name, fast.arch) == (loaded.name, loaded.arch)
    for field in ("sha256", "weights"):
        assert fast.provenance.get(field) == loaded.provenance.get(field), field


def _request(argv: list[str], **changes: object) -> RunRequest:
    values = dict(zip(argv[::2], argv[1::2], strict=True))
    fields = {flag.lstrip("-").replace("-", "_"): value for flag, value in values.items()}
    fields["max_steps"] = int(fields["max_steps"])
    fields["num_workers"] = int(fields["num_workers"])
    return RunRequest(**{**fields, **changes})


@pytest.mark.parametrize("change", [
    {"overrides": {"optim.lr": 0.5}},
    {"seed": 1},
    {"max_steps": 3},
    {"trainer": {"gradient_clip_val": 1.0}},
    {"force": True},
    {"dry_run": True},
])  # fmt: skip
def test_another_request_is_not_done(finished, change) -> None:
    argv, _ = finished
    assert already_done(_request(argv, **change)) is None


def test_watching_options_leave_it_done(finished) -> None:
    argv, run_dir = finished
    request = _request(argv, loggers=["csv"], trainer={"enable_progress_bar": False})
    assert already_done(request) == run_dir


def test_changed_data_or_checkpoint_is_not_done(finished, tmp_path) -> None:
    """A copy of the data with one batch changed, or a checkpoint file changed in place (same
    name, new content: the cached sha256 is recomputed), is a new run."""
    import shutil

    argv, run_dir = finished
    request = _request(argv)
    data = tmp_path / "data"
    shutil.copytree(request.data_root, data)
    assert already_done(_request(argv, data_root=data)) == run_dir  # a copy is the same data
    batch = data / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\x00")
    assert already_done(_request(argv, data_root=data)) is None
    checkpoint = tmp_path / Path(request.backbone).name
    shutil.copy(request.backbone, checkpoint)
    # a file never read: its own `arch` field is unknown here, so only --arch decides quickly
    assert already_done(_request(argv, backbone=str(checkpoint))) is None
    same = _request(argv, backbone=str(checkpoint), arch="resnet18")
    assert already_done(same) == run_dir
    with open(checkpoint, "ab") as fh:
        fh.write(b"\0")
    assert already_done(same) is None


def test_a_task_mistake_is_the_runners_error(finished) -> None:
    from benchmark.errors import BenchError

    argv, _ = finished
    with pytest.raises(BenchError, match="has no field 'optim.lrr'"):
        already_done(_request(argv, overrides={"optim.lrr": 0.5}))


def test_a_trainer_argument_the_runner_sets_is_refused_not_done(finished) -> None:
    """`--trainer max_steps=N` hashes like `--max-steps N`; the runner refuses it, so the fast
    path must too, instead of answering "already done" for the finished `--max-steps` run."""
    from benchmark.errors import BenchError

    argv, _ = finished
    steps = int(dict(zip(argv[::2], argv[1::2], strict=True))["--max-steps"])
    with pytest.raises(BenchError, match="--trainer max_steps: not settable this way"):
        already_done(_request(argv, max_steps=None, trainer={"max_steps": steps}))


def test_registry_backbones_resolve_like_the_runner(tmp_path, paper_resnet18, monkeypatch):
    """A registry entry with a local file, one with no weights, and one only the runner can
    resolve (torchvision's weights: None here, never a different key)."""
    import shutil

    shutil.copy(paper_resnet18, tmp_path / "weights.pth")
    registry = {"backbones": {
        "local_r18": {"arch": "resnet18", "data": "blurred", "source": "file",
                      "path": "weights.pth"},
        "random_r18": {"arch": "resnet18", "data": "none", "source": "torchvision",
                       "weights": None},
        "original_r18": {"arch": "resnet18", "data": "original", "source": "torchvision",
                         "weights": "IMAGENET1K_V1"},
    }}  # fmt: skip
    (tmp_path / "backbones.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("BENCH_BACKBONES_FILE", str(tmp_path / "backbones.yaml"))
    for name in ("local_r18", "random_r18"):
        fast, loaded = backbone_key_identity(name, None), create_backbone(name)
        assert fast is not None
        assert (fast.name, fast.arch) == (loaded.name, loaded.arch)
        for field in ("sha256", "weights"):
            assert fast.provenance.get(field) == loaded.provenance.get(field), (name, field)
    assert backbone_key_identity("original_r18", None) is None
    assert backbone_key_identity("local_r18", "resnet50") is None  # contradicts the registry


def test_digest_facts_are_forgotten_with_a_changed_file(tmp_path) -> None:
    cache, file = tmp_path / "digests.json", tmp_path / "weights.pth"
    file.write_bytes(b"one")
    digests = FileDigests(cache)
    digests.note(file, "arch", "resnet18")
    digests.save()
    assert FileDigests(cache).noted(file, "arch") == "resnet18"
    file.write_bytes(b"two!")
    assert FileDigests(cache).noted(file, "arch", None) is None
    with pytest.raises(KeyError):
        FileDigests(cache).noted(file, "arch")


def test_repeating_a_record_into_its_folder_is_done_without_torch(finished) -> None:
    """`bench run --config RUN_DIR` into the same results: "already done", quickly; a record
    that this request would not repeat exactly is left to the runner (which refuses it)."""
    from benchmark.run_record import read_record

    argv, run_dir = finished
    proc = _cli(["--config", str(run_dir)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"already done: {run_dir}")
    recorded = read_record(run_dir)
    assert already_done(_request(argv), recorded) == run_dir
    changed = recorded.model_copy(update={"config_hash": "0" * 64})
    assert already_done(_request(argv), changed) is None
    other = recorded.model_copy(
        update={"config": {"backbone": {"sha256": "0" * 64}}, "config_hash": None}
    )
    assert already_done(_request(argv), other) is None
