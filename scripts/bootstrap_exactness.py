"""How far ``paired_bootstrap_mean``'s p-value is from the exact one on the same replicates.

The exact p recomputes every replicate delta with fractions.Fraction from the 0/1 scores (not
with benchmark.stats), counts the tails and applies the documented +1 correction. Synthetic
datasets: two backbones agreeing on most of N examples, each seed flipping ~10% of them.

    PYTHONPATH=. python scripts/bootstrap_exactness.py                  # 3 vs 3 seeds, 20 sets
    PYTHONPATH=. python scripts/bootstrap_exactness.py --seeds-b 2      # 3 vs 2 seeds
    PYTHONPATH=. python scripts/bootstrap_exactness.py --stats OLD/benchmark/stats.py

``--stats`` loads another version of stats.py (e.g. one exported with ``git archive``) to
measure it instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np


def load_stats(path: Path | None) -> ModuleType:
    if path is None:
        from benchmark import stats

        return stats
    spec = importlib.util.spec_from_file_location("stats_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stats_under_test"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def exact_p(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> float:
    """Two-sided +1-corrected bootstrap p with every replicate delta as a Fraction."""
    per_example = [Fraction(int(b[:, i].sum()), len(b)) - Fraction(int(a[:, i].sum()), len(a))
                   for i in range(a.shape[1])]  # fmt: skip
    distinct = sorted(set(per_example))
    label = np.array([distinct.index(d) for d in per_example])
    below = above = 0
    for row in rows:
        counts = np.bincount(label[row], minlength=len(distinct))
        delta = sum((d * int(c) for d, c in zip(distinct, counts, strict=True)), Fraction(0))
        below += delta <= 0
        above += delta >= 0
    return float(min(Fraction(1), 2 * Fraction(min(below, above) + 1, len(rows) + 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seeds-a", type=int, default=3)
    parser.add_argument("--seeds-b", type=int, default=3)
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--stats", type=Path, help="another stats.py to measure")
    args = parser.parse_args()
    stats = load_stats(args.stats)
    n = args.examples
    rows = np.concatenate(list(stats.bootstrap_indices(n, args.n_boot, 0)))
    gaps = []
    print(f"{'dataset':>7} {'exact p':>9} {'ours':>9} {'ours - exact':>13}")
    for dataset in range(args.datasets):
        rng = np.random.default_rng(dataset)
        base = rng.random(n) < 0.7
        a = np.array([base ^ (rng.random(n) < 0.1) for _ in range(args.seeds_a)], float)
        b = np.array([base ^ (rng.random(n) < 0.1) for _ in range(args.seeds_b)], float)
        want = exact_p(a, b, rows)
        got = stats.paired_bootstrap_mean(a, b, n_boot=args.n_boot, rng_seed=0).p_value
        gaps.append(got - want)
        print(f"{dataset:>7} {want:>9.6f} {got:>9.6f} {got - want:>+13.6f}")
    gaps_array = np.array(gaps)
    print(f"ours - exact: mean {gaps_array.mean():+.6f}, min {gaps_array.min():+.6f}, "
          f"max {gaps_array.max():+.6f}; ours above exact in {np.sum(gaps_array > 0)} of "
          f"{len(gaps)}, below in {np.sum(gaps_array < 0)}")


if __name__ == "__main__":
    main()
