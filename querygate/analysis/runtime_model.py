"""A runtime model learned from a warehouse's history of (estimated bytes, actual seconds).

Pure (no I/O): ``fit(history)`` fits ``log(seconds) = a + b * log(bytes)`` by least squares
(a power law: runtime grows with the bytes scanned, rarely linearly: fixed costs dominate
small queries, and large scans run in parallel) on the older part of the history, measures
its error on the newest part held out (``holdout_error``: the median of
``|predicted - actual| / actual``, and the same for the old rule, the median seconds per
byte, as ``baseline_error``), then refits on the whole history for predictions.

>>> model = fit([(10**k, 0.01 * 10**(k * 0.5)) for k in range(1, 9)] * 2)
>>> round(model.predict(10**6), 3), model.holdout_error < 0.01
(10.0, True)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

MIN_HISTORY = 5


@dataclass(frozen=True)
class RuntimeModel:
    """``seconds = exp(intercept) * bytes ** slope``; errors measured on held-out history."""

    intercept: float
    slope: float
    samples: int
    holdout_error: float | None
    baseline_error: float | None

    def predict(self, bytes_scanned: int) -> float:
        size = max(1, bytes_scanned)
        return math.exp(self.intercept + self.slope * math.log(size))

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "log-linear",
            "slope": round(self.slope, 4),
            "samples": self.samples,
            "holdout_error": _round(self.holdout_error),
            "baseline_error": _round(self.baseline_error),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _least_squares(points: list[tuple[float, float]]) -> tuple[float, float]:
    xs = [x for x, _ in points]
    mean_x = statistics.fmean(xs)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:  # every estimate the same size: the mean runtime
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def _logs(history: list[tuple[int, float]]) -> list[tuple[float, float]]:
    return [(math.log(max(1, b)), math.log(max(1e-3, s))) for b, s in history]


def _median_relative_error(predicted: list[float], actual: list[float]) -> float:
    return statistics.median(
        abs(p - a) / max(a, 1e-3) for p, a in zip(predicted, actual, strict=True)
    )


def fit(history: list[tuple[int, float]], *, holdout: float = 0.2) -> RuntimeModel | None:
    """The model of ``history`` (oldest first: (estimated bytes, seconds) of successful
    queries), or None with fewer than ``MIN_HISTORY`` points. The newest ``holdout`` share
    (at least one point, when 2 * MIN_HISTORY points or more) is held out to measure it."""
    usable = [(int(b), float(s)) for b, s in history if b > 0 and s >= 0]
    if len(usable) < MIN_HISTORY:
        return None
    holdout_error = baseline_error = None
    if len(usable) >= 2 * MIN_HISTORY:
        cut = len(usable) - max(1, round(len(usable) * holdout))
        train, test = usable[:cut], usable[cut:]
        a, b = _least_squares(_logs(train))
        actual = [s for _, s in test]
        holdout_error = _median_relative_error(
            [math.exp(a + b * math.log(max(1, size))) for size, _ in test], actual
        )
        rate = statistics.median(s / size for size, s in train)
        baseline_error = _median_relative_error([rate * size for size, _ in test], actual)
    intercept, slope = _least_squares(_logs(usable))
    return RuntimeModel(intercept, slope, len(usable), holdout_error, baseline_error)
