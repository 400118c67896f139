"""Which backbones are compared (step 4): original vs blurred/overlayed of the same
architecture, from the pretraining-data field kept in every record, plus ``--pair A:B``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmark.errors import BenchError, closest_names
from benchmark.leaderboard.model import COMPARED_DATA, Problem, Row, Setting


def parse_pairs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``["original_x:blurred_x"]`` -> ``[("original_x", "blurred_x")]`` (reference first)."""
    pairs = []
    for spec in specs:
        a, sep, b = spec.partition(":")
        if not sep or not a.strip() or not b.strip() or a.strip() == b.strip():
            raise BenchError(
                f"--pair {spec!r}: expected REFERENCE:COMPARED backbone names as the leaderboard "
                f"shows them, e.g. --pair original_r50:blurred_r50"
            )
        pairs.append((a.strip(), b.strip()))
    return pairs


def check_pair_names(
    explicit: Sequence[tuple[str, str]], settings: Sequence[Setting]
) -> None:
    """Refuse a --pair that names a backbone no record has: a typo would otherwise give a
    leaderboard without the asked-for comparison and the reason only in its problems list."""
    known = sorted({name for s in settings for row in s.rows for name in (row.name, row.label)})
    for a_name, b_name in explicit:
        unknown = [name for name in (a_name, b_name) if name not in known]
        if not unknown:
            continue
        hints = "".join(closest_names(name, known) for name in unknown)
        listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20
                                          else "")
        raise BenchError(
            f"--pair {a_name}:{b_name}: no record has a backbone named "
            f"{' or '.join(repr(n) for n in unknown)}.{hints} Known backbones: "
            f"{listed or 'none (no completed runs)'}."
        )


def find_pairs(
    settings: Sequence[Setting], explicit: Sequence[tuple[str, str]], problems: list[Problem]
) -> list[tuple[Setting, Row, Row, bool]]:
    """Automatic pairs (same architecture, original vs blurred/overlayed data) and explicit
    ones; notes where a backbone that should have a partner has none."""
    out: list[tuple[Setting, Row, Row, bool]] = []
    used_explicit: set[tuple[str, str]] = set()
    for setting in settings:
        seen: set[tuple[int, int]] = set()
        by_label = {row.label: row for row in setting.rows}
        by_name: dict[str, list[Row]] = {}
        for row in setting.rows:
            by_name.setdefault(row.name, []).append(row)
        for a_name, b_name in explicit:
            a_rows = [by_label[a_name]] if a_name in by_label else by_name.get(a_name, [])
            b_rows = [by_label[b_name]] if b_name in by_label else by_name.get(b_name, [])
            if len(a_rows) == 1 and len(b_rows) == 1:
                used_explicit.add((a_name, b_name))
                seen.add((id(a_rows[0]), id(b_rows[0])))
                out.append((setting, a_rows[0], b_rows[0], True))
        for arch in sorted({row.arch for row in setting.rows}):
            rows = [row for row in setting.rows if row.arch == arch]
            originals = [row for row in rows if row.data == "original"]
            for row in (r for r in rows if r.data in COMPARED_DATA):
                if any(id(row) == b for _, b in seen):
                    continue
                if len(originals) == 1:
                    seen.add((id(originals[0]), id(row)))
                    out.append((setting, originals[0], row, False))
                    continue
                why = ("no original-data backbone" if not originals
                       else f"{len(originals)} original-data backbones "
                            f"({', '.join(o.label for o in originals)})")
                problems.append(Problem(
                    "not compared", row.runs[0].run_dir.parent,
                    f"{row.label} ({row.data}) in {setting.title}: {why} of architecture {arch}; "
                    f"pick its partner with --pair ORIGINAL:{row.label}", setting.task))
    for a_name, b_name in explicit:
        if (a_name, b_name) not in used_explicit:
            problems.append(Problem(
                "not compared", Path("."), f"--pair {a_name}:{b_name}: no setting has exactly one "
                f"backbone of each name (names as in the backbone tables)"))
    return out
