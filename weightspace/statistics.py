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
