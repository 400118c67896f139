"""The paper's weights by name, through the real huggingface_hub download code, against a local
stand-in for the Hub on loopback (``HF_ENDPOINT``): fetch once, verify, cache, refuse what does
not match, and say what to do when offline.

The registry entries used are the real ones in checkpoints/backbones.yaml (repo, filename,
revision); only the served bytes are made up: randomly initialised networks in the paper's
checkpoint layout.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from helpers import bench, bench_subprocess, read_json, run_dirs
from hub_stand_in import HubStandIn

from benchmark.backbones import create_backbone, get_entry
from benchmark.checkpoints import save_imagenet_example_checkpoint
from benchmark.errors import BenchError
from benchmark.hub import cached_hub_file

PAPER_REPO = "kaiyuy/imagenet-blur-pretrained-models"
R18_FILE = "resnet18_blurred_ILSVRC.pth"


def paper_bytes(arch: str, seed: int, tmp: Path) -> tuple[bytes, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    state = {k: v + 0.25 if v.is_floating_point() else v + 3
             for k, v in torchvision.models.get_model(arch).state_dict().items()}
    path = save_imagenet_example_checkpoint(tmp / f"{arch}-{seed}.pth", arch, state)
    return path.read_bytes(), state


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubStandIn:
    """The stand-in Hub serving the paper's resnet18 file, and an empty Hub cache."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    stand_in = HubStandIn(tmp_path / "hub")
    data, stand_in.r18_state = paper_bytes("resnet18", 11, tmp_path)  # type: ignore[attr-defined]
    stand_in.put(PAPER_REPO, R18_FILE, data)
    with stand_in.serving():
        monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
        yield stand_in


def test_registry_points_blurred_r18_at_the_paper_repo() -> None:
    entry = get_entry("blurred_r18")
    assert (entry.source, entry.repo, entry.filename, entry.data) == (
        "hub", PAPER_REPO, R18_FILE, "blurred"
    )


def test_run_by_name_downloads_verifies_and_records(hub: HubStandIn, cifar_root: Path,
                                                    tmp_path: Path) -> None:
    """The user's first command, `bench run --backbone blurred_r18`: the file comes from the
    Hub once, loads completely, and the record pins exactly which bytes were used."""
    served = (hub.root / PAPER_REPO / R18_FILE).read_bytes()
    results = tmp_path / "results"
    args = ["run", "--task", "cifar10", "--backbone", "blurred_r18", "--subset", "tiny",
            "--max-steps", "2", "--data-root", cifar_root, "--results", results,
            "--accelerator", "cpu", "--num-workers", "0"]
    assert bench(*args) == 0
    [run_dir] = run_dirs(results)
    backbone = read_json(run_dir / "record.json")["backbone"]
    assert backbone["name"] == "blurred_r18" and backbone["arch"] == "resnet18"
    assert backbone["source"] == "hub" and backbone["pretraining_data"] == "blurred"
    assert backbone["sha256"] == hashlib.sha256(served).hexdigest()
    assert backbone["sha256_check"] == "not pinned: recorded only"
    assert (backbone["repo"], backbone["filename"], backbone["revision"]) == (
        PAPER_REPO, R18_FILE, "main"
    )
    assert backbone["commit"] == hub.commit
    assert backbone["url"] == f"{hub.url}/{PAPER_REPO}/resolve/{hub.commit}/{R18_FILE}"
    assert backbone["layout"] == "{'state_dict': ...} + prefix 'module.'"
    assert hub.gets(R18_FILE) == 1
    # Cached and verified: a second resolution uses the cache without asking the Hub.
    before = len(hub.requests)
    again = create_backbone("blurred_r18")
    assert len(hub.requests) == before
    for key, value in hub.r18_state.items():  # type: ignore[attr-defined]
        if not key.startswith("fc."):
            assert torch.equal(again.model.state_dict()[key], value), key


def test_fetch_prints_the_sha_to_pin_and_list_shows_cached(
    hub: HubStandIn, capsys: pytest.CaptureFixture
) -> None:
    assert bench("list", "backbones") == 0
    listing = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert listing["blurred_r18"][1:5] == ["resnet18", "blurred", "hub", "no"]
    assert bench("checkpoints", "fetch", "blurred_r18") == 0
    out = capsys.readouterr().out
    sha = hashlib.sha256((hub.root / PAPER_REPO / R18_FILE).read_bytes()).hexdigest()
    assert "blurred_r18: downloaded, verified, loads completely" in out
    assert f"sha256: {sha}  (NOT pinned" in out
    # r18 is cached; r101 and r152 are not on this Hub: they fail, the command exits 2
    assert bench("checkpoints", "fetch", "blurred_r1*") == 2
    captured = capsys.readouterr()
    assert "blurred_r18: already cached" in captured.out
    assert "blurred_r101: FAILED: backbone blurred_r101: the Hub repo" in captured.err
    assert "has no file 'resnet101_blurred_ILSVRC.pth' at revision main; fix its `filename` " \
        "in /" in captured.err
    assert "2 backbone(s) failed to fetch: blurred_r101, blurred_r152." in captured.err
    assert hub.gets(R18_FILE) == 1
    assert bench("list", "backbones") == 0
    listing = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert listing["blurred_r18"][4] == "cached" and listing["blurred_r50"][4] == "no"


def private_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **fields: object) -> None:
    entry = {"arch": "resnet18", "data": "blurred", "source": "hub", "repo": PAPER_REPO,
             "filename": R18_FILE, "revision": "main", **fields}
    path = tmp_path / "registry" / "backbones.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"backbones": {"pinned_r18": entry}}))
    monkeypatch.setenv("BENCH_BACKBONES_FILE", str(path))


def test_pinned_sha256_match_and_mismatch(hub: HubStandIn, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    served = (hub.root / PAPER_REPO / R18_FILE).read_bytes()
    private_registry(tmp_path, monkeypatch, sha256=hashlib.sha256(served).hexdigest())
    backbone = create_backbone("pinned_r18")
    assert backbone.provenance["sha256_check"] == "matches the sha256 pinned in the registry"

    # The upstream file changes under the same name: refused, and the stale copy is dropped.
    changed, _ = paper_bytes("resnet18", 12, tmp_path)
    hub.put(PAPER_REPO, R18_FILE, changed)
    private_registry(tmp_path, monkeypatch, sha256="0" * 64)
    with pytest.raises(BenchError) as err:
        create_backbone("pinned_r18")
    message = str(err.value)
    assert f"sha256 mismatch for {tmp_path / 'hf-cache'}" in message
    assert f"the registry pins {'0' * 64}, the file is {hashlib.sha256(served).hexdigest()}" in (
        message
    )
    assert "The cached copy was removed: the next run downloads it again." in message
    blobs = list((tmp_path / "hf-cache").rglob("blobs/*"))
    assert blobs == []
    # the next try downloads again (and, still not matching the pin, is refused again)
    with pytest.raises(BenchError, match=f"the file is {hashlib.sha256(changed).hexdigest()}"):
        create_backbone("pinned_r18")
    assert hub.gets(R18_FILE) == 2


def test_corrupt_cached_copy_is_removed_and_fetched_again(hub: HubStandIn) -> None:
    first = create_backbone("blurred_r18")
    cached = cached_hub_file(PAPER_REPO, R18_FILE, "main")
    assert cached is not None
    data = cached.read_bytes()
    cached.resolve().write_bytes(data[: len(data) // 3])  # a killed copy, a bad disk
    with pytest.raises(BenchError) as err:
        create_backbone("blurred_r18")
    assert "not a readable checkpoint (truncated or corrupt?)" in str(err.value)
    assert "The cached copy was removed: the next run downloads it again." in str(err.value)
    assert cached_hub_file(PAPER_REPO, R18_FILE, "main") is None
    assert not cached.exists() and not cached.is_symlink()
    again = create_backbone("blurred_r18")
    assert again.provenance["sha256"] == first.provenance["sha256"]
    assert hub.gets(R18_FILE) == 2


def test_offline_with_nothing_cached_says_to_fetch(hub: HubStandIn, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh process, as on a cluster node: huggingface_hub reads HF_HUB_OFFLINE at import.
    result = bench_subprocess(
        "checkpoints", "inspect", "blurred_r18",
        env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("bench: error: backbone blurred_r18: resnet18_blurred_ILSVRC.pth from "
                           f"the Hub repo {PAPER_REPO} (revision main) is not in the Hugging "
                           f"Face hub cache ({tmp_path / 'empty'}) and HF_HUB_OFFLINE is set; "
                           "run `bench checkpoints fetch blurred_r18`")
    assert hub.requests == []
    # The same from `bench run`, before anything is written to results/.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert bench("run", "--task", "cifar10", "--backbone", "blurred_r18",
                 "--results", tmp_path / "results") == 2
    assert "run `bench checkpoints fetch blurred_r18`" in capsys.readouterr().err
    assert hub.requests == []
    assert not (tmp_path / "results").exists()


def test_offline_with_the_file_cached_needs_no_network(hub: HubStandIn,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert bench("checkpoints", "fetch", "blurred_r18") == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    backbone = create_backbone("blurred_r18")
    assert backbone.provenance["commit"] == hub.commit


def test_timm_weights_from_the_hub(hub: HubStandIn, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm", reason="timm is an optional extra (blurbench[timm])")
    from safetensors.torch import save

    torch.manual_seed(3)
    model = timm.create_model("resnet18.a1_in1k", pretrained=False)
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    hub.put("timm/resnet18.a1_in1k", "model.safetensors", save(state))
    backbone = create_backbone("timm:resnet18.a1_in1k")
    assert backbone.arch == "timm:resnet18.a1_in1k" and backbone.name == "timm-resnet18.a1_in1k"
    assert backbone.provenance["source"] == "timm"
    assert backbone.provenance["layout"] == "safetensors"
    assert backbone.provenance["repo"] == "timm/resnet18.a1_in1k"
    loaded = backbone.model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key


def test_timm_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # what an environment without timm sees
    with pytest.raises(BenchError, match=r"install blurbench\[timm\]"):
        create_backbone("timm:resnet18.a1_in1k")


def test_revision_pinning_and_registry_mistakes(hub: HubStandIn, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    private_registry(tmp_path, monkeypatch, revision=hub.commit)  # pinned to a commit
    pinned = create_backbone("pinned_r18")
    assert (pinned.provenance["revision"], pinned.provenance["commit"]) == (hub.commit,
                                                                            hub.commit)
    assert f"/resolve/{hub.commit}/{R18_FILE}" in hub.requests[-1][1]
    private_registry(tmp_path, monkeypatch, revision="v9")
    with pytest.raises(BenchError, match="has no revision 'v9'; fix its `revision` in /"):
        create_backbone("pinned_r18")
    private_registry(tmp_path, monkeypatch, filename="resnet18_blurred.pth")
    with pytest.raises(BenchError, match="has no file 'resnet18_blurred.pth' at revision main; "
                                         "fix its `filename`"):
        create_backbone("pinned_r18")
    private_registry(tmp_path, monkeypatch, arch="resnet50")
    with pytest.raises(BenchError, match=r"the registry says resnet50, which contradicts the "
                                         r"checkpoint's 'arch' field \(resnet18\)"):
        create_backbone("pinned_r18")


def test_hub_files_land_in_the_users_hub_cache_and_are_found_offline(
    hub: HubStandIn, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`bench checkpoints fetch` fills the standard Hub cache (HF_HUB_CACHE), says where, and
    writes nothing into the source checkout; a node without network then finds the file."""
    from huggingface_hub import scan_cache_dir

    from benchmark import paths

    in_repo = paths.PROJECT_ROOT / "checkpoints" / "cache"
    existed = in_repo.exists()
    assert bench("checkpoints", "fetch", "blurred_r18") == 0
    out = capsys.readouterr().out.splitlines()
    hf_cache = tmp_path / "hf-cache"
    snapshots = hf_cache / f"models--{PAPER_REPO.replace('/', '--')}" / "snapshots"
    path = snapshots / hub.commit / R18_FILE
    assert out[:3] == [
        "blurred_r18: downloaded, verified, loads completely",
        f"  file:   {path}",
        f"  cache:  Hugging Face hub cache (HF_HUB_CACHE): {hf_cache}",
    ]
    # huggingface_hub's own tools see it: the standard layout, not a folder of ours
    [repo] = scan_cache_dir(hf_cache).repos
    [revision] = repo.revisions
    assert repo.repo_id == PAPER_REPO and revision.commit_hash == hub.commit
    assert [f.file_name for f in revision.files] == [R18_FILE]
    assert existed or not in_repo.exists()
    assert list((paths.PROJECT_ROOT / "checkpoints").rglob(R18_FILE)) == []

    # A node without network: offline, a dead endpoint, the same HF_HUB_CACHE.
    result = bench_subprocess(
        "checkpoints", "inspect", "blurred_r18",
        env={"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9",
             "HF_HUB_CACHE": str(hf_cache)},
    )
    assert result.returncode == 0, result.stderr
    assert f"file         {path} (" in result.stdout
    assert hub.gets(R18_FILE) == 1


def test_bench_cache_dir_is_an_hf_home(hub: HubStandIn, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """BENCH_CACHE_DIR overrides the user's caches; its hf/ folder is an HF_HOME, so the copy
    a cluster gets works with or without blurbench's variable."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "bench-cache"))
    fetched = create_backbone("blurred_r18")
    path = Path(fetched.provenance["path"])
    assert path.is_relative_to(tmp_path / "bench-cache" / "hf" / "hub")
    assert fetched.provenance["cache"] == "BENCH_CACHE_DIR cache"
    assert not (tmp_path / "hf-cache").exists()
    monkeypatch.delenv("BENCH_CACHE_DIR")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "bench-cache" / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = create_backbone("blurred_r18")
    assert again.provenance["path"] == str(path)
    assert again.provenance["cache"] == "Hugging Face hub cache"
    assert hub.gets(R18_FILE) == 1


TIMM_DOWNLOAD = """
import timm
timm.create_model("resnet18.a1_in1k", pretrained=True)
print("timm downloaded")
"""


def test_weights_timm_downloaded_itself_are_used(hub: HubStandIn, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`timm.create_model(..., pretrained=True)` and `--backbone timm:<model>` share one cache:
    what timm fetched on its own is used offline, without another download."""
    timm = pytest.importorskip("timm", reason="timm is an optional extra (blurbench[timm])")
    from safetensors.torch import save

    torch.manual_seed(4)
    model = timm.create_model("resnet18.a1_in1k", pretrained=False)
    hub.put("timm/resnet18.a1_in1k", "model.safetensors", save(model.state_dict()))
    # timm's own download, in a fresh process (huggingface_hub reads its settings at import)
    done = subprocess.run([sys.executable, "-c", TIMM_DOWNLOAD], capture_output=True, text=True,
                          env={**os.environ, "HF_ENDPOINT": hub.url}, timeout=300)
    assert done.returncode == 0 and "timm downloaded" in done.stdout, done.stderr[-2000:]
    assert hub.gets("model.safetensors") == 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = create_backbone("timm:resnet18.a1_in1k")
    assert Path(backbone.provenance["path"]).is_relative_to(tmp_path / "hf-cache")
    assert backbone.provenance["commit"] == hub.commit
    assert hub.gets("model.safetensors") == 1
    loaded = backbone.model.state_dict()
    assert torch.equal(loaded["conv1.weight"], model.state_dict()["conv1.weight"])


def test_a_cached_hub_backbone_keys_without_torch(hub: HubStandIn, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench run` decides "already done" from the Hub cache alone: before the download there
    is no quick answer; after it, the key's view of blurred_r18 is the runner's (commit, sha)."""
    from benchmark.run_key import backbone_key_identity

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert backbone_key_identity("blurred_r18", None) is None  # not cached: the runner fetches
    loaded = create_backbone("blurred_r18")
    fast = backbone_key_identity("blurred_r18", None)
    assert fast is not None and (fast.name, fast.arch) == (loaded.name, loaded.arch)
    assert fast.provenance["sha256"] == loaded.provenance["sha256"]
    assert fast.provenance["weights"] == loaded.provenance["weights"]
    assert "@" in fast.provenance["weights"]  # pinned to the cached commit
