"""Splitting whole tasks into train / eval / out-of-distribution sets."""

import numpy as np


def split_by_score(
    scores: np.ndarray, seed: int, ood_fraction: float = 0.15, eval_fraction: float = 0.15, ood_fold: int = 0
) -> dict[str, np.ndarray]:
    """Splits items (unique tasks) by a score.

    The `ood_fraction` of items with the highest score are out-of-distribution;
    of the rest, a seeded random `eval_fraction` *of all items* is eval and the
    remainder train. Ties in the score are broken by item index. With `ood_fold`
    f > 0, the OOD items are the f-th next `ood_fraction` down the score order
    instead: folds hold out disjoint items, so the held-out items of several
    folds can be pooled (where the score is a random draw, as for the
    combination locks, each fold is another random OOD set).

    Args:
      scores: [num_items].
      seed: seeds the eval draw.
      ood_fold: which `ood_fraction` of the score order is OOD (0: the highest).

    Returns:
      {"train", "eval", "ood"}: sorted item indices.
    """
    scores = np.asarray(scores)
    num = len(scores)
    num_ood = round(ood_fraction * num)
    num_eval = round(eval_fraction * num)
    if num_ood + num_eval >= num:
        raise ValueError(f"Cannot split {num} items into {num_ood} OOD, {num_eval} eval and a non-empty train set.")
    start, stop = ood_fold * num_ood, (ood_fold + 1) * num_ood
    if stop > num:
        raise ValueError(f"OOD fold {ood_fold} needs {stop} items in the score order, but there are {num}.")
    order = np.lexsort((np.arange(num), -scores))  # highest score first, ties by index
    ood = order[start:stop]
    rest = np.random.default_rng(seed).permutation(np.sort(np.concatenate([order[:start], order[stop:]])))
    return {
        "train": np.sort(rest[num_eval:]),
        "eval": np.sort(rest[:num_eval]),
        "ood": np.sort(ood),
    }
