"""Flattened-weights encoder: all parameters in reference order -> MLP.

It sees the raw weights (13,766 numbers for the formal-language LSTM), so it
is not invariant to the hidden-neuron permutations; the paper trains it with
random permutation augmentation instead (`augment=True` in its config).
"""

from collections.abc import Sequence

import jax
import ml_collections
from flax import nnx

from weightspace import lstm
from weightspace.encoders import base
from weightspace.types import Params

NAME = "flat"
GROUP = "mechanistic"  # reads the weights themselves


def default_config() -> ml_collections.ConfigDict:
    """Paper setting: three hidden layers of 128, trained with augmentation."""
    return base.config_with(
        NAME,
        augment=True,
        # Hidden widths of the MLP from the flat weights to the embedding.
        hidden_sizes=(128, 128, 128),
    )


class Flat(base.Encoder):
    """`lstm.to_flat(params)` [batch, num_params] -> MLP -> embedding."""

    def __init__(
        self,
        spec: lstm.LSTMSpec,
        *,
        embedding_size: int,
        normalize: bool,
        hidden_sizes: Sequence[int],
        rngs: nnx.Rngs,
    ):
        super().__init__(spec, embedding_size=embedding_size, normalize=normalize)
        self.mlp = base.MLP([spec.num_params, *hidden_sizes, embedding_size], rngs=rngs)

    def encode(self, params: Params) -> jax.Array:
        return self.mlp(lstm.to_flat(params))
