"""Are the test leaderboards' markdown and CSV byte-identical between two versions of the code?

Runs the leaderboard test files (``tests/test_leaderboard*.py``, ``tests/test_browser.py``) once
with each checkout's own code and tests, this file loaded as a pytest plugin that keeps a copy
of ``leaderboard.md`` and ``leaderboard.csv`` every time a test writes a leaderboard, then
compares the copies of the tests both versions have, call by call. The two lines that differ
by nature are normalised first: the generation time and the pytest temporary folder.

A markdown that differs is split into its ``## `` sections and each differing section is named;
sections listed with ``--changed`` (changed on purpose) are reported but allowed, and a section
that only one version has is a new section, allowed too. Every other difference, and any CSV
difference, is a failure (exit 1).

    git worktree add /tmp/lb-main main            # the code before the change
    python scripts/leaderboard_identity.py --before /tmp/lb-main --changed "## Reference"

Why a pytest plugin and not fixtures of our own: the question is about the leaderboards the
existing tests build, with their exact records, and this way no record set is written twice.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CAPTURE_ENV = "BENCH_LEADERBOARD_CAPTURE"
FILES = ("leaderboard.md", "leaderboard.csv")
TESTS = ["tests/test_leaderboard.py", "tests/test_leaderboard_cache.py",
         "tests/test_leaderboard_imports.py", "tests/test_leaderboard_page.py",
         "tests/test_leaderboard_publish.py", "tests/test_leaderboard_stats.py",
         "tests/test_browser.py"]  # fmt: skip

# --- the plugin side (imported by pytest through -p, in the checkout under test) ---

_current = {"test": "", "calls": 0}


def pytest_configure(config: object) -> None:
    capture = os.environ.get(CAPTURE_ENV)
    if not capture:
        return
    import importlib

    from benchmark import leaderboard

    build = importlib.import_module("benchmark.leaderboard.build")  # the module, not build()
    original = build.write

    def write(board, out, *args, **kwargs):  # type: ignore[no-untyped-def]
        written = original(board, out, *args, **kwargs)
        _current["calls"] += 1
        keep = Path(capture) / _slug(_current["test"]) / str(_current["calls"])
        keep.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(Path(out) / name, keep / name)
        return written

    build.write = write
    leaderboard.write = write


def pytest_runtest_setup(item: object) -> None:
    _current["test"] = getattr(item, "nodeid", "")
    _current["calls"] = 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


# --- the driver side ---


def capture(checkout: Path, into: Path, basetemp: Path) -> None:
    """Run the checkout's leaderboard tests with its own code, keeping every leaderboard."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.rmtree(basetemp, ignore_errors=True)
    basetemp.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, CAPTURE_ENV: str(into),
           "PYTHONPATH": os.pathsep.join([str(checkout), str(Path(__file__).resolve().parent)])}
    tests = [t for t in TESTS if (checkout / t).is_file()]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", Path(__file__).stem,
           "-p", "no:cacheprovider", f"--basetemp={basetemp}", *tests]  # fmt: skip
    print(f"$ (cd {checkout} && {' '.join(cmd[1:])})", flush=True)
    done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    print("  " + (done.stdout.strip().splitlines() or ["(no output)"])[-1], flush=True)
    if done.returncode not in (0, 1):  # 1: a test failed; the leaderboards are still kept
        raise SystemExit(f"pytest exited {done.returncode}: {done.stderr.strip()[-2000:]}")


def normalised(path: Path, basetemp: Path) -> str:
    text = path.read_text().replace(str(basetemp), "<tmp>")
    return re.sub(r"^Generated \S+ from", "Generated <time> from", text, flags=re.M)


def sections(markdown: str) -> dict[str, str]:
    """``## `` heading -> its text (the part before the first heading under "")."""
    out: dict[str, str] = {}
    heading = ""
    for line in markdown.splitlines(keepends=True):
        if line.startswith("## "):
            heading = line.strip()
        out[heading] = out.get(heading, "") + line
    return out


def compare(before: Path, after: Path, bt_before: Path, bt_after: Path,
            changed: list[str]) -> int:  # fmt: skip
    calls = sorted({p.parent.relative_to(before) for p in before.glob("*/*/leaderboard.md")}
                   & {p.parent.relative_to(after) for p in after.glob("*/*/leaderboard.md")})
    only = len({p.parent for p in before.glob("*/*/leaderboard.md")}) - len(calls)
    failures = 0
    identical = {name: 0 for name in FILES}
    allowed: dict[str, int] = {}
    for call in calls:
        for name in FILES:
            a = normalised(before / call / name, bt_before)
            b = normalised(after / call / name, bt_after)
            if a == b:
                identical[name] += 1
                continue
            if name.endswith(".csv"):
                failures += 1
                print(f"DIFFERENT {call}/{name}:")
                print("".join(list(difflib.unified_diff(a.splitlines(True), b.splitlines(True)))
                              [:20]))  # fmt: skip
                continue
            sa, sb = sections(a), sections(b)
            for heading in sorted(set(sa) | set(sb)):
                if sa.get(heading) == sb.get(heading):
                    continue
                if heading not in sa:
                    kind = "new section"
                elif heading not in sb:
                    kind = "removed section"
                else:
                    kind = "changed section"
                ok = kind == "new section" or any(heading.startswith(c) for c in changed)
                if ok:
                    allowed[f"{kind} {heading}"] = allowed.get(f"{kind} {heading}", 0) + 1
                    continue
                failures += 1
                print(f"DIFFERENT {call}/{name}, {kind} {heading!r}:")
                print("".join(list(difflib.unified_diff(sa.get(heading, "").splitlines(True),
                                                        sb.get(heading, "").splitlines(True)))
                              [:20]))  # fmt: skip
    print(f"\n{len(calls)} leaderboards written by tests both versions have "
          f"({only} only in the 'before' tests):")
    for name in FILES:
        print(f"  {name}: {identical[name]} of {len(calls)} byte-identical")
    for what, n in sorted(allowed.items()):
        print(f"  allowed ({n} leaderboards): {what}")
    if not calls:
        print("RESULT: no leaderboard to compare")
        return 1
    print("RESULT: " + ("identical apart from the allowed sections" if not failures
                        else f"{failures} unexpected differences"))
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old code")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/leaderboard-identity"))
    parser.add_argument("--changed", action="append", default=[], metavar="HEADING",
                        help="a '## ' section changed on purpose (its start), e.g. '## Reference'")
    args = parser.parse_args()
    runs = {}
    for label, checkout in (("before", args.before), ("after", args.after)):
        into, basetemp = args.workdir / label / "capture", args.workdir / label / "tmp"
        capture(checkout.resolve(), into, basetemp)
        runs[label] = (into, basetemp)
    return compare(runs["before"][0], runs["after"][0], runs["before"][1], runs["after"][1],
                   args.changed)


if __name__ == "__main__":
    sys.exit(main())
