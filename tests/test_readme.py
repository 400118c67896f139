"""The README's commands are what CI runs: keep them from drifting apart."""

from __future__ import annotations

import re

from benchmark import paths


def _bash_blocks() -> list[str]:
    readme = (paths.PROJECT_ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)```", readme, flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    test_command = next(b.strip() for b in _bash_blocks() if "pytest" in b)
    ci = (paths.PROJECT_ROOT / ".ci" / "run").read_text()
    assert test_command in ci


def test_demo_command_installs_and_runs_the_study() -> None:
    demo = _bash_blocks()[0].strip()
    assert demo.startswith("python3 -m venv .venv") and demo.endswith("bench demo --study")
    assert "-c constraints.txt" in demo
