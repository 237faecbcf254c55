"""What a run reads from its zoo besides the arrays: the task family, the task split, the downstream
targets, and the target that a supervised run predicts or an oracle run embeds.
"""

import ml_collections
import numpy as np

from experiments.model import Model, SupervisedModel, TargetOracle
from weightspace import dataset, targets, tasks, zoo
from weightspace.types import PyTree

# The oracle target that embeds nothing about the LSTM (see `_oracle_choices`).
CONSTANT_ORACLE = "constant"


def zoo_family(the_zoo: zoo.Zoo) -> tasks.TaskFamily:
    """The task family a zoo was built with, its settings included."""
    return tasks.make(the_zoo.family, the_zoo.info.get("family_settings"))


def task_split(config: ml_collections.ConfigDict, the_zoo: zoo.Zoo, family: tasks.TaskFamily) -> dict[str, np.ndarray]:
    """The run's train / eval / OOD snapshot indices (whole tasks, `config.split`)."""
    return dataset.task_split(the_zoo, family, config.split.seed, config.split.ood_fraction, config.split.eval_fraction)


def downstream_targets(metadata: dict[str, np.ndarray], family: tasks.TaskFamily) -> list[targets.Target]:
    """Every downstream target of a zoo (from its metadata columns): its family's, then the training step."""
    return [*family.downstream_targets(metadata), *targets.step_targets(metadata["step"])]


def _named_target(field: str, name: str, all_targets: list[targets.Target]) -> targets.Target | None:
    """The target called `name` (None for ""), or a clear error naming the config `field`."""
    if not name:
        return None
    by_name = {t.name: t for t in all_targets}
    if name not in by_name:
        raise ValueError(f"Unknown {field} {name!r}; this zoo's targets are {sorted(by_name)}.")
    return by_name[name]


def supervised_target(config: ml_collections.ConfigDict, all_targets: list[targets.Target]) -> targets.Target | None:
    """The target of a supervised run (None when the run trains by emulation)."""
    return _named_target("supervised.target", config.supervised.target, all_targets)


def oracle_target(config: ml_collections.ConfigDict, all_targets: list[targets.Target]) -> targets.Target | None:
    """The target an oracle run embeds in place of encoding weights (None for a weight encoder)."""
    name = config.oracle.target
    if name and config.supervised.target:
        raise ValueError("oracle.target and supervised.target exclude each other: an oracle run trains by emulation.")
    return _named_target("oracle.target", name, _oracle_choices(all_targets))


def _oracle_choices(all_targets: list[targets.Target]) -> list[targets.Target]:
    """What an oracle may embed: any downstream target, or `CONSTANT_ORACLE` (one class for every snapshot).

    The constant oracle's embedding is a learned constant: the emulator knows nothing of the LSTM it
    emulates, which is the level an embedding must beat to matter at all.
    """
    constant = targets.Classes.of(CONSTANT_ORACLE, np.zeros(len(all_targets[0].values)), (0,))
    return [*all_targets, constant]


def encoder_inputs(model: "Model | SupervisedModel", the_zoo: zoo.Zoo) -> PyTree:
    """What the model's encoder reads for every snapshot: the zoo params, or an oracle's target features [N, F]."""
    if not isinstance(model.encoder, TargetOracle):
        return the_zoo.params
    family = zoo_family(the_zoo)
    choices = _oracle_choices(downstream_targets(the_zoo.metadata, family))
    target = _named_target("oracle.target", model.encoder.target_name, choices)
    features = target.features()
    if features.shape[1] != model.encoder.linear.in_features:
        raise ValueError(
            f"The oracle reads {model.encoder.linear.in_features} features of {target.name!r}; "
            f"this zoo gives {features.shape[1]} (another zoo's classes?)."
        )
    return {"oracle": features}
