"""Encoder training by emulation with the parameter transformer encoder.

Paper setting (100,000 steps, batch 64; for accelerators):
  python -m experiments.main --config=configs/parameter_transformer.py --workdir=/tmp/parameter_transformer
Quick CPU preset (a few minutes; see configs/common.py for how it differs from
the paper, and here: width 32, 2 layers, 1 head and MLP width 64 instead of 128, 6, 2
and 512: attention over 519 tokens is what costs on a CPU; the last layer
attends from the summary token only, so the second layer is nearly free):
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
        quick=dict(width=32, num_layers=2, num_heads=1, mlp_size=64),
        smoke=dict(width=8, num_layers=1, mlp_size=16, num_heads=1),
    )
