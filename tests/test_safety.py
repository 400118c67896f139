"""Files a run reads cannot run code, and files it writes follow the umask.

Each failure is run the way a user runs it: one line on stderr, the expected exit code, and
nothing written under the results folder.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import bench

from benchmark.data.fixtures import MANIFEST_NAME, write_manifest


def _run(results: Path, *extra: str | Path) -> tuple[str | Path, ...]:
    return ("run", "--subset", "tiny", "--max-steps", "1", "--accelerator", "cpu",
            "--num-workers", "0", "--results", results, *extra)  # fmt: skip


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("bench: error: "), err
    return err


class _Payload:
    """Pickles as a call of ``func(arg)``: what a hostile batch file would hold."""

    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return self.func, (self.arg,)


def _cifar_copy(cifar_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(cifar_root, root)
    return root


def _plant(folder: Path, name: str, payload: object, manifest: bool) -> None:
    """Replace one batch file with ``payload``, as a real batch dict would hold its data."""
    entry = {"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": payload}
    with open(folder / name, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)
    if manifest:  # the folder vouches for its own files: the md5 check passes
        write_manifest(folder, "cifar10", sorted(p for p in folder.iterdir()
                                                 if p.name != MANIFEST_NAME))  # fmt: skip
    else:
        (folder / MANIFEST_NAME).unlink()


@pytest.mark.parametrize("via", ["os.system", "builtins.exec"])
@pytest.mark.parametrize("name", ["data_batch_2", "test_batch", "batches.meta"])
def test_cifar_batch_that_runs_code_is_refused(tmp_path, cifar_root, paper_resnet18, capsys,
                                               via, name) -> None:  # fmt: skip
    root = _cifar_copy(cifar_root, tmp_path)
    folder = root / "cifar-10-batches-py"
    marker = tmp_path / "pwned"
    payload = (_Payload(os.system, f"touch {marker}") if via == "os.system"
               else _Payload(exec, f"open({str(marker)!r}, 'w').close()"))  # fmt: skip
    _plant(folder, name, payload, manifest=True)
    results = tmp_path / "results"
    code = bench(*_run(results, "--task", "cifar10", "--backbone", paper_resnet18,
                       "--data-root", root))  # fmt: skip
    assert not marker.exists()
    err = _one_line_error(capsys)
    assert code == 2
    assert f"{folder / name}: refused to read" in err
    assert f".{via.split('.')[1]}, which no CIFAR-10 file holds" in err  # __builtin__.exec
    assert not results.exists()


def test_cifar_payload_without_manifest_fails_the_official_md5(tmp_path, cifar_root,
                                                               paper_resnet18, capsys) -> None:
    root = _cifar_copy(cifar_root, tmp_path)
    marker = tmp_path / "pwned"
    _plant(root / "cifar-10-batches-py", "data_batch_1", _Payload(os.system, f"touch {marker}"),
           manifest=False)  # fmt: skip
    results = tmp_path / "results"
    code = bench(*_run(results, "--task", "cifar10", "--backbone", paper_resnet18,
                       "--data-root", root))  # fmt: skip
    assert code == 2
    assert "not found or corrupted" in _one_line_error(capsys)
    assert not marker.exists() and not results.exists()


def test_fixture_manifest_vouches_only_for_files_it_lists(tmp_path, cifar_root, paper_resnet18,
                                                          capsys) -> None:  # fmt: skip
    root = _cifar_copy(cifar_root, tmp_path)
    manifest = root / "cifar-10-batches-py" / MANIFEST_NAME
    table = json.loads(manifest.read_text())
    del table["md5"]["data_batch_4"]
    manifest.write_text(json.dumps(table))
    results = tmp_path / "results"
    code = bench(*_run(results, "--task", "cifar10", "--backbone", paper_resnet18,
                       "--data-root", root))  # fmt: skip
    assert code == 2
    err = _one_line_error(capsys)
    assert f"{manifest} lists no md5 for data_batch_4" in err
    assert not results.exists()


def test_malformed_fixture_manifest_is_one_line(tmp_path, cifar_root, paper_resnet18,
                                                capsys) -> None:  # fmt: skip
    root = _cifar_copy(cifar_root, tmp_path)
    manifest = root / "cifar-10-batches-py" / MANIFEST_NAME
    manifest.write_text('{"dataset": "cifar10", "md5": ')
    results = tmp_path / "results"
    code = bench(*_run(results, "--task", "cifar10", "--backbone", paper_resnet18,
                       "--data-root", root))  # fmt: skip
    assert code == 2
    assert f"{manifest}: unreadable fixture manifest" in _one_line_error(capsys)
    assert not results.exists()


def test_restricted_unpickler_reads_python2_style_batches(tmp_path) -> None:
    """The real files are Python 2 pickles (strings as BINSTRING, read as latin-1); the allow-
    list must read them, not only our protocol-2 fixtures."""
    from benchmark.data.safe_pickle import load_data_pickle

    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    dtype_args = b"(S'u1'\nI0\nI1\ntR(I3\nS'|'\nNNNI-1\nI-1\nI0\ntb"
    raw = (b"(dp0\nS'labels'\n(lp1\nI3\naI7\nasS'data'\ncnumpy.core.multiarray\n_reconstruct\n"
           b"(cnumpy\nndarray\n(I0\ntS'b'\ntR(I1\n(I2\nI3\ntcnumpy\ndtype\n" + dtype_args
           + b"I00\nS'" + array.tobytes().decode("latin1").encode("unicode_escape")
           + b"'\ntbsS'batch_label'\nS'training batch 1 of 5'\ns.")  # fmt: skip
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    entry = load_data_pickle(path, "CIFAR-10")
    assert entry["labels"] == [3, 7] and entry["batch_label"] == "training batch 1 of 5"
    np.testing.assert_array_equal(entry["data"], array)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("run", "--task", "cifar10", "--backbone", "random_r18", "--results", "{f}/results",
          "--data-root", "{data}"), "--results {f}/results is under {f}, which is not a folder"),
        (("run", "--task", "cifar10", "--backbone", "random_r18", "--results", "{r}",
          "--data-root", "{f}", "--download"), "--data-root {f} is not a folder"),
        (("sweep", "--tasks", "cifar10", "--backbones", "random_r18", "--results", "{f}"),
         "--results {f} is not a folder"),
        (("leaderboard", "--results", "{r}", "--out", "{f}"), "--out {f} is not a folder"),
        (("demo", "--workdir", "{f}"), "--workdir {f} is not a folder"),
        (("data", "fixture", "--task", "cifar10", "--root", "{f}/sub"),
         "--root {f}/sub is under {f}, which is not a folder"),
    ],
    ids=["run-results", "run-data-root", "sweep-results", "leaderboard-out", "demo-workdir",
         "data-fixture-root"],
)
def test_folder_argument_that_is_a_file(tmp_path, cifar_root, capsys, args, flag) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    results = tmp_path / "results"
    subst = {"f": afile, "r": results, "data": cifar_root}
    before = sorted(tmp_path.rglob("*"))
    code = bench(*(a.format(**subst) for a in args))
    assert code == 2
    assert flag.format(**subst) in _one_line_error(capsys)
    assert sorted(tmp_path.rglob("*")) == before and afile.read_text() == "not a folder\n"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """What every torchvision download meets on a machine without network."""
    import urllib.error
    import urllib.request

    def unreachable(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)


@pytest.mark.parametrize(
    ("task", "named", "folder"),
    [
        ("cifar10", "CIFAR-10", "cifar-10-batches-py"),
        ("voc", "VOC2007", "VOCdevkit/VOC2007"),
        ("sun397", "SUN397", "SUN397"),
    ],
)
def test_download_without_network_is_one_line_exit_1(tmp_path, paper_resnet18, capsys,
                                                      no_network, task, named,
                                                      folder) -> None:  # fmt: skip
    data, results = tmp_path / "data", tmp_path / "results"
    code = bench(*_run(results, "--task", task, "--backbone", paper_resnet18, "--data-root", data,
                       "--download"))  # fmt: skip
    err = _one_line_error(capsys)
    assert code == 1
    where = (data / folder).resolve()
    assert f"could not download {named} into {where} (URLError: <urlopen error [Errno -3]" in err
    assert "check the network and retry, or download http" in err
    assert not results.exists()


def test_hub_dataset_without_network_is_one_line_exit_1(tmp_path, paper_resnet18, capsys,
                                                        monkeypatch) -> None:  # fmt: skip
    import datasets

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'flwrlabs/celeba' on the Hub (LocalEntryNotFound)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    for switch in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(switch, raising=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    results = tmp_path / "results"
    code = bench(*_run(results, "--task", "celeba", "--backbone", paper_resnet18,
                       "--set", "data.source=hf"))  # fmt: skip
    err = _one_line_error(capsys)
    assert code == 1
    assert (f"could not download Hugging Face dataset 'flwrlabs/celeba' into "
            f"{tmp_path / 'hf-cache'} (ConnectionError: Couldn't reach") in err  # fmt: skip
    assert not results.exists()


def test_bench_debug_keeps_the_traceback_of_an_environment_failure(tmp_path, paper_resnet18,
                                                                   no_network, monkeypatch,
                                                                   capsys) -> None:
    from benchmark.errors import EnvironmentFailure

    monkeypatch.setenv("BENCH_DEBUG", "1")
    try:  # re-raised, or printed above the one line: either way the traceback is there
        code = bench(*_run(tmp_path / "results", "--task", "cifar10", "--backbone",
                           paper_resnet18, "--data-root", tmp_path / "data", "--download"))
    except EnvironmentFailure:
        return
    assert code == 1
    assert "Traceback" in capsys.readouterr().err


def test_input_too_small_for_the_architecture(tmp_path, cifar_root, capsys,
                                              monkeypatch) -> None:  # fmt: skip
    """AlexNet cannot take the tiny subset's 32 px: refused before training, with the size
    that works; and that size does work."""
    import yaml

    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"backbones": {"random_alexnet": {
        "arch": "alexnet", "data": "none", "source": "torchvision", "weights": None}}}))
    monkeypatch.setenv("BENCH_BACKBONES_FILE", str(registry))
    results = tmp_path / "results"
    args = _run(results, "--task", "cifar10", "--backbone", "random_alexnet",
                "--data-root", cifar_root)  # fmt: skip
    assert bench(*args) == 2
    err = _one_line_error(capsys)
    assert "task cifar10: AlexNet cannot take 32x32 inputs (input.image_size=32; " in err
    assert ("the smallest size that works is 63: pass --set input.image_size=63 --set "
            "input.resize_size=63") in err  # fmt: skip
    assert not results.exists()
    assert bench(*args, "--set", "input.image_size=63", "--set", "input.resize_size=63") == 0


def _cifar_with_classes(cifar_root: Path, tmp_path: Path, names: list[str]) -> Path:
    root = _cifar_copy(cifar_root, tmp_path)
    folder = root / "cifar-10-batches-py"
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"num_cases_per_batch": 12, "label_names": names, "num_vis": 3072}, fh,
                    protocol=2)  # fmt: skip
    write_manifest(folder, "cifar10", sorted(p for p in folder.iterdir()
                                             if p.name != MANIFEST_NAME))  # fmt: skip
    return root


@pytest.mark.parametrize(
    ("names", "extra", "expected"),
    [
        (["cat", "dog", "ship"], (), "the data has 3 classes, the task says num_classes 10"),
        (None, ("--set", "num_classes=5"), "the data has 10 classes, the task says num_classes 5"),
    ],
    ids=["3-class-folder", "num-classes-override"],
)
def test_classes_in_the_data_must_match_num_classes(tmp_path, cifar_root, paper_resnet18,
                                                    capsys, names, extra,
                                                    expected) -> None:  # fmt: skip
    root = _cifar_with_classes(cifar_root, tmp_path, names) if names else cifar_root
    results = tmp_path / "results"
    code = bench(*_run(results, "--task", "cifar10", "--backbone", paper_resnet18,
                       "--data-root", root, *extra))  # fmt: skip
    assert code == 2
    assert f"bench: error: task cifar10: {expected}; point --data-root" in _one_line_error(capsys)
    assert not results.exists()


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_written_files_follow_the_umask(tmp_path, cifar_root, paper_resnet18, umask) -> None:
    """A shared results folder and a published leaderboard are as readable as any other file
    the user writes: nothing comes out 0600 from a temporary file."""
    from synthetic_records import logits_with_correct, write_classification_run

    results = tmp_path / "results"
    old = os.umask(umask)
    try:
        assert bench(*_run(results, "--task", "cifar10", "--backbone", paper_resnet18,
                           "--data-root", cifar_root)) == 0  # fmt: skip
        rng = np.random.default_rng(0)
        target = np.repeat(np.arange(5), 20)
        for seed in range(2):  # an original/blurred pair, so the leaderboard draws plots
            for name, data, rate in (("original_r18", "original", 0.7),
                                     ("blurred_r18", "blurred", 0.6)):  # fmt: skip
                correct = rng.random(len(target)) < rate
                write_classification_run(results, name, "resnet18", data, seed,
                                         logits_with_correct(target, correct, 5, rng), target,
                                         [f"c{i}" for i in range(5)])  # fmt: skip
        assert bench("leaderboard", "--results", results, "--n-boot", "100") == 0
    finally:
        os.umask(old)
    written = {p.relative_to(results).as_posix(): p for p in results.rglob("*")}
    names = {Path(n).name for n in written}
    assert {"record.json", "predictions.npz", "leaderboard.md", "leaderboard.csv",
            "index.html", "leaderboard-scores.npz"} <= names  # fmt: skip
    assert any(n.endswith(".png") for n in names)
    modes = {n: p.stat().st_mode & 0o777 for n, p in written.items()}
    wrong = {n: oct(m) for n, m in modes.items()
             if m != (0o777 if written[n].is_dir() else 0o666) & ~umask}  # fmt: skip
    assert not wrong
