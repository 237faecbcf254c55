"""Encoder training by emulation with the flat encoder.

Paper setting (100,000 steps, batch 64; for accelerators):
  python -m experiments.main --config=configs/flat.py --workdir=/tmp/flat
Quick CPU preset (a few minutes; see configs/common.py for how it differs from
the paper, and here: three hidden layers of 64 instead of 128):
  python -m experiments.main --config=configs/flat.py:quick --workdir=/tmp/flat_quick
Smoke preset (seconds, for tests):
  python -m experiments.main --config=configs/flat.py:smoke --workdir=/tmp/flat_smoke
Another dataset: add --config.zoo.dataset=sequential_mnist.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.get_config("flat", arg, quick=dict(hidden_sizes=(64, 64, 64)), smoke=dict(hidden_sizes=(8,)))
