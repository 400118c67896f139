"""The leaderboard is analysis, not training: `bench leaderboard` imports no torch or Lightning,
every module of the leaderboard and analysis packages imports on its own, and the leaderboard's
modules import each other one way only (no cycle, as leaderboard.py <-> leaderboard_html.py
once had)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_records import logits_with_correct, write_classification_run

import benchmark.analysis
import benchmark.leaderboard

TRAINING = ("torch", "pytorch_lightning", "lightning", "torchvision", "torchmetrics")
PACKAGE_DIR = Path(benchmark.leaderboard.__file__).parent


def _modules(package: object) -> list[str]:
    folder = Path(package.__file__).parent  # type: ignore[attr-defined]
    name = package.__name__  # type: ignore[attr-defined]
    return [name] + [f"{name}.{p.stem}" for p in sorted(folder.glob("*.py"))
                     if p.stem != "__init__"]  # fmt: skip


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip


CHECK = (
    "import sys; loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({training!r}));"
    " assert not loaded, f'imported {{loaded}}'"
)


@pytest.mark.parametrize(
    "module", _modules(benchmark.leaderboard) + _modules(benchmark.analysis)
)  # fmt: skip
def test_each_module_imports_alone_without_torch(module: str) -> None:
    """In a fresh interpreter, so an import cycle that only a given first import trips shows."""
    proc = _run(f"import {module}; " + CHECK.format(training=TRAINING))
    assert proc.returncode == 0, proc.stderr


def _imports_within_package(path: Path) -> set[str]:
    """Names of the package's modules that ``path`` imports (``__init__`` for the package)."""
    package = benchmark.leaderboard.__name__
    siblings = {p.stem for p in PACKAGE_DIR.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                base = package + (f".{base}" if base else "")
            names = [base] if base != package else [
                f"{base}.{alias.name}" if alias.name in siblings else base for alias in node.names
            ]  # fmt: skip
        for name in names:
            if name == package:
                found.add("__init__")
            elif name.startswith(package + "."):
                found.add(name[len(package) + 1:].split(".")[0])
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_leaderboard_modules_import_one_way() -> None:
    graph = {p.stem: _imports_within_package(p) for p in PACKAGE_DIR.glob("*.py")}
    assert graph["__init__"] >= {"build", "model"}  # the scan sees the package's own imports
    assert graph["build"] >= {"collect", "compare", "pairs", "plots", "render"}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_the_page_template_is_a_package_file() -> None:
    """Rendering reads templates/ through the package, as an installed wheel will have it."""
    from jinja2 import PackageLoader

    assert (PACKAGE_DIR / "templates" / "index.html.j2").is_file()
    loader = PackageLoader("benchmark.leaderboard", "templates")
    assert {"index.html.j2", "sort.js"} <= set(loader.list_templates())


def _original_vs_blurred(results: Path, out: Path, seeds: int, rng_seed: int) -> list[str]:
    """Records with predictions of one original/blurred pair over ``seeds`` seeds; the
    `bench leaderboard` arguments that build them into ``out``."""
    target = np.repeat(np.arange(4), 25)
    rng = np.random.default_rng(rng_seed)
    for seed in range(seeds):
        for name, data in (("original_r18", "original"), ("blurred_r18", "blurred")):
            logits = logits_with_correct(target, rng.random(len(target)) < 0.7, 4, rng)
            write_classification_run(results, name, "resnet18", data, seed, logits, target,
                                     ["a", "b", "c", "d"])  # fmt: skip
    return ["leaderboard", "--results", str(results), "--out", str(out), "--no-plots",
            "--n-boot", "200"]  # fmt: skip


def test_bench_leaderboard_imports_no_training_stack(tmp_path: Path) -> None:
    """The whole command, in a fresh interpreter, over records with predictions (so the kind's
    score readers run): it succeeds and never loads torch, Lightning or their libraries."""
    results, out = tmp_path / "results", tmp_path / "site"
    argv = _original_vs_blurred(results, out, seeds=2, rng_seed=0)
    proc = _run(f"import benchmark.cli; rc = benchmark.cli.main({argv!r}); assert rc == 0; "
                + CHECK.format(training=TRAINING))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 comparison(s)" in proc.stdout
    assert (out / "leaderboard.md").is_file() and (out / "index.html").is_file()


def test_bench_leaderboard_does_not_load_scipy_stats(tmp_path: Path) -> None:
    """scipy.stats took about a second to import; the seed intervals use the Student-t quantile
    from scipy.special (imported when needed), so a full build never loads scipy.stats."""
    results, out = tmp_path / "results", tmp_path / "site"
    argv = _original_vs_blurred(results, out, seeds=3, rng_seed=1)  # 3: t intervals
    proc = _run("import sys, benchmark.cli; assert 'scipy.stats' not in sys.modules; "
                f"rc = benchmark.cli.main({argv!r}); assert rc == 0; "
                "assert 'scipy.stats' not in sys.modules, 'scipy.stats was imported'")
    assert proc.returncode == 0, proc.stderr
    assert " ± " in (out / "leaderboard.md").read_text()  # the t intervals were computed


@pytest.mark.parametrize("df", [1, 2, 3.7, 9, 29.5, 1000])
@pytest.mark.parametrize("q", [0.75, 0.95, 0.975, 0.995])
def test_t_quantile_is_scipy_stats_t_ppf(df: float, q: float) -> None:
    from scipy import stats

    from benchmark.stats import _t_quantile

    assert _t_quantile(q, df) == float(stats.t.ppf(q, df=df))
