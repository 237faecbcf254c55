"""Splitting whole tasks into train / eval / out-of-distribution sets."""

import numpy as np


def split_by_score(
    scores: np.ndarray, seed: int, ood_fraction: float = 0.15, eval_fraction: float = 0.15
) -> dict[str, np.ndarray]:
    """Splits items (unique tasks) by a score.

    The `ood_fraction` of items with the highest score are out-of-distribution;
    of the rest, a seeded random `eval_fraction` *of all items* is eval and the
    remainder train. Ties in the score are broken by item index.

    Args:
      scores: [num_items].
      seed: seeds the eval draw.

    Returns:
      {"train", "eval", "ood"}: sorted item indices.
    """
    scores = np.asarray(scores)
    num = len(scores)
    num_ood = round(ood_fraction * num)
    num_eval = round(eval_fraction * num)
    if num_ood + num_eval >= num:
        raise ValueError(f"Cannot split {num} items into {num_ood} OOD, {num_eval} eval and a non-empty train set.")
    order = np.lexsort((np.arange(num), -scores))  # highest score first, ties by index
    rest = np.random.default_rng(seed).permutation(np.sort(order[num_ood:]))
    return {
        "train": np.sort(rest[num_eval:]),
        "eval": np.sort(rest[:num_eval]),
        "ood": np.sort(order[:num_ood]),
    }
