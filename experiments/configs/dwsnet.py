"""Encoder training by emulation with the dwsnet encoder.

Paper setting (100,000 steps, batch 64; for accelerators):
  python -m experiments.main --config=configs/dwsnet.py --workdir=/tmp/dwsnet
Quick CPU preset (a few minutes; see configs/common.py for how it differs from
the paper, and here: 2 layers of 16 channels and an MLP of 64 instead of 4 layers of 48 and 128):
  python -m experiments.main --config=configs/dwsnet.py:quick --workdir=/tmp/dwsnet_quick
Smoke preset (seconds, for tests):
  python -m experiments.main --config=configs/dwsnet.py:smoke --workdir=/tmp/dwsnet_smoke
Another dataset: add --config.zoo.dataset=sequential_mnist.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.get_config(
        "dwsnet",
        arg,
        quick=dict(channels=16, num_layers=2, hidden_sizes=(64,)),
        smoke=dict(channels=4, num_layers=1, hidden_sizes=(8,)),
    )
