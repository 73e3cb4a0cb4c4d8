"""Confidence intervals of a metric: t over replicates, or a bootstrap over users.

With several replicates (the same model trained with other seeds), a metric's interval is the
Student t interval of the replicates' means (``scipy.stats.t``, ``n - 1`` degrees of freedom):
it covers training randomness. With one replicate, it is the percentile bootstrap of the mean
over users (``scipy.stats.bootstrap``), which covers the sampling of users only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float,
                                                                                 float]:
    """``(mean, low, high)`` of ``values`` (one per replicate); a zero-width interval when
    every value is equal, NaN bounds for a single value."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    error = stats.sem(values)
    if not error > 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=error)
    return mean, float(low), float(high)


def bootstrap_interval(per_user: Sequence[float], confidence: float = CONFIDENCE,
                       seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
                       ) -> tuple[float, float, float]:
    """``(mean, low, high)``: the percentile bootstrap interval of the mean of ``per_user``."""
    values = np.asarray(per_user, np.float64)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2 or not np.ptp(values) > 0:
        return mean, mean, mean
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence,
                             n_resamples=resamples, method="percentile",
                             random_state=np.random.default_rng(seed))
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def metric_interval(per_replicate_user_values: Sequence[np.ndarray],
                    confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float, float]:
    """The interval of a metric from its per-user values in each replicate: t over the
    replicates' means when there are several, a bootstrap over users for one."""
    if len(per_replicate_user_values) == 1:
        return bootstrap_interval(per_replicate_user_values[0], confidence, seed)
    return t_interval([np.mean(values) for values in per_replicate_user_values], confidence)
