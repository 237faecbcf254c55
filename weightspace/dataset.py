"""A zoo as a dataset for encoder training: whole-task splits and on-device batches.

Splits follow the paper: unique tasks are scored by their family's criterion
(formal languages: entropy; MNIST: angle); the highest-scoring 15 % are
out-of-distribution (OOD), a seeded random 15 % of all tasks are eval, the rest
train. Whole tasks, never individual snapshots, are split.

Batches are gathered on device from the whole zoo (params and behaviour live
on the accelerator), so the jitted train step draws its own batch from a key:
no host-side input pipeline. A zoo larger than memory stays on disk instead:
the host draws the same indices from the same keys and `read`s those rows
(`weightspace.prefetch` runs it ahead of the steps).
"""

import jax
import numpy as np

from weightspace import zoo as zoo_lib
from weightspace.tasks import TaskFamily, splits
from weightspace.types import PRNGKey, PyTree

Indices = jax.Array | np.ndarray  # integer indices [B]

SPLITS = ("train", "eval", "ood")
# The splits of tasks training never sees.
HELD_OUT = ("eval", "ood")


def task_split(
    zoo: zoo_lib.Zoo,
    family: TaskFamily,
    seed: int,
    ood_fraction: float = 0.15,
    eval_fraction: float = 0.15,
    ood_fold: int = 0,
) -> dict[str, np.ndarray]:
    """Snapshot indices of every split, {"train", "eval", "ood"} -> sorted [n], splitting whole tasks (OOD: the
    `ood_fold`-th `ood_fraction` of the tasks down their family's score, `splits.split_by_score`)."""
    columns = [np.asarray(zoo.metadata[f]).reshape(len(zoo), -1) for f in family.split_fields]
    unique, task_of = np.unique(np.concatenate(columns, axis=1), axis=0, return_inverse=True)
    widths = np.cumsum([c.shape[1] for c in columns])[:-1]
    fields = {
        f: part.reshape(len(unique), *np.asarray(zoo.metadata[f]).shape[1:])
        for f, part in zip(family.split_fields, np.split(unique, widths, axis=1), strict=True)
    }
    by_task = splits.split_by_score(family.split_score(fields), seed, ood_fraction, eval_fraction, ood_fold)
    return {name: np.flatnonzero(np.isin(task_of.reshape(-1), tasks)) for name, tasks in by_task.items()}


def zoo_arrays(zoo: zoo_lib.Zoo) -> PyTree:
    """The zoo's stored arrays, for the caller to place: {"params": {...[N, ...]}, "behaviour": {...[N, S, ...]}}."""
    return {"params": zoo.params, "behaviour": zoo.behaviour}


def take(
    arrays: PyTree,
    snapshots: jax.Array | np.ndarray,
    sequences: jax.Array | np.ndarray,
    rows=lambda x, *index: x[index],
) -> PyTree:
    """The rows of snapshots `snapshots` [B], each with its stored sequence `sequences` [B].

    `arrays` holds "behaviour" {name: [N, S, ...]}, indexed by snapshot and sequence, and any other
    per-snapshot arrays [N, ...] ("params", and whatever a training objective adds), indexed by snapshot.
    `rows(array, *index)` indexes one array's leading axes: plain indexing (in a jitted step), or
    `zoo.take_rows` to read a zoo kept on disk (`read`).
    """
    index = {key: (snapshots, sequences) if key == "behaviour" else (snapshots,) for key in arrays}
    return {key: jax.tree.map(lambda x, at=index[key]: rows(x, *at), value) for key, value in arrays.items()}


def read(arrays: PyTree, snapshots: np.ndarray, sequences: np.ndarray) -> PyTree:
    """`take` on the host: NumPy rows, read from the zoo's files for arrays kept on disk (`zoo.load(on_disk=True)`)."""
    return take(arrays, snapshots, sequences, zoo_lib.take_rows)


def assemble(rows: PyTree, family: TaskFamily) -> dict[str, jax.Array]:
    """The training batch of rows from `take`: the behaviour as the family's emulation data, the rest as taken.

    Returns:
      {"params": {tensor: [B, ...]}, "inputs": [B, T, in], "targets": [B, T, out]}, plus "tokens" [B, T]
      for families whose outputs predict the next token, and any other per-snapshot rows [B, ...].
    """
    per_snapshot = {key: value for key, value in rows.items() if key != "behaviour"}
    return {**per_snapshot, **family.emulation_data(rows["behaviour"])}


def gather(arrays: PyTree, family: TaskFamily, snapshots: jax.Array, sequences: jax.Array) -> dict[str, jax.Array]:
    """The batch (`assemble`) of snapshots `snapshots` [B], each with its stored sequence `sequences` [B]."""
    return assemble(take(arrays, snapshots, sequences), family)


def sample_indices(
    key: PRNGKey, indices: jax.Array, batch_size: int, num_sequences: int
) -> tuple[jax.Array, jax.Array]:
    """A uniform random draw (with replacement) of snapshots from `indices` [n], one stored sequence each.

    Returns (snapshots [B], sequences [B]).
    """
    snapshot_key, sequence_key = jax.random.split(key)
    snapshots = indices[jax.random.randint(snapshot_key, (batch_size,), 0, indices.shape[0])]
    return snapshots, jax.random.randint(sequence_key, (batch_size,), 0, num_sequences)


def num_sequences(arrays: PyTree) -> int:
    """Stored sequences per snapshot: the second axis of the behaviour arrays [N, S, ...]."""
    return jax.tree.leaves(arrays["behaviour"])[0].shape[1]


def sample_batch(
    key: PRNGKey, arrays: PyTree, family: TaskFamily, indices: jax.Array, batch_size: int
) -> dict[str, jax.Array]:
    """The batch of a uniform random draw (`sample_indices`) from `indices` [n]."""
    return gather(arrays, family, *sample_indices(key, indices, batch_size, num_sequences(arrays)))


def fixed_batches(indices: np.ndarray, batch_size: int, num_sequences: int, seed: int = 0) -> list[tuple]:
    """Deterministic (snapshots [B], sequences [B]) batches covering every snapshot of `indices` once.

    Each snapshot contributes one seeded stored sequence; the last batch is
    padded by repeating its entries (weight them out with the returned mask).

    Returns:
      A list of (snapshots [B], sequences [B], mask [B]) NumPy arrays.
    """
    rng = np.random.default_rng(seed)
    sequences = rng.integers(0, num_sequences, len(indices))
    batches = []
    for start in range(0, len(indices), batch_size):
        snaps, seqs = indices[start : start + batch_size], sequences[start : start + batch_size]
        mask = np.arange(batch_size) < len(snaps)
        batches.append((np.resize(snaps, batch_size), np.resize(seqs, batch_size), mask))
    return batches


def describe_split(zoo: zoo_lib.Zoo, family: TaskFamily, split: dict[str, np.ndarray]) -> dict:
    """A JSON-able record of a split (its tasks and sizes), for the workdir."""
    record = {}
    for name, indices in split.items():
        tasks = {f: np.unique(np.asarray(zoo.metadata[f])[indices], axis=0).tolist() for f in family.split_fields}
        record[name] = {"num_snapshots": len(indices), "num_tasks": len(next(iter(tasks.values()))), "tasks": tasks}
    return record
