"""What feeds a run's steps and evaluations: the zoo's arrays placed (or left on disk), the fixed
evaluation batches and how their rows are read, the objective's loss sums over them, and a module applied
to every snapshot a batch at a time.

The objective (`experiments.run.objectives`) is an argument: it says what its steps read (`device_arrays`)
and what they sum (`eval_sums`); this module only moves the data and runs the jitted steps.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from weightspace import dataset, multihost, sharding, zoo
from weightspace.types import PyTree


def fixed_batches(
    split: dict[str, np.ndarray], config: ml_collections.ConfigDict, num_sequences: int, names: tuple[str, ...]
) -> dict[str, list]:
    """Deterministic evaluation batches covering every snapshot of the named splits once (a run's `config`)."""
    return {
        name: dataset.fixed_batches(split[name], config.eval.batch_size, num_sequences, config.split.seed)
        for name in names
    }


# Reads the rows (`dataset.take`) of one fixed batch, given its (snapshots [B], sequences [B]), placed on a mesh.
RowReader = Callable[[np.ndarray, np.ndarray], PyTree]

_take_on_device = jax.jit(dataset.take)


def run_arrays(objective, the_zoo: zoo.Zoo, mesh: jax.sharding.Mesh, on_disk: bool) -> PyTree:
    """What a run's steps read: the zoo and what `objective` adds (`device_arrays`).

    Placed on every device of `mesh` once (by every process of a multi-process job), or with `on_disk`
    left on the host, the zoo in its files (`zoo.load(on_disk=True)`).
    """
    arrays = objective.device_arrays(dataset.zoo_arrays(the_zoo))
    return arrays if on_disk else multihost.put(arrays, sharding.replicated(mesh))


def row_reader(arrays: PyTree, placement: jax.sharding.Sharding, on_disk: bool) -> RowReader:
    """How the fixed batches' rows are read from a run's `arrays`.

    Gathered on device from arrays placed there, or with `on_disk` read on the host from the zoo's files
    (`dataset.read`) and placed on `placement`.
    """
    if on_disk:
        return lambda snapshots, sequences: multihost.put(dataset.read(arrays, snapshots, sequences), placement)
    return lambda snapshots, sequences: _take_on_device(arrays, jnp.asarray(snapshots), jnp.asarray(sequences))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def batch_sums(objective, graphdef, mesh, states, rows, mask) -> dict[str, tuple]:
    """The objective's sums over one fixed batch's rows for every member of `states` (a leading member axis
    [M, ...]), the models in eval mode (no dropout): {kind: (sums [M], counts [M])}."""
    batch = sharding.constrain(objective.assemble(rows), sharding.split(mesh, name="data"))

    def member_sums(state):
        model = nnx.merge(graphdef, state["params"], state["other"])
        model.eval()
        return objective.eval_sums(model, batch, mask)

    return jax.vmap(member_sums)(states)


def split_losses(
    objective, graphdef, mesh, states, read_rows: RowReader, batches: dict[str, list]
) -> list[dict[str, float]]:
    """Each member's mean losses over each split's fixed batches, for `states` with a leading member axis:
    [{"<split>_loss": float[, "<split>_boundary_loss": float]}, ...]."""
    members = len(jax.tree.leaves(states)[0])
    means = [{} for _ in range(members)]
    for name, split_batches in batches.items():
        sums = jax.device_get([
            batch_sums(objective, graphdef, mesh, states, read_rows(snapshots, sequences), jnp.asarray(mask))
            for snapshots, sequences, mask in split_batches
        ])  # fmt: skip
        for kind in sums[0]:
            for member in range(members):
                total, count = (sum(float(s[kind][i][member]) for s in sums) for i in (0, 1))
                means[member][f"{name}_{kind}"] = total / max(1.0, count)
    return means


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef: nnx.GraphDef, state: nnx.State, inputs: PyTree) -> jax.Array:
    return nnx.merge(graphdef, state)(inputs)


def apply_in_batches(module: nnx.Module, inputs: PyTree, batch_size: int = 256) -> np.ndarray:
    """`module(inputs)` [N, ...] for inputs with a leading axis [N, ...], `batch_size` at a time (one compile).

    Inputs may be a zoo's arrays kept on disk: each batch is read from the files (`zoo.take_rows`).
    """
    graphdef, state = nnx.split(module)
    num = len(jax.tree.leaves(inputs)[0])
    batches = (np.arange(i, min(i + batch_size, num)) for i in range(0, num, batch_size))
    return np.concatenate([
        np.asarray(_apply(graphdef, state, jax.tree.map(lambda x, rows=rows: zoo.take_rows(x, rows), inputs)))
        for rows in batches
    ])  # fmt: skip
