"""Zoo configs: one file per task family with its own presets; any other registered family gets the
common config with its default settings.
"""

import importlib
import importlib.util

import ml_collections

from weightspace import presets, tasks
from zoo_builder.configs import common


def get_config(dataset: str, preset: str) -> ml_collections.ConfigDict:
    """The zoo config of task family `dataset` at `preset`."""
    if importlib.util.find_spec(f"zoo_builder.configs.{dataset}") is not None:
        return importlib.import_module(f"zoo_builder.configs.{dataset}").get_config(preset)
    if dataset not in tasks.FAMILIES:
        raise ValueError(f"Unknown task family {dataset!r}; known families: {sorted(tasks.FAMILIES)}.")
    return common.family_config(tasks.FAMILIES[dataset], presets.parse_preset(preset))
