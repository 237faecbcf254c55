"""The training objectives, one picked per run from its config (as an encoder is picked by name):

  emulation   the paper's: the emulator, conditioned on the encoder's embedding,
              imitates the zoo LSTM's outputs (`config.loss`);
  supervised  a prediction head reads one downstream target from the embedding
              (`config.supervised.target`), the supervised baselines;
  oracle      emulation with `model.TargetOracle`, an embedding of a target's true
              value, in place of the weight encoder (`config.oracle.target`): what
              emulation reaches when the embedding knows, say, the exact task.

Each objective declares its model, the arrays its steps read, its loss, its
evaluation sums, and what it adds to the downstream evaluation (`evaluation`).
Nothing else in experiments/ asks which objective a run has.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from experiments import cloning
from experiments.model import Model, SupervisedModel, make_model
from weightspace import dataset, losses, lstm, multihost, sharding, targets, tasks, zoo
from weightspace.types import PyTree

if TYPE_CHECKING:  # the context holds an objective: imported for annotations only
    from experiments.context import RunContext

EMULATION, SUPERVISED, ORACLE = "emulation", "supervised", "oracle"
# The predictor name under which a supervised run's evaluation reports its own head's scores.
HEAD = "head"
# The oracle target that embeds nothing about the LSTM (see `oracle_choices`).
CONSTANT_ORACLE = "constant"


@dataclasses.dataclass(frozen=True, eq=False)
class Emulation:
    """The emulator imitates the zoo LSTM: `loss` between its logits and the stored outputs (or next tokens)."""

    name: ClassVar[str] = EMULATION
    # Weight augmentation applies: the encoder reads the weights it permutes.
    augments: ClassVar[bool] = True

    family: tasks.TaskFamily
    loss_name: str
    token_loss: bool  # the loss compares with next tokens (`losses.TOKEN_LOSSES`), not stored outputs

    def make_model(self, config: ml_collections.ConfigDict, spec: lstm.LSTMSpec) -> Model:
        return make_model(config, self.family, spec)

    def encoder_inputs(self, the_zoo: zoo.Zoo) -> PyTree:
        """What the encoder reads for every snapshot: the zoo params [N, ...]."""
        return the_zoo.params

    def device_arrays(self, arrays: PyTree) -> PyTree:
        """The arrays the steps read, from the zoo's {"params", "behaviour"} (`dataset.zoo_arrays`)."""
        return arrays

    def _per_position(self, model: Model, batch: PyTree, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        logits, _ = model(batch["params"], batch["inputs"])
        time_mask = None if mask is None else jnp.broadcast_to(mask[:, None], logits.shape[:2])
        return logits, time_mask

    def loss(self, model: Model, batch: PyTree, mask: jax.Array | None = None) -> jax.Array:
        """The mean loss over the batch (over the snapshots where `mask` [B] is true)."""
        logits, time_mask = self._per_position(model, batch, mask)
        return losses.get(self.loss_name)(logits, self._target(batch), time_mask)

    def _target(self, batch: PyTree) -> jax.Array:
        return batch["tokens"] if self.token_loss else batch["targets"]

    def eval_sums(self, model: Model, batch: PyTree, mask: jax.Array) -> dict[str, tuple]:
        """{"loss": (sum of snapshots' mean loss, snapshots), "boundary_loss": (sum, positions)}.

        The boundary loss is over the task-dependent positions only (`TaskFamily.task_positions`: where the
        emulated outputs depend on the task), the part of the signal that can tell tasks apart.
        """
        logits, time_mask = self._per_position(model, batch, mask)
        loss_fn, target, count = losses.get(self.loss_name), self._target(batch), jnp.sum(mask)
        boundary = time_mask & self.family.task_positions(batch)
        return {
            "loss": (loss_fn(logits, target, time_mask) * count, count),
            "boundary_loss": (loss_fn(logits, target, boundary) * jnp.sum(boundary), jnp.sum(boundary)),
        }

    def evaluation(self, model: Model, run: "RunContext", the_zoo: zoo.Zoo, embeddings: np.ndarray, subsets) -> dict:
        """What the downstream evaluation adds: cloning (`experiments.cloning`)."""
        config = run.config.evaluate
        return {"cloning": cloning.report(model, run.family, the_zoo, run.split, embeddings, config)}


@dataclasses.dataclass(frozen=True, eq=False)
class Oracle(Emulation):
    """Emulation with the embedding of `target`'s true value (`model.TargetOracle`) in place of the encoder."""

    name: ClassVar[str] = ORACLE
    augments: ClassVar[bool] = False  # an oracle reads no weights

    target: targets.Target

    def make_model(self, config: ml_collections.ConfigDict, spec: lstm.LSTMSpec) -> Model:
        return make_model(config, self.family, spec, oracle=self.target)

    def encoder_inputs(self, the_zoo: zoo.Zoo) -> PyTree:
        """The target's features {"oracle": [N, F]} for every snapshot."""
        return {"oracle": self.target.features()}

    def device_arrays(self, arrays: PyTree) -> PyTree:
        return {**arrays, "params": {"oracle": np.asarray(self.target.features())}}


@dataclasses.dataclass(frozen=True, eq=False)
class Supervised:
    """A prediction head reads `target` (standardised on the train split) from the embedding."""

    name: ClassVar[str] = SUPERVISED
    augments: ClassVar[bool] = True

    family: tasks.TaskFamily
    target: targets.Target

    def make_model(self, config: ml_collections.ConfigDict, spec: lstm.LSTMSpec) -> SupervisedModel:
        return make_model(config, self.family, spec, target=self.target)

    def encoder_inputs(self, the_zoo: zoo.Zoo) -> PyTree:
        return the_zoo.params

    def device_arrays(self, arrays: PyTree) -> PyTree:
        """The zoo and the encoded target [N, ...] of every snapshot."""
        return {**arrays, "target": np.asarray(self.target.encode())}

    def loss(self, model: SupervisedModel, batch: PyTree, mask: jax.Array | None = None) -> jax.Array:
        per_snapshot = self.target.loss(model(batch["params"]), batch["target"])
        weights = jnp.ones_like(per_snapshot) if mask is None else mask.astype(per_snapshot.dtype)
        return jnp.sum(per_snapshot * weights) / jnp.sum(weights)

    def eval_sums(self, model: SupervisedModel, batch: PyTree, mask: jax.Array) -> dict[str, tuple]:
        count = jnp.sum(mask)
        return {"loss": (self.loss(model, batch, mask) * count, count)}

    def evaluation(
        self, model: SupervisedModel, run: "RunContext", the_zoo: zoo.Zoo, embeddings: np.ndarray, subsets
    ) -> dict:
        """What the downstream evaluation adds: the head's own scores on its target, as predictor "head"."""
        outputs = apply_in_batches(model, the_zoo.params)
        return {"probes": {HEAD: targets.subset_scores(self.target, self.target.decode(outputs), subsets)}}


Objective = Emulation | Oracle | Supervised


def named_target(field: str, name: str, choices: list[targets.Target]) -> targets.Target:
    """The target called `name`, or a clear error naming the config `field`."""
    by_name = {t.name: t for t in choices}
    if name not in by_name:
        raise ValueError(f"Unknown {field} {name!r}; this zoo's targets are {sorted(by_name)}.")
    return by_name[name]


def oracle_choices(all_targets: list[targets.Target]) -> list[targets.Target]:
    """What an oracle may embed: any downstream target, or `CONSTANT_ORACLE` (one class for every snapshot).

    The constant oracle's embedding is a learned constant: the emulator knows nothing of the LSTM it
    emulates, which is the level an embedding must beat to matter at all.
    """
    constant = targets.Classes.of(CONSTANT_ORACLE, np.zeros(len(all_targets[0].values)), (0,))
    return [*all_targets, constant]


def make(
    config: ml_collections.ConfigDict,
    family: tasks.TaskFamily,
    all_targets: list[targets.Target],
    train: np.ndarray | None = None,
    has_tokens: bool = True,
) -> Objective:
    """The run's objective, from `config.supervised.target` / `config.oracle.target` (both empty: emulation).

    Args:
      train: the train split's snapshots, on which a supervised target is standardised (None: left as is,
        enough to rebuild the model of a finished run).
      has_tokens: whether the zoo's emulation data has next-token targets (a token loss needs them).
    """
    if config.oracle.target and config.supervised.target:
        raise ValueError("oracle.target and supervised.target exclude each other: an oracle run trains by emulation.")
    if config.supervised.target:
        target = named_target("supervised.target", config.supervised.target, all_targets)
        return Supervised(family, target if train is None else target.fitted(train))
    token_loss = config.loss in losses.TOKEN_LOSSES
    if token_loss and not has_tokens:
        raise ValueError(f"Loss {config.loss!r} needs next-token targets, which {family.name} zoos do not have.")
    if config.oracle.target:
        target = named_target("oracle.target", config.oracle.target, oracle_choices(all_targets))
        return Oracle(family, config.loss, token_loss, target)
    return Emulation(family, config.loss, token_loss)


def fixed_batches(run: "RunContext", num_sequences: int, names: tuple[str, ...]) -> dict[str, list]:
    """Deterministic evaluation batches covering every snapshot of the named splits once."""
    return {
        name: dataset.fixed_batches(run.split[name], run.config.eval.batch_size, num_sequences, run.config.split.seed)
        for name in names
    }


# Reads the rows (`dataset.take`) of one fixed batch, given its (snapshots [B], sequences [B]), placed on a mesh.
RowReader = Callable[[np.ndarray, np.ndarray], PyTree]

_take_on_device = jax.jit(dataset.take)


def run_arrays(objective: "Objective", the_zoo: zoo.Zoo, mesh: jax.sharding.Mesh, on_disk: bool) -> PyTree:
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
def batch_sums(objective, graphdef, mesh, state, rows, mask) -> dict[str, tuple]:
    """The objective's sums over one fixed batch's rows, the model in eval mode (no dropout)."""
    model = nnx.merge(graphdef, state["params"], state["other"])
    model.eval()
    batch = sharding.constrain(dataset.assemble(rows, objective.family), sharding.split(mesh))
    return objective.eval_sums(model, batch, mask)


def split_losses(
    run: "RunContext", graphdef, mesh, state, read_rows: RowReader, batches: dict[str, list]
) -> dict[str, float]:
    """The mean losses over each split's fixed batches: {"<split>_loss": float[, "<split>_boundary_loss": float]}."""
    means = {}
    for name, split_batches in batches.items():
        sums = jax.device_get([
            batch_sums(run.objective, graphdef, mesh, state, read_rows(snapshots, sequences), jnp.asarray(mask))
            for snapshots, sequences, mask in split_batches
        ])  # fmt: skip
        for kind in sums[0]:
            total, count = (sum(float(s[kind][i]) for s in sums) for i in (0, 1))
            means[f"{name}_{kind}"] = total / max(1.0, count)
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
