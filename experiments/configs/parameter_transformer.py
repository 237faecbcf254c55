"""Encoder training by emulation with the parameter transformer encoder.

Paper setting (100,000 steps, batch 64; for accelerators):
  python -m experiments.main --config=configs/parameter_transformer.py --workdir=/tmp/parameter_transformer
Quick CPU preset (a few minutes; see configs/common.py for how it differs from
the paper, and here: width 64, 2 layers and MLP width 128 instead of 128, 6 and 512):
  python -m experiments.main --config=configs/parameter_transformer.py:quick --workdir=/tmp/parameter_transformer_quick
Smoke preset (seconds, for tests):
  python -m experiments.main --config=configs/parameter_transformer.py:smoke --workdir=/tmp/parameter_transformer_smoke
Another dataset: add --config.zoo.dataset=sequential_mnist.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.get_config(
        "parameter_transformer",
        arg,
        quick=dict(width=64, num_layers=2, mlp_size=128),
        smoke=dict(width=8, num_layers=1, mlp_size=16, num_heads=1),
    )
