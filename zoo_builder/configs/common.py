"""Settings shared by every zoo: training schedule, snapshots, device layout.

A zoo config file parses its preset (`weightspace.presets`: paper, medium, quick, smoke),
calls `base_config(preset)` and fills in `config.task`.
"""

import dataclasses

import ml_collections

PAPER_SNAPSHOT_STEPS = (0, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


def family_settings(family_class: type, **overrides) -> ml_collections.ConfigDict:
    """A task family's settings: its dataclass defaults (documented there) plus overrides."""
    settings = {f.name: f.default for f in dataclasses.fields(family_class)}
    unknown = set(overrides) - set(settings)
    if unknown:
        raise KeyError(f"{family_class.__name__} has no settings {sorted(unknown)}.")
    return ml_collections.ConfigDict({**settings, **overrides})


def base_config(preset: str) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Seeds task assignment, initialisation, batches and snapshot sampling.
    config.seed = 0
    # Number of runs (LSTMs) in the zoo.
    config.num_runs = 1000

    config.task = ml_collections.ConfigDict()
    # Task family name, see `weightspace.tasks.FAMILIES`.
    config.task.name = ""
    # The family's settings (fields of its dataclass).
    config.task.settings = ml_collections.ConfigDict()

    config.lstm = ml_collections.ConfigDict()
    # Hidden size and depth of the zoo LSTM (input/output sizes come from the family).
    config.lstm.hidden_size = 32
    config.lstm.num_layers = 2

    config.train = ml_collections.ConfigDict()
    # Piecewise-linear learning rate through these (step, value) points.
    config.train.lr_points = ((0, 0.01), (10_000, 0.003), (20_000, 0.0003))
    # Steps at which a snapshot is kept; training stops at the last one.
    config.train.snapshot_steps = PAPER_SNAPSHOT_STEPS
    # Training steps per jitted call (a lax.scan); more amortises dispatch.
    config.train.steps_per_call = 50
    # Save the training state of the current group every this many steps.
    config.train.checkpoint_every_steps = 1000

    config.layout = ml_collections.ConfigDict()
    # Runs trained together per device (0: automatic, 1 on CPU, 256 on accelerators).
    config.layout.runs_per_device = 0
    # Call jax.distributed.initialize() first (multi-host TPU/GPU pods).
    config.layout.distributed = False

    # Seconds between progress lines.
    config.log_every_seconds = 10.0

    if preset == "medium":
        config.num_runs = 648
        config.train.snapshot_steps = (0, 100, 200, 500, 1000, 2000)
        config.train.checkpoint_every_steps = 500
    elif preset == "quick":
        config.num_runs = 128
        config.train.snapshot_steps = (0, 100, 200, 500, 1000)
        config.train.checkpoint_every_steps = 200
    elif preset == "smoke":
        config.num_runs = 4
        config.train.snapshot_steps = (0, 10, 20)
        config.train.steps_per_call = 5
        config.train.checkpoint_every_steps = 10
        config.log_every_seconds = 1.0
    return config


def family_config(family_class: type, preset: str) -> ml_collections.ConfigDict:
    """The zoo config of a family without a config file of its own: the common one, the family's defaults."""
    config = base_config(preset)
    config.task.name = family_class.name
    config.task.settings = family_settings(family_class)
    return config
