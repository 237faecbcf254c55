"""The declared type and range of every field of a zoo config (`weightspace.schema`).

`problems(config)` is what `zoo_builder.main` checks as it parses its flags, and what `build.build`
checks again for a config built in Python. The task family's settings are its own dataclass's to check
(each family's `__post_init__`, settings against each other included).
"""

import itertools

import ml_collections

from weightspace import schema, tasks

_LR_POINTS = "(step, learning rate > 0) pairs, the steps increasing"
RULES: dict[str, schema.Rule] = {
    "seed": schema.Int(0),
    "num_runs": schema.Int(1),
    "task.name": schema.Text(),  # a registered family (`_task`: families may register late)
    "lstm.hidden_size": schema.Int(1),
    "lstm.num_layers": schema.Int(1),
    "train.lr_points": schema.Tuple(schema.Tuple(schema.Float(0.0)), words=_LR_POINTS),
    "train.snapshot_steps": schema.Tuple(schema.Int(0), increasing=True, words="increasing steps >= 0, at least one"),
    "train.steps_per_call": schema.Int(1),
    "train.checkpoint_every_steps": schema.Int(1),
    "layout.runs_per_device": schema.Int(0),
    "layout.distributed": schema.Bool(),
    "log_every_seconds": schema.Float(0.0),
}


def _learning_rates(config: ml_collections.ConfigDict) -> list[str]:
    points = [tuple(point) for point in config.train.lr_points]
    if any(len(p) != 2 or p[1] <= 0 for p in points) or any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
        return [f"train.lr_points={config.train.lr_points!r} must be {_LR_POINTS}"]
    return []


def _task(config: ml_collections.ConfigDict) -> list[str]:
    if config.task.name not in tasks.FAMILIES:
        return [f"task.name={config.task.name!r} must be one of {sorted(tasks.FAMILIES)}"]
    try:
        tasks.make(config.task.name, config.task.settings)
    except (TypeError, ValueError) as error:
        return [f"task.settings do not fit {config.task.name}: {' '.join(str(error).split())}"]
    return []


RELATIONS = (_learning_rates, _task)


def problems(config: ml_collections.ConfigDict) -> list[str]:
    """Every field of `config` out of its declared range, then the task's settings and the fields that do not
    fit each other."""
    return schema.problems(config, RULES, RELATIONS, skip=("task.settings",))
