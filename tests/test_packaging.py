"""What gets installed: the wheel carries the registries, and the declared dependencies are the
imported ones (checked from the source, so neither can drift again)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from benchmark import paths

PYPROJECT = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_canonical(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements}


def _third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Top-level module -> files importing it, for every absolute import that is neither the
    standard library nor our own code (lazy imports inside functions included)."""
    own = {"benchmark"} | {p.stem for p in folder.glob("*.py")}
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    found.setdefault(top, set()).add(path.name)
    return found


# The mmdet engine's packages (import name = distribution name), which only the optional
# install brings: mmengine and mmdet through the [mmdet] extra, mmcv through
# benchmark/engines/install_mmdet.py (PyPI has no wheel of it). Without them they may be missing.
MMDET_ENGINE = {"mmcv", "mmengine", "mmdet"}
INSTALLED_BY_SCRIPT = {"mmcv"}


def _distributions(imports: dict[str, set[str]]) -> dict[str, str]:
    """Import name -> the installed distribution providing it."""
    providers = packages_distributions()
    missing = sorted(set(imports) - set(providers) - MMDET_ENGINE)
    assert not missing, f"imported but not installed: {missing}"
    return {name: _canonical(providers[name][0]) if name in providers else name
            for name in imports}  # fmt: skip


def test_package_imports_are_declared_and_declared_dependencies_imported() -> None:
    imports = _third_party_imports(paths.PROJECT_ROOT / "benchmark")
    provided_by = _distributions(imports)
    required = _requirement_names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    optional = set().union(*(_requirement_names(v) for k, v in extras.items() if k != "dev"))
    undeclared = {m: sorted(imports[m]) for m, d in provided_by.items()
                  if d not in required | optional | INSTALLED_BY_SCRIPT}  # fmt: skip
    assert not undeclared, f"imported by benchmark/ but not declared: {undeclared}"
    unused = required - set(provided_by.values())
    assert not unused, f"declared in [project.dependencies] but never imported: {sorted(unused)}"


def test_test_imports_are_declared_in_dependencies_or_dev() -> None:
    imports = _third_party_imports(paths.PROJECT_ROOT / "tests")
    declared = _requirement_names(PYPROJECT["project"]["dependencies"]) | _requirement_names(
        PYPROJECT["project"]["optional-dependencies"]["dev"]
    )
    # the mmdet engine's tests skip without its install (and fail under CI)
    declared |= _requirement_names(PYPROJECT["project"]["optional-dependencies"]["mmdet"])
    declared |= INSTALLED_BY_SCRIPT
    undeclared = sorted(d for d in _distributions(imports).values() if d not in declared)
    assert not undeclared, f"tests import undeclared distributions: {undeclared}"


def test_every_declared_dependency_is_pinned_in_constraints() -> None:
    lines = (paths.PROJECT_ROOT / "constraints.txt").read_text().splitlines()
    pinned = {_canonical(line.split("==")[0]) for line in lines if "==" in line}
    declared = _requirement_names(PYPROJECT["project"]["dependencies"]).union(
        *(_requirement_names(v) for v in PYPROJECT["project"]["optional-dependencies"].values())
    )
    assert declared <= pinned, f"not pinned in constraints.txt: {sorted(declared - pinned)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from this checkout (no network: the venv's setuptools builds it)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(paths.PROJECT_ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("blurbench-*.whl")
    return built


def test_wheel_ships_the_package_and_both_registries(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tasks = sorted(p.name for p in (paths.PROJECT_ROOT / "tasks").glob("*.yaml"))
    assert tasks, "the checkout has no tasks/*.yaml"
    for task in tasks:
        assert f"benchmark/{paths.PACKAGED_REGISTRY}/tasks/{task}" in names
    assert f"benchmark/{paths.PACKAGED_REGISTRY}/checkpoints/backbones.yaml" in names
    assert "benchmark/cli.py" in names and "benchmark/data/cifar.py" in names
    assert "benchmark/leaderboard/templates/index.html.j2" in names  # the page's template
    assert "benchmark/leaderboard/templates/sort.js" in names  # and its sort script
    stray = sorted(n for n in names if not n.startswith(("benchmark/", "blurbench-")))
    assert not stray, f"the wheel installs more than the package: {stray}"


def test_installed_wheel_lists_tasks_and_backbones_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    """The wheel's files alone (this venv's dependencies), run from a folder with no checkout:
    the registries come from the package, through importlib.resources."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(PYTHONPATH=str(target), XDG_CACHE_HOME=str(tmp_path / "cache"))

    def bench(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "benchmark.cli", *argv], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip

    where = bench("--version")
    assert where.returncode == 0, where.stderr
    tasks = bench("list", "tasks")
    assert tasks.returncode == 0, tasks.stderr
    for task in ("cifar10", "celeba", "sun397", "voc"):
        assert re.search(rf"^{task}\s", tasks.stdout, flags=re.M), tasks.stdout
    backbones = bench("list", "backbones", "blurred_r50")
    assert backbones.returncode == 0, backbones.stderr
    assert re.search(r"^blurred_r50\s+resnet50\s", backbones.stdout, flags=re.M)
    located = subprocess.run(
        [sys.executable, "-c", "from benchmark import paths; print(paths.TASKS_DIR)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(located) == target / "benchmark" / paths.PACKAGED_REGISTRY / "tasks"
    recorded = subprocess.run(
        [sys.executable, "-c", "from benchmark.runner import code_version; print(code_version())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    expected = f"blurbench {PYPROJECT['project']['version']}"  # no git: the version
    assert recorded == expected == where.stdout.strip()
