"""Encoder training by emulation with the interactive encoder.

Paper setting (100,000 steps, batch 64; for accelerators):
  python -m experiments.main --config=configs/interactive.py --workdir=/tmp/interactive
Quick CPU preset (a few minutes; see configs/common.py for how it differs from
the paper, and here: an encoder LSTM of width 64 (codes 32, MLPs 32) instead of 256 (128, 128)):
  python -m experiments.main --config=configs/interactive.py:quick --workdir=/tmp/interactive_quick
Smoke preset (seconds, for tests):
  python -m experiments.main --config=configs/interactive.py:smoke --workdir=/tmp/interactive_smoke
Another dataset: add --config.zoo.dataset=sequential_mnist.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.get_config(
        "interactive",
        arg,
        quick=dict(lstm_size=64, code_size=32, probe_hidden_sizes=(32,), hidden_sizes=(32,)),
        smoke=dict(lstm_size=8, lstm_layers=1, code_size=8, probe_hidden_sizes=(8,), hidden_sizes=(8,)),
    )
