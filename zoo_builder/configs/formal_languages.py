"""The formal-language zoo ("formal_languages_tokens_4_length_42_2x32").

Paper setting (1000 runs, 20,000 steps, 9 snapshots; for accelerators):
  python -m zoo_builder.main --config=configs/formal_languages.py --workdir=/tmp/zoo_fl
Quick CPU preset (128 runs on 128 distinct tasks, 1000 steps, snapshots at
0/100/200/500/1000, same schedule and batch; a few minutes on 2 cores):
  python -m zoo_builder.main --config=configs/formal_languages.py:quick --workdir=/tmp/zoo_fl_quick
Medium CPU preset (648 runs: every one of the 216 tasks 3 times; 2000 steps, snapshots at
0/100/200/500/1000/2000; about an hour on 2 cores, resumable):
  python -m zoo_builder.main --config=configs/formal_languages.py:medium --workdir=/tmp/zoo_fl_medium
Smoke preset (4 runs, 20 steps, small batches; seconds, for tests):
  python -m zoo_builder.main --config=configs/formal_languages.py:smoke --workdir=/tmp/zoo_fl_smoke
"""

import ml_collections

from weightspace import presets
from weightspace.tasks.formal_languages import FormalLanguages
from zoo_builder.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    preset = presets.parse_preset(arg)
    config = common.base_config(preset)
    config.task.name = FormalLanguages.name
    if preset == "paper":
        config.task.settings = common.family_settings(FormalLanguages)
    elif preset in ("medium", "quick"):
        config.task.settings = common.family_settings(FormalLanguages, cycle_tasks=True)
    else:
        config.task.settings = common.family_settings(
            FormalLanguages, batch_size=8, num_stored_sequences=8, num_scored_sequences=32, cycle_tasks=True
        )
    return config
