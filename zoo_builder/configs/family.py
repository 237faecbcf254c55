"""The zoo of any registered task family, with the family's default settings (the common config).

For a family without a config file of its own, e.g. the combination locks:
  python -m zoo_builder.main --config=configs/family.py:combination_lock,quick --workdir=/tmp/zoo_locks
  python -m zoo_builder.main --config=configs/family.py:combination_lock,quick \
      --config.task.settings.code_length=4 --workdir=/tmp/zoo_locks_m4
The argument is the family's name, then optionally a preset (paper, medium, quick, smoke; default paper).
"""

import ml_collections

from weightspace import presets, tasks
from zoo_builder.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    name, _, preset = (arg or "").partition(",")
    if name not in tasks.FAMILIES:
        raise ValueError(f"configs/family.py:NAME[,preset] needs a task family name; known: {sorted(tasks.FAMILIES)}.")
    return common.family_config(tasks.FAMILIES[name], presets.parse_preset(preset or None))
