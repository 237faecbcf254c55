"""Encoder training by emulation with the layerwise statistics encoder.

Paper setting (100,000 steps, batch 64; for accelerators):
  python -m experiments.main --config=configs/layerwise_statistics.py --workdir=/tmp/layerwise_statistics
Quick CPU preset (a few minutes; see configs/common.py for how it differs from
the paper, and here: the MLP's hidden layer has 64 units instead of 128):
  python -m experiments.main --config=configs/layerwise_statistics.py:quick --workdir=/tmp/layerwise_statistics_quick
Smoke preset (seconds, for tests):
  python -m experiments.main --config=configs/layerwise_statistics.py:smoke --workdir=/tmp/layerwise_statistics_smoke
Another dataset: add --config.zoo.dataset=sequential_mnist.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.get_config("layerwise_statistics", arg, quick=dict(hidden_sizes=(64,)), smoke=dict(hidden_sizes=(8,)))
