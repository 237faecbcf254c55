"""What every weight encoder shares: the base class, its config fields, an MLP.

An encoder maps a batch of zoo-LSTM params (every tensor with a leading batch
axis) to embeddings [batch, embedding_size]. Subclasses implement `encode`;
`__call__` checks the params against the encoder's `LSTMSpec` and normalises
the embedding to unit length when configured.
"""

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm
from weightspace.types import Params

# Below this norm an embedding is scaled as if its norm were this, so that
# normalising an all-zero embedding gives zeros instead of NaNs.
_NORM_FLOOR = 1e-12


def unit_normalize(x: jax.Array) -> jax.Array:
    """Scales each row of `x` [..., features] to unit Euclidean length."""
    squared = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(squared, _NORM_FLOOR**2))


def config_with(name: str, *, augment: bool = False, **fields) -> ml_collections.ConfigDict:
    """The fields every encoder config has, plus the encoder's own `fields`.

    Every field except `name` and `augment` is a keyword argument of the
    encoder's constructor, so a config builds exactly one module.
    """
    config = ml_collections.ConfigDict()
    # Registry name of the encoder (see `weightspace.encoders.NAMES`).
    config.name = name
    # Width of the embedding E(theta).
    config.embedding_size = 16
    # Scale every embedding to unit length.
    config.normalize = True
    # Read by the training loop: train on randomly hidden-neuron-permuted
    # weights (`weightspace.encoders.augment.augment`), fresh at every step.
    config.augment = augment
    config.update(fields)
    return config


class Encoder(nnx.Module):
    """Base class: a module from a batch of zoo-LSTM params to embeddings."""

    def __init__(self, spec: lstm.LSTMSpec, *, embedding_size: int, normalize: bool):
        self.spec = spec
        self.embedding_size = embedding_size
        self.normalize = normalize

    def __call__(self, params: Params) -> jax.Array:
        """Embeds a batch of LSTMs.

        Args:
          params: zoo-LSTM params, every tensor [batch, ...] (see `weightspace.lstm`).

        Returns:
          [batch, embedding_size], of unit length when `normalize`.
        """
        batch = lstm.check_params(params, self.spec)
        if len(batch) != 1:
            raise ValueError(f"An encoder takes params with one leading batch axis, got batch shape {batch}.")
        embedding = self.encode(params)
        return unit_normalize(embedding) if self.normalize else embedding

    def encode(self, params: Params) -> jax.Array:
        """The unnormalised embedding: params [batch, ...] -> [batch, embedding_size]."""
        raise NotImplementedError


class MLP(nnx.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, sizes: Sequence[int], *, rngs: nnx.Rngs):
        """Builds the layers.

        Args:
          sizes: input width, hidden widths..., output width.
          rngs: for the initialisation.
        """
        if len(sizes) < 2:
            raise ValueError(f"An MLP needs an input and an output size, got {sizes}.")
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x: jax.Array) -> jax.Array:
        """[..., sizes[0]] -> [..., sizes[-1]]."""
        for i, layer in enumerate(self.layers):
            x = layer(nnx.relu(x) if i else x)
        return x
