"""Ships the top-level registries inside the wheel; everything else is in pyproject.toml.

``tasks/*.yaml`` and ``checkpoints/backbones.yaml`` live at the top of the repository, where people
edit them, outside the package. setuptools' package-data cannot reach outside a package, so
``build_py`` copies them into ``benchmark/_registry/`` of the build; ``benchmark.paths`` reads them
there through importlib.resources when no checkout is around. An editable install skips the copy
and reads the top-level files themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# (source relative to the repository, destination relative to the package) per registry file
REGISTRY_FILES = [
    *((f"tasks/{p.name}", f"_registry/tasks/{p.name}") for p in sorted(ROOT.glob("tasks/*.yaml"))),
    *((f"tasks/groups/{p.name}", f"_registry/tasks/groups/{p.name}")
      for p in sorted(ROOT.glob("tasks/groups/*.yaml"))),
    ("checkpoints/backbones.yaml", "_registry/checkpoints/backbones.yaml"),
]


class BuildPyWithRegistries(build_py):
    """build_py plus the registry copies (a wheel without them lists no tasks)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # benchmark.paths reads the checkout's own files
        if not any(src.startswith("tasks/") for src, _ in REGISTRY_FILES):
            raise SystemExit("setup.py: no tasks/*.yaml to ship; refusing to build a wheel without")
        for src, dest in REGISTRY_FILES:
            target = Path(self.build_lib) / "benchmark" / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / src, target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [str(Path(self.build_lib) / "benchmark" / dest) for _, dest in REGISTRY_FILES]
        return [*super().get_outputs(include_bytecode), *extra]


setup(cmdclass={"build_py": BuildPyWithRegistries})
