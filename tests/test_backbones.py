"""The backbone registry: the paper's names, torchvision's original-data stand-ins, registry
mistakes caught early, and a fine-tuned run of ours used as a backbone."""

from __future__ import annotations

import functools
import hashlib
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from helpers import bench, read_json, run_dirs
from safetensors.torch import load_file

from benchmark.backbones import (
    TIMM_PREFIX,
    _meta_model,
    create_backbone,
    get_entry,
    list_backbones,
)
from benchmark.errors import BenchError

# The architectures the paper trained on original and on face-blurred ImageNet (its Table 3).
PAPER_ARCHS = {
    "resnet18": "r18", "resnet34": "r34", "resnet50": "r50", "resnet101": "r101",
    "resnet152": "r152", "alexnet": "alexnet", "vgg11": "vgg11", "vgg13": "vgg13",
    "vgg16": "vgg16", "vgg19": "vgg19", "squeezenet1_0": "squeezenet1_0",
    "shufflenet_v2_x1_0": "shufflenet_v2_x1_0", "mobilenet_v2": "mobilenet_v2",
    "densenet121": "densenet121", "densenet201": "densenet201",
}


def test_registry_names_every_paper_backbone() -> None:
    entries = {e.name: e for e in list_backbones()}
    for arch, short in PAPER_ARCHS.items():
        blurred, original = entries[f"blurred_{short}"], entries[f"original_{short}"]
        assert (blurred.arch, blurred.data, blurred.source) == (arch, "blurred", "hub")
        assert blurred.repo == "kaiyuy/imagenet-blur-pretrained-models"
        assert blurred.filename == f"{arch}_blurred_ILSVRC.pth"
        assert (original.arch, original.data, original.source, original.weights) == (
            arch, "original", "torchvision", "IMAGENET1K_V1"
        )
        assert "Stand-in: torchvision" in original.note
        torchvision.models.get_model_weights(arch)["IMAGENET1K_V1"]  # the enum member exists
    # every architecture is real (built on the `meta` device: no memory, no init)
    for arch in {e.arch for e in entries.values() if not e.arch.startswith(TIMM_PREFIX)}:
        assert sum(p.numel() for p in _meta_model(arch).parameters()) > 0


def test_unknown_name_suggests_the_closest(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert bench("run", "--task", "cifar10", "--backbone", "blured_r50",
                 "--results", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: unknown backbone 'blured_r50';")
    assert "Did you mean: blurred_r50" in err
    assert not (tmp_path / "r").exists()


def test_random_init_has_no_file() -> None:
    backbone = create_backbone("random_r18")
    assert backbone.arch == "resnet18"
    assert backbone.provenance == {
        "source": "torchvision", "registry_note": get_entry("random_r18").note, "weights": None,
        "note": "random initialisation", "sha256": None, "pretraining_data": "none",
    }
    with pytest.raises(BenchError, match="--arch resnet50 contradicts backbone 'random_r18'"):
        create_backbone("random_r18", "resnet50")


FETCH_HINT = (
    "run `bench checkpoints fetch {name}` on a machine with network and copy the cache folder it "
    "names to the same place here, or fetch with BENCH_CACHE_DIR set there and point "
    "BENCH_CACHE_DIR here at a copy of that folder."
)


def test_original_offline_not_cached_says_to_fetch(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError) as err:
        create_backbone("original_r18")
    assert str(err.value) == (
        "backbone original_r18: resnet18-f37072fd.pth is not in the torch hub cache "
        f"({tmp_path / 'torch' / 'hub' / 'checkpoints'}) and HF_HUB_OFFLINE is set; "
        + FETCH_HINT.format(name="original_r18")
    )
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "bench-cache"))
    with pytest.raises(BenchError, match=r"not in the BENCH_CACHE_DIR cache \("
                                         + str(tmp_path / "bench-cache" / "torch" / "hub")):
        create_backbone("original_r18")


def listed(capsys: pytest.CaptureFixture) -> dict[str, list[str]]:
    """`bench list backbones`, one row per backbone name."""
    assert bench("list", "backbones") == 0
    return {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}


def test_original_cached_copy_with_the_wrong_hash_is_refused_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """torchvision's file names carry a sha256 prefix; a file under that name in torch.hub's
    cache that does not match (a mirror's, a half-copied one) is refused and dropped."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cached)
    sha = hashlib.sha256(cached.read_bytes()).hexdigest()
    assert listed(capsys)["original_r18"][4] == "cached"  # looked up where runs look
    with pytest.raises(BenchError) as err:
        create_backbone("original_r18")
    assert str(err.value) == (
        f"backbone original_r18: {cached} has sha256 {sha}, but its name promises a hash "
        "starting f37072fd. The cached copy was removed: the next run downloads it again."
    )
    assert not cached.exists()


def write_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict) -> Path:
    path = tmp_path / "registry" / "backbones.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"backbones": entries}))
    monkeypatch.setenv("BENCH_BACKBONES_FILE", str(path))
    return path


def test_registry_mistakes_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    path = write_registry(tmp_path, monkeypatch, {
        "blurred_x": {"arch": "resnet18", "data": "blurred", "source": "hub",
                      "repo": "kaiyuy/imagenet-blur-pretrained-models"},
    })
    assert bench("list", "backbones") == 2
    assert capsys.readouterr().err == (
        f"bench: error: {path}: backbone 'blurred_x': source 'hub' needs 'filename'\n"
    )
    write_registry(tmp_path, monkeypatch, {
        "blurred_x": {"arch": "resnet18", "data": "blurred", "source": "file", "path": "x.pth",
                      "sha256": "ABC"},
    })
    assert bench("list", "backbones") == 2
    assert "sha256 must be 64 lowercase hex digits, or null until verified" in (
        capsys.readouterr().err
    )


def test_file_entry_pinned_and_relative_to_the_registry(
    paper_resnet18: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = write_registry(tmp_path, monkeypatch, {})
    shutil.copyfile(paper_resnet18, registry.parent / "mine.pth")
    sha = hashlib.sha256(paper_resnet18.read_bytes()).hexdigest()
    write_registry(tmp_path, monkeypatch, {
        "my_r18": {"arch": "resnet18", "data": "blurred", "source": "file", "path": "mine.pth",
                   "sha256": sha},
    })
    backbone = create_backbone("my_r18")
    assert backbone.provenance["sha256"] == sha
    assert backbone.provenance["sha256_check"] == "matches the sha256 pinned in the registry"
    write_registry(tmp_path, monkeypatch, {
        "my_r18": {"arch": "resnet18", "data": "blurred", "source": "file", "path": "mine.pth",
                   "sha256": "f" * 64},
    })
    with pytest.raises(BenchError, match=f"the registry pins {'f' * 64}, the file is {sha}"):
        create_backbone("my_r18")
    assert (registry.parent / "mine.pth").exists()  # not a cache copy: never deleted


def test_a_fine_tuned_run_as_a_backbone(paper_resnet18: Path, cifar_root: Path,
                                        tmp_path: Path) -> None:
    """`bench run --save-weights` keeps the fine-tuned network; its run directory (or its
    record.json) is then a backbone whose record traces back to the first run."""
    results = tmp_path / "results"
    assert bench("run", "--task", "cifar10", "--backbone", paper_resnet18, "--subset", "tiny",
                 "--max-steps", "2", "--data-root", cifar_root, "--results", results,
                 "--accelerator", "cpu", "--num-workers", "0", "--save-weights") == 0
    [run_dir] = run_dirs(results)
    record = read_json(run_dir / "record.json")
    assert record["weights_file"] == "weights.safetensors"
    saved = load_file(run_dir / "weights.safetensors")
    assert saved["fc.weight"].shape == (10, 512)  # the CIFAR-10 head, trained
    before = torch.load(paper_resnet18, weights_only=True)["state_dict"]
    assert not torch.equal(saved["conv1.weight"], before["module.conv1.weight"])  # trained

    for spec in (run_dir, run_dir / "record.json"):
        backbone = create_backbone(str(spec))
        assert backbone.arch == "resnet18"
        assert backbone.name.startswith(f"ft-cifar10-{record['backbone']['name']}-")
        prov = backbone.provenance
        assert prov["source"] == "run" and prov["layout"] == "safetensors"
        assert prov["sha256"] == hashlib.sha256(
            (run_dir / "weights.safetensors").read_bytes()).hexdigest()
        assert prov["finetuned_from"]["backbone"] == record["backbone"]["name"]
        assert prov["finetuned_from"]["sha256"] == record["backbone"]["sha256"]
        assert prov["finetuned_from"]["config_hash"] == record["config_hash"]
        loaded = backbone.model.state_dict()
        for key, value in saved.items():
            if not key.startswith("fc."):
                assert torch.equal(loaded[key], value), key
        assert loaded["fc.weight"].shape == (1000, 512)  # the 10-class head was dropped

    without = tmp_path / "copy"
    shutil.copytree(run_dir, without)
    (without / "weights.safetensors").unlink()
    with pytest.raises(BenchError, match=r"this run did not keep its weights; run it again with "
                                         r"`bench run \.\.\. --save-weights --force`"):
        create_backbone(str(without))


@contextmanager
def serving(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """``folder``'s files over HTTP on loopback: (base URL, the paths requested)."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def torchvision_style_file(folder: Path, arch: str) -> Path:
    """A randomly initialised network saved under torchvision's naming: ``<arch>-<the first 8
    hex digits of its own sha256>.pth``, so torch.hub's hash-prefix check can pass."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / "staged.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.get_model(arch).state_dict(), staged)
    prefix = hashlib.sha256(staged.read_bytes()).hexdigest()[:8]
    return staged.rename(folder / f"{arch}-{prefix}.pth")


def test_weights_already_in_torch_home_are_used_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cifar_root: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """A user who already has weights in torch.hub's cache ($TORCH_HOME/hub/checkpoints, where
    torchvision's ``weights.get_state_dict()`` keeps them) runs with that file as it is: nothing
    is downloaded, and the record names the file and the cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # online: only the cache saves a download
    cached = torchvision_style_file(tmp_path / "torch-home" / "hub" / "checkpoints", "resnet18")
    sha = hashlib.sha256(cached.read_bytes()).hexdigest()
    write_registry(tmp_path, monkeypatch, {"mirror_r18": {
        "arch": "resnet18", "data": "original", "source": "url",
        "url": f"http://127.0.0.1:9/weights/{cached.name}",  # nothing listens on port 9
    }})
    downloads: list[str] = []

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        downloads.append(url)
        raise OSError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    assert listed(capsys)["mirror_r18"][4] == "cached"
    results = tmp_path / "results"
    assert bench("run", "--task", "cifar10", "--backbone", "mirror_r18", "--subset", "tiny",
                 "--max-steps", "1", "--data-root", cifar_root, "--results", results,
                 "--accelerator", "cpu", "--num-workers", "0") == 0
    [run_dir] = run_dirs(results)
    backbone = read_json(run_dir / "record.json")["backbone"]
    with capsys.disabled():  # shown under `pytest -s`
        print(f"\nrecord backbone.path: {backbone['path']}  cache: {backbone['cache']}")
    assert downloads == []
    assert backbone["path"] == str(cached) and backbone["cache"] == "torch hub cache"
    assert backbone["sha256"] == sha and backbone["url"].endswith(f"/weights/{cached.name}")
    assert backbone["sha256_check"] == (
        f"matches the hash prefix {sha[:8]} in its file name (torch.hub's check)"
    )
    capsys.readouterr()
    assert bench("checkpoints", "fetch", "mirror_r18") == 0
    assert capsys.readouterr().out == (
        "mirror_r18: already cached, verified, loads completely\n"
        f"  file:   {cached}\n"
        f"  cache:  torch hub cache (TORCH_HOME): {cached.parent}\n"
        f"  sha256: {sha}  (NOT pinned: pin it in the registry if verified)\n"
    )
    assert downloads == [] and [p.name for p in cached.parent.iterdir()] == [cached.name]


def test_url_weights_download_once_into_the_cache_in_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The download path of the original_* entries (torch.hub's downloader, the file name's
    hash prefix) against loopback, with BENCH_CACHE_DIR: its torch/ folder is a TORCH_HOME."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    served = torchvision_style_file(tmp_path / "served", "squeezenet1_0")
    shutil.copyfile(served, served.parent / "squeezenet1_0-00000000.pth")
    entry = {"arch": "squeezenet1_0", "data": "original", "source": "url"}
    with serving(served.parent) as (base, requests):
        write_registry(tmp_path, monkeypatch, {"sq": {**entry, "url": f"{base}/{served.name}"}})
        assert bench("checkpoints", "fetch", "sq") == 0
        out = capsys.readouterr().out
        dest = tmp_path / "cache" / "torch" / "hub" / "checkpoints" / served.name
        assert out.startswith(f"sq: downloaded, verified, loads completely\n  file:   {dest}\n"
                              f"  cache:  BENCH_CACHE_DIR cache: {dest.parent}\n")
        assert dest.read_bytes() == served.read_bytes() and len(requests) == 1
        assert bench("checkpoints", "fetch", "sq") == 0
        assert "sq: already cached" in capsys.readouterr().out and len(requests) == 1

        # A file that does not match its name's hash prefix: the machine's or mirror's fault
        # (exit 1), and nothing is left behind.
        write_registry(tmp_path, monkeypatch,
                       {"bad": {**entry, "url": f"{base}/squeezenet1_0-00000000.pth"}})
        assert bench("checkpoints", "fetch", "bad") == 1
        err = capsys.readouterr().err
        assert "bad: FAILED: backbone bad: could not download" in err
        assert 'invalid hash value (expected "00000000"' in err
        assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
        # A URL with nothing there is the registry's mistake (exit 2).
        missing = f"{base}/nope-1234abcd.pt"
        write_registry(tmp_path, monkeypatch, {"typo": {**entry, "url": missing}})
        assert bench("checkpoints", "fetch", "typo") == 2
        assert f"{missing} answers 404 (File not found); check the URL" in capsys.readouterr().err

    # Copied to another machine, the folder serves as a TORCH_HOME too.
    monkeypatch.delenv("BENCH_CACHE_DIR")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache" / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_registry(tmp_path, monkeypatch, {"sq": {**entry, "url": f"{base}/{served.name}"}})
    assert create_backbone("sq").provenance["path"] == str(dest)
