"""How numbers read on every face of the leaderboard: points, signed deltas, intervals, p.
"""

from __future__ import annotations

import math

from benchmark.stats import DeltaResult, SeedSummary


def level_text(confidence: float) -> str:
    """``0.9 -> "90%"``: how every label names the interval level."""
    return f"{100.0 * confidence:g}%"


def pts(value: float | None) -> str:
    """A metric fraction as points (percent), two decimals; a dash when undefined."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{100.0 * value:.2f}"


def signed(value: float | None) -> str:
    """A difference in points with its sign; exactly ``0.00`` when it rounds to zero (no -0.00
    from float noise)."""
    if value is None or not math.isfinite(value):
        return "–"
    shown = round(100.0 * value, 2)
    return "0.00" if shown == 0 else f"{shown:+.2f}"


def interval(low: float | None, high: float | None) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "–"
    return f"[{signed(low)}, {signed(high)}]"


def p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def summary_text(s: SeedSummary | None) -> str:
    """``mean ± half-width`` in points, or the mean and ``(1 seed)``."""
    if s is None:
        return "–"
    if not math.isfinite(s.low):
        return f"{pts(s.mean)} (1 seed)"
    return f"{pts(s.mean)} ± {100.0 * (s.high - s.mean):.2f}"


def paired_fields(result: DeltaResult | None) -> tuple[str, str]:
    if result is None:
        return "–", "–"
    return interval(result.low, result.high), p_text(result.p_value)
