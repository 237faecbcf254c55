"""Cloning: the emulator conditioned on E(θ), scored on the task exactly like the original LSTM θ.

For a seeded sample of every held-out split's snapshots, both are scored by
`TaskFamily.performance` with the same key per snapshot; the report gives the
means, mean |original - clone|, and how many clones of originals that do
their task do it too.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from weightspace import dataset, lstm, tasks, zoo

# A model "does its task" at this performance or above (formal languages: fraction of sampled words that
# are correct; MNIST: eval accuracy), for the cloning report's good originals and clones.
GOOD_PERFORMANCE = 0.5


def clone_scores(
    model, family: tasks.TaskFamily, the_zoo: zoo.Zoo, snapshots: np.ndarray, embeddings: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Task performance of the original LSTMs and of their emulator clones: ([n], [n]) for `snapshots` [n].

    Both are scored by `family.performance` with the same key per snapshot;
    the clone is the emulator conditioned on the snapshot's embedding.
    """
    data = jax.device_put(family.data()[0])
    graphdef, state = nnx.split(model.emulator)
    params = jax.tree.map(lambda x: zoo.take_rows(x, snapshots), the_zoo.params)  # read from disk if kept there
    task = {f: v[snapshots] for f, v in tasks.task_columns(family, the_zoo.metadata).items()}
    keys = jax.random.split(jax.random.key(seed), len(snapshots))
    original, clone = _clone_scores(
        family, graphdef, state, data, params, jnp.asarray(embeddings[snapshots]), task, keys
    )
    return np.asarray(original), np.asarray(clone)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _clone_scores(family, graphdef, state, data, params, embeddings, task, keys) -> tuple[jax.Array, jax.Array]:
    emulator_module = nnx.merge(graphdef, state)

    def one(args):
        params, embedding, task, key = args
        original = family.performance(key, lstm.Bound(params), task, data)
        clone = family.performance(key, emulator_module.conditioned(embedding), task, data)
        return original, clone

    return jax.lax.map(one, (params, embeddings, task, keys))  # one snapshot at a time bounds memory


def summary(original: np.ndarray, clone: np.ndarray) -> dict[str, float | int | None]:
    """The cloning report of originals' and their clones' task performances ([n] each).

    Besides the means and the mean |original - clone|: of the originals that do their task (performance
    >= `GOOD_PERFORMANCE`; formal languages: most sampled words correct), how many there are and the
    fraction whose clone does too (None when no original does).
    """
    good = original >= GOOD_PERFORMANCE
    return {
        "original": float(original.mean()),
        "clone": float(clone.mean()),
        "abs_difference": float(np.mean(np.abs(original - clone))),
        "num_snapshots": len(original),
        "num_good_originals": int(good.sum()),
        "good_clones": float(np.mean(clone[good] >= GOOD_PERFORMANCE)) if good.any() else None,
    }


def report(
    model,
    family: tasks.TaskFamily,
    the_zoo: zoo.Zoo,
    split: dict[str, np.ndarray],
    embeddings: np.ndarray,
    config: ml_collections.ConfigDict,
) -> dict[str, dict]:
    """{held-out split: `summary`} over `config.num_cloned` snapshots of each, sampled with `config.seed`."""
    rng = np.random.default_rng(config.seed)
    results = {}
    for s in dataset.HELD_OUT:
        indices = split[s]
        snapshots = np.sort(rng.choice(indices, min(config.num_cloned, len(indices)), replace=False))
        original, clone = clone_scores(model, family, the_zoo, snapshots, embeddings, config.seed)
        results[s] = summary(original, clone)
    return results
