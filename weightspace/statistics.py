"""How much a score over a handful of independent units can be trusted: intervals, baselines and nulls.

The units are whatever was drawn independently (a zoo's runs: one LSTM each, several snapshots of it);
a score is a mean of per-unit values, and its seeds (of an encoder's training) are a second axis.
"""

import numpy as np


def bootstrap_interval(
    values: np.ndarray, level: float = 0.95, num_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values` [units] or [seeds, units].

    Units are resampled with replacement (and seeds too, for a 2-D array), so the interval holds the
    spread over both: what another zoo of as many runs, and other seeds, could give.
    """
    values = np.atleast_2d(np.asarray(values, np.float64))  # [seeds, units]
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, values.shape[0], (num_resamples, values.shape[0]))
    units = rng.integers(0, values.shape[1], (num_resamples, values.shape[1]))
    means = values[seeds[:, :, None], units[:, None, :]].mean(axis=(1, 2))  # [resamples]
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def majority_baseline(labels: np.ndarray) -> float:
    """The score of always answering the commonest of `labels` [units]: what a reader that ignores its input
    scores on these very units (an upper bound for any constant answer)."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())


def shuffled_null(
    predictions: np.ndarray, labels: np.ndarray, num_permutations: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, 95th percentile) of the accuracy of `predictions` [units] against `labels` [units] permuted
    among the units: what these predictions score by their label frequencies alone."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((num_permutations, len(labels))), axis=1)  # a permutation per row
    accuracies = (labels[order] == predictions[None]).mean(axis=1)
    return float(accuracies.mean()), float(np.quantile(accuracies, 0.95))


def per_unit(values: np.ndarray, units: np.ndarray) -> np.ndarray:
    """The mean of `values` [..., snapshots] over each unit's snapshots: [..., distinct units], units sorted."""
    names, index = np.unique(np.asarray(units), return_inverse=True)
    sums = np.zeros((*np.shape(values)[:-1], len(names)))
    np.add.at(sums, (..., index), values)
    return sums / np.bincount(index)


def ranks(values: np.ndarray) -> np.ndarray:
    """The ranks 0..n-1 of `values` [n], ties sharing their mean rank."""
    _, inverse, counts = np.unique(np.asarray(values, np.float64), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # one past the last rank of each distinct value, in sorted order
    return ((ends - counts + ends - 1) / 2)[inverse]


def rank_correlation(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Spearman's rank correlation of `x` and `y` [n]; with `groups` [n], within groups: each rank less its
    group's mean rank before correlating, so only how units differ from their group's others counts (nan
    where either has no spread left)."""
    rx, ry = ranks(x), ranks(y)
    if groups is not None:
        _, index = np.unique(np.asarray(groups), return_inverse=True)
        rx = rx - (np.bincount(index, rx) / np.bincount(index))[index]
        ry = ry - (np.bincount(index, ry) / np.bincount(index))[index]
    if rx.std() < 1e-12 or ry.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def correlation_evidence(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, num_resamples: int = 2000, seed: int = 0
) -> dict:
    """`rank_correlation` of units `x`, `y` [n] (within `groups` if given) with what stands behind it:

    * "interval": the 95 % percentile bootstrap interval, units resampled with replacement (within their
      groups);
    * "p_value": the two-sided permutation p-value, `y` shuffled among the units (within their groups),
      (1 + permutations at least as strong) / (1 + permutations).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    groups = np.zeros(len(x), int) if groups is None else np.asarray(groups)
    within = None if len(np.unique(groups)) == 1 else groups
    rho = rank_correlation(x, y, within)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    boot, null = [], []
    for _ in range(num_resamples):
        pick = np.concatenate([rng.choice(m, len(m)) for m in members])
        boot.append(rank_correlation(x[pick], y[pick], None if within is None else groups[pick]))
        shuffled = y.copy()
        for m in members:
            shuffled[m] = y[rng.permutation(m)]
        null.append(rank_correlation(x, shuffled, within))
    boot, null = np.asarray(boot), np.asarray(null)
    boot, null = boot[np.isfinite(boot)], null[np.isfinite(null)]
    interval = [float(v) for v in np.quantile(boot, [0.025, 0.975])] if len(boot) else [float("nan")] * 2
    strong = np.sum(np.abs(null) >= abs(rho) - 1e-12) if np.isfinite(rho) else 0
    p_value = float((1 + strong) / (1 + len(null))) if np.isfinite(rho) else float("nan")
    return {"rho": rho, "interval": interval, "p_value": p_value}


def ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, level: float = 0.95, num_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval of mean(numerator) / mean(denominator), two measures of the same units
    [units] or [seeds, units] (paired: a resample draws a unit, or seed, for both at once). Resamples whose
    denominator is 0 have no ratio and are left out (nan where every one is)."""
    numerator = np.atleast_2d(np.asarray(numerator, np.float64))  # [seeds, units]
    denominator = np.atleast_2d(np.asarray(denominator, np.float64))
    if numerator.shape != denominator.shape:
        raise ValueError(f"Paired measures need one shape, got {numerator.shape} and {denominator.shape}.")
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, numerator.shape[0], (num_resamples, numerator.shape[0]))[:, :, None]
    units = rng.integers(0, numerator.shape[1], (num_resamples, 1, numerator.shape[1]))
    below = denominator[seeds, units].mean(axis=(1, 2))
    ratios = numerator[seeds, units].mean(axis=(1, 2))[below > 0] / below[below > 0]
    if not len(ratios):
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)
