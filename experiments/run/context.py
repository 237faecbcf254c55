"""What a run knows besides its arrays, built once from (config, zoo) and shared by training, evaluation,
the reference rows and the figures: the task family, the LSTM spec, the task split, the downstream
targets and the objective (`experiments.run.objectives`).
"""

import dataclasses

import jax
import ml_collections
import numpy as np

from experiments.run import objectives
from weightspace import dataset, errors, lstm, sharding, targets, tasks, zoo


def zoo_family(the_zoo: zoo.Zoo) -> tasks.TaskFamily:
    """The task family a zoo was built with, its settings included."""
    return tasks.make(the_zoo.family, the_zoo.info.get("family_settings"))


def task_split(config: ml_collections.ConfigDict, the_zoo: zoo.Zoo, family: tasks.TaskFamily) -> dict[str, np.ndarray]:
    """The run's train / eval / OOD snapshot indices (whole tasks, `config.split`; a clear error for an OOD fold
    past the zoo's tasks)."""
    split = config.split
    try:
        return dataset.task_split(the_zoo, family, split.seed, split.ood_fraction, split.eval_fraction, split.ood_fold)
    except ValueError as error:
        raise errors.ConfigError(f"split.ood_fold={split.ood_fold}: {error} Choose a lower fold.") from error


@dataclasses.dataclass(frozen=True, eq=False)
class RunContext:
    """A run's fixed facts about its zoo (see the module docstring).

    Attributes:
      train_snapshots: the snapshots training draws from, the train split's from step `train.min_step` on.
    """

    config: ml_collections.ConfigDict
    family: tasks.TaskFamily
    spec: lstm.LSTMSpec
    split: dict[str, np.ndarray]
    train_snapshots: np.ndarray
    targets: list[targets.Target]
    objective: objectives.Objective

    @classmethod
    def of(cls, config: ml_collections.ConfigDict, the_zoo: zoo.Zoo) -> "RunContext":
        """The context of the run of `config` on `the_zoo` (a clear error for a config that does not fit it)."""
        family = zoo_family(the_zoo)
        split = task_split(config, the_zoo, family)
        empty = [name for name, indices in split.items() if not len(indices)]
        if empty:
            raise errors.ConfigError(
                f"The zoo's tasks leave the {' and '.join(empty)} split empty (split.ood_fraction="
                f"{config.split.ood_fraction}, split.eval_fraction={config.split.eval_fraction} of its distinct "
                f"tasks, rounded); build a zoo with more distinct tasks or raise those fractions."
            )
        steps = np.asarray(the_zoo.metadata["step"])[split["train"]]
        train_snapshots = split["train"][steps >= config.train.min_step]
        if not len(train_snapshots):
            raise errors.ConfigError(
                f"No training snapshot has a step >= train.min_step={config.train.min_step}: lower it to a step the "
                "zoo has."
            )
        all_targets = targets.downstream(family, the_zoo.metadata)
        # Shapes only: does this family's emulation data have next-token targets?
        has_tokens = "tokens" in jax.eval_shape(family.emulation_data, the_zoo.behaviour)
        objective = objectives.make(config, family, all_targets, split["train"], has_tokens)
        return cls(config, family, the_zoo.spec, split, train_snapshots, all_targets, objective)

    def mesh(self, local: bool = False, members: int = 1) -> jax.sharding.Mesh:
        """The mesh a run's (or a sweep's) steps run on, axes ("members", "data").

        With `train.data_parallel` the batch is split over every device ("data"); otherwise a sweep's
        `members` are split over as many devices as divide their number ("members"; a single run: the
        first device). Every device of every process of the job, or with `local` this process's own
        (evaluation, which each process of a multi-process job runs alone).
        """
        devices = jax.local_devices() if local else jax.devices()
        if self.config.train.data_parallel:
            shape = (1, len(devices))
        else:
            shape = (max(n for n in range(1, min(members, len(devices)) + 1) if members % n == 0), 1)
        return sharding.grid(("members", "data"), shape, devices)
