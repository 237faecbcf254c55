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
from typing import ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from experiments.run import batches, cloning
from experiments.run.model import Model, SupervisedModel, TargetOracle, make_emulator, make_encoder, make_head
from weightspace import dataset, encoders, errors, losses, lstm, targets, tasks, zoo
from weightspace.types import PyTree

EMULATION, SUPERVISED, ORACLE, REFERENCE = "emulation", "supervised", "oracle", "reference"
# The predictor name under which a supervised run's evaluation reports its own head's scores.
HEAD = "head"
# The oracle target that embeds nothing about the LSTM (see `oracle_choices`).
CONSTANT_ORACLE = "constant"


@dataclasses.dataclass(frozen=True, eq=False)
class Emulation:
    """The emulator imitates the zoo LSTM: `loss` between its logits and the stored outputs (or next tokens)."""

    name: ClassVar[str] = EMULATION
    # Its rows in the results tables: labelled by the encoder's group (`encoders.GROUPS`), scored by each
    # table's own probe (`table_predictor` None).
    row_label: ClassVar[str] = "{group}"
    table_predictor: ClassVar[str | None] = None
    # Its rows compete for a column's best (a bound, like the oracle, does not).
    competes: ClassVar[bool] = True
    # The encoder reads the zoo's weights: weight augmentation applies, and permuting them may move the embedding.
    reads_weights: ClassVar[bool] = True
    # A weight encoder trained by emulation: its seed-0 runs draw the dataset's figures, and its runs are the
    # points of the loss correlation (`experiments.analyses.loss_correlation`).
    encoder_by_emulation: ClassVar[bool] = True

    family: tasks.TaskFamily
    loss_name: str
    token_loss: bool  # the loss compares with next tokens (`losses.TOKEN_LOSSES`), not stored outputs
    # With `emulate_on="probe_set"`: the family's probe set [K, time, in]; each stored sequence of each snapshot
    # stands for one of its inputs, drawn once (seed 0), so that evaluation batches stay fixed.
    probe_set: np.ndarray | None = dataclasses.field(default=None, kw_only=True)

    def make_model(self, config: ml_collections.ConfigDict, spec: lstm.LSTMSpec) -> Model:
        """The weight encoder of `config.encoder` with the emulator."""
        return Model(make_encoder(config, self.family, spec), make_emulator(config, self.family))

    @classmethod
    def table_row(cls, config: ml_collections.ConfigDict) -> tuple[str, str]:
        """(directory, row name) of a run of `config` in a tables output: runs/<dataset>/<directory>/<row>/seed<k>."""
        return cls.name, config.encoder.name

    def describe(self, encoder: str) -> str:
        """What a run of this objective with the weight encoder `encoder` is, in reports."""
        return encoder

    def encoder_inputs(self, the_zoo: zoo.Zoo) -> PyTree:
        """What the encoder reads for every snapshot: the zoo params [N, ...]."""
        return the_zoo.params

    def device_arrays(self, arrays: PyTree) -> PyTree:
        """The arrays the steps read, from the zoo's {"params", "behaviour"} (`dataset.zoo_arrays`); with a probe
        set, the behaviour also holds which of its inputs each stored sequence stands for ("probe" [N, S])."""
        if self.probe_set is None:
            return arrays
        shape = jax.tree.leaves(arrays["behaviour"])[0].shape[:2]
        index = np.random.default_rng(0).integers(0, len(self.probe_set), shape, dtype=np.int32)
        return {**arrays, "behaviour": {**arrays["behaviour"], "probe": index}}

    def assemble(self, rows: PyTree) -> PyTree:
        """The batch of rows (`dataset.take`): the family's emulation data (`dataset.assemble`); with a probe set,
        its inputs in place of the stored ones and the LSTM's logits on them as the targets."""
        batch = dataset.assemble(rows, self.family)
        if self.probe_set is None:
            return batch
        inputs = jnp.asarray(self.probe_set, jnp.float32)[rows["behaviour"]["probe"]]  # [B, time, in]
        logits, _ = jax.vmap(lstm.apply)(batch.get("probed", batch["params"]), inputs)
        return {**batch, "inputs": inputs, "targets": logits}

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
        """{"loss": (sum of snapshots' mean loss, snapshots), "boundary_loss": (sum, positions)}, and for a
        probing encoder "novelty": (sum of the answers its probes find, snapshots) (`dialogue_novelty`).

        The boundary loss is over the task-dependent positions only (`TaskFamily.task_positions`: where the
        emulated outputs depend on the task), the part of the signal that can tell tasks apart.
        """
        logits, time_mask = self._per_position(model, batch, mask)
        loss_fn, target, count = losses.get(self.loss_name), self._target(batch), jnp.sum(mask)
        boundary = time_mask & self.family.task_positions(batch)
        sums = {
            "loss": (loss_fn(logits, target, time_mask) * count, count),
            "boundary_loss": (loss_fn(logits, target, boundary) * jnp.sum(boundary), jnp.sum(boundary)),
        }
        if isinstance(model.encoder, encoders.probing.ProbingEncoder):
            sums["novelty"] = (jnp.sum(model.encoder.dialogue_novelty(batch["params"]) * mask), count)
        return sums

    def evaluation(
        self, model: Model, the_zoo: zoo.Zoo, split: dict[str, np.ndarray], embeddings: np.ndarray, subsets, settings
    ) -> dict:
        """What the downstream evaluation adds: cloning (`experiments.run.cloning`, `settings` = config.evaluate)."""
        return {"cloning": cloning.report(model, self.family, the_zoo, split, embeddings, settings)}

    @staticmethod
    def records(result: dict) -> list[dict]:
        """The flat (split, predictor, metric, value) rows of one evaluation of this objective (`evaluation.json`):
        the probes' scores, and per held-out split the loss, the boundary loss and cloning."""
        rows = probe_records(result)
        for split in dataset.HELD_OUT:
            rows.append(dict(split=split, predictor="", metric="loss", value=result["loss"][split]))
            boundary = result["loss"][f"{split}_boundary"]
            rows.append(dict(split=split, predictor="", metric="boundary_loss", value=boundary))
            cloned = result["cloning"][split]
            rows.append(dict(split=split, predictor="", metric="cloning", value=cloned["abs_difference"]))
            # None where no sampled original does its task.
            rows.append(dict(split=split, predictor="", metric="good_clones", value=cloned["good_clones"]))
        return rows


@dataclasses.dataclass(frozen=True, eq=False)
class Oracle(Emulation):
    """Emulation with the embedding of `target`'s true value (`model.TargetOracle`) in place of the encoder."""

    name: ClassVar[str] = ORACLE
    row_label: ClassVar[str] = ORACLE
    competes: ClassVar[bool] = False
    reads_weights: ClassVar[bool] = False  # an oracle reads a target's value
    encoder_by_emulation: ClassVar[bool] = False

    target: targets.Target

    def make_model(self, config: ml_collections.ConfigDict, spec: lstm.LSTMSpec) -> Model:
        """`TargetOracle` of the target, in place of the weight encoder, with the emulator."""
        features = self.target.features().shape[1]
        oracle = TargetOracle(self.target.name, features, config.encoder.embedding_size, rngs=nnx.Rngs(config.seed))
        return Model(oracle, make_emulator(config, self.family))

    @classmethod
    def table_row(cls, config: ml_collections.ConfigDict) -> tuple[str, str]:
        return cls.name, config.oracle.target

    def describe(self, encoder: str) -> str:
        return f"oracle of {self.target.name}"

    def encoder_inputs(self, the_zoo: zoo.Zoo) -> PyTree:
        """The target's features {"oracle": [N, F]} for every snapshot of `the_zoo` (any zoo of the family)."""
        choices = oracle_choices(targets.downstream(self.family, the_zoo.metadata))
        features = named_target("oracle.target", self.target.name, choices).features()
        expected = self.target.features().shape[1]
        if features.shape[1] != expected:
            raise ValueError(
                f"The oracle reads {expected} features of {self.target.name!r}; this zoo gives "
                f"{features.shape[1]} (another zoo's classes?)."
            )
        return {"oracle": features}

    def device_arrays(self, arrays: PyTree) -> PyTree:
        """The target's features in place of the params; with a probe set, the LSTMs' params as "probed"."""
        probed = {} if self.probe_set is None else {"probed": arrays["params"]}
        return {**super().device_arrays(arrays), **probed, "params": {"oracle": np.asarray(self.target.features())}}


@dataclasses.dataclass(frozen=True, eq=False)
class Supervised:
    """A prediction head reads `target` (standardised on the train split) from the embedding."""

    name: ClassVar[str] = SUPERVISED
    # A row per encoder; each target's column from the run trained on it, scored by its own head.
    row_label: ClassVar[str] = "supervised, {group}"
    table_predictor: ClassVar[str | None] = HEAD
    competes: ClassVar[bool] = True
    reads_weights: ClassVar[bool] = True
    encoder_by_emulation: ClassVar[bool] = False

    family: tasks.TaskFamily
    target: targets.Target

    def make_model(self, config: ml_collections.ConfigDict, spec: lstm.LSTMSpec) -> SupervisedModel:
        """The weight encoder of `config.encoder` with a prediction head for the target."""
        return SupervisedModel(make_encoder(config, self.family, spec), make_head(config, self.target))

    @classmethod
    def table_row(cls, config: ml_collections.ConfigDict) -> tuple[str, str]:
        return f"{cls.name}_{config.supervised.target}", config.encoder.name

    def describe(self, encoder: str) -> str:
        return f"{encoder}, supervised on {self.target.name}"

    def encoder_inputs(self, the_zoo: zoo.Zoo) -> PyTree:
        return the_zoo.params

    def assemble(self, rows: PyTree) -> PyTree:
        """The batch of rows (`dataset.take`): the family's emulation data, which only the params matter of."""
        return dataset.assemble(rows, self.family)

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
        self,
        model: SupervisedModel,
        the_zoo: zoo.Zoo,
        split: dict[str, np.ndarray],
        embeddings: np.ndarray,
        subsets,
        settings,
    ) -> dict:
        """What the downstream evaluation adds: the head's own scores on its target, as predictor "head"."""
        outputs = batches.apply_in_batches(model, the_zoo.params)
        return {"probes": {HEAD: targets.subset_scores(self.target, self.target.decode(outputs), subsets)}}

    @staticmethod
    def records(result: dict) -> list[dict]:
        """The flat rows of one evaluation of this objective: the probes' scores (its head's among them) and per
        held-out split its loss."""
        loss = [dict(split=s, predictor="", metric="loss", value=result["loss"][s]) for s in dataset.HELD_OUT]
        return probe_records(result) + loss


Objective = Emulation | Oracle | Supervised


def probe_records(result: dict) -> list[dict]:
    """The (split, predictor, metric, value) rows of an evaluation's probe scores."""
    return [
        dict(split=split, predictor=predictor, metric=m, value=v)
        for predictor, by_split in result["probes"].items()
        for split, metrics in by_split.items()
        for m, v in metrics.items()
    ]


def named_target(field: str, name: str, choices: list[targets.Target]) -> targets.Target:
    """The target called `name`, or a clear error naming the config `field`."""
    by_name = {t.name: t for t in choices}
    if name not in by_name:
        raise errors.ConfigError(f"Unknown {field} {name!r}; this zoo's targets are {sorted(by_name)}.")
    return by_name[name]


def oracle_choices(all_targets: list[targets.Target]) -> list[targets.Target]:
    """What an oracle may embed: any downstream target, or `CONSTANT_ORACLE` (one class for every snapshot).

    The constant oracle's embedding is a learned constant: the emulator knows nothing of the LSTM it
    emulates, which is the level an embedding must beat to matter at all.
    """
    constant = targets.Classes.of(CONSTANT_ORACLE, np.zeros(len(all_targets[0].values)), (0,))
    return [*all_targets, constant]


def kind_of(config: ml_collections.ConfigDict) -> type[Objective]:
    """The objective class of a run's config: `supervised.target` or `oracle.target` set, else emulation."""
    if config.oracle.target and config.supervised.target:
        raise ValueError("oracle.target and supervised.target exclude each other: an oracle run trains by emulation.")
    if config.supervised.target:
        return Supervised
    return Oracle if config.oracle.target else Emulation


def make(
    config: ml_collections.ConfigDict,
    family: tasks.TaskFamily,
    all_targets: list[targets.Target],
    train: np.ndarray,
    has_tokens: bool,
) -> Objective:
    """The run's objective (`kind_of` its config), for a zoo of `family` with the downstream `all_targets`.

    Args:
      train: the train split's snapshots, on which a supervised target is standardised.
      has_tokens: whether the zoo's emulation data has next-token targets (a token loss needs them).
    """
    kind = kind_of(config)
    if kind is Supervised:
        target = named_target("supervised.target", config.supervised.target, all_targets)
        return Supervised(family, target.fitted(train))
    token_loss = config.loss in losses.TOKEN_LOSSES
    if token_loss and not has_tokens:
        raise ValueError(f"Loss {config.loss!r} needs next-token targets, which {family.name} zoos do not have.")
    probe_set = family.emulation_probes() if config.emulate_on == "probe_set" else None
    if probe_set is not None and token_loss:
        raise ValueError(f"Loss {config.loss!r} compares with next tokens, which a probe set does not have.")
    if kind is Oracle:
        target = named_target("oracle.target", config.oracle.target, oracle_choices(all_targets))
        return Oracle(family, config.loss, token_loss, target, probe_set=probe_set)
    return Emulation(family, config.loss, token_loss, probe_set=probe_set)


# Every objective by name.
KINDS: dict[str, type[Objective]] = {kind.name: kind for kind in (Emulation, Supervised, Oracle)}


class Reference:
    """The reference rows' kind (`experiments.analyses.references`): readouts and fixed probes of the LSTMs'
    behaviour, with no learned encoder and no training objective; in the registry of row kinds beside the
    objectives, so the tables ask it what they ask an objective."""

    name: ClassVar[str] = REFERENCE
    row_label: ClassVar[str] = REFERENCE
    table_predictor: ClassVar[str | None] = None
    competes: ClassVar[bool] = False  # a reference is a level to compare with, not a contender
    reads_weights: ClassVar[bool] = False
    encoder_by_emulation: ClassVar[bool] = False


# Every kind of row of the results tables, in the tables' order.
ROW_KINDS: dict[str, type[Objective] | type[Reference]] = {
    kind.name: kind for kind in (Emulation, Supervised, Reference, Oracle)
}
