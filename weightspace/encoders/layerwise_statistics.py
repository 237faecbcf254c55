"""Layer-wise statistics encoder: summary statistics of every tensor -> MLP.

Per tensor (in reference order): mean, variance, and the quantiles 0, .25,
.5, .75, 1 of its entries, 7 x 10 = 70 features for the 2-layer LSTM. The
statistics are invariant to the hidden-neuron permutations, so this encoder
is too (it also ignores everything else about where a weight sits).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from weightspace import lstm
from weightspace.encoders import base
from weightspace.types import Params

NAME = "layerwise_statistics"
GROUP = "mechanistic"  # reads the weights themselves


def default_config() -> ml_collections.ConfigDict:
    """Paper setting: one hidden layer of 128."""
    return base.config_with(
        NAME,
        # Hidden widths of the MLP from the statistics to the embedding.
        hidden_sizes=(128,),
        # Quantile levels computed per tensor (besides mean and variance).
        quantiles=(0.0, 0.25, 0.5, 0.75, 1.0),
    )


def _sort(x: jax.Array) -> jax.Array:
    """`jnp.sort(x, axis=-1)` for float32 `x` without NaNs, through an order-preserving int32 view.

    XLA:CPU sorts int32 several times faster than float32 (whose comparator
    handles NaNs), and sorting dominates this encoder's cost. Flipping the
    magnitude bits of negative floats makes their int32 order the float order.
    """
    magnitude_bits = jnp.int32(0x7FFFFFFF)
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    keys = jnp.sort(jnp.where(bits < 0, bits ^ magnitude_bits, bits), axis=-1)
    return jax.lax.bitcast_convert_type(jnp.where(keys < 0, keys ^ magnitude_bits, keys), jnp.float32)


def _quantiles(x: jax.Array, quantiles: Sequence[float]) -> jax.Array:
    """Quantiles of the last axis with linear interpolation (NumPy's default): [..., n] -> [..., len(quantiles)]."""
    n = x.shape[-1]
    position = np.asarray(quantiles, np.float64) * (n - 1)
    low = np.floor(position).astype(np.int32)
    high = np.minimum(low + 1, n - 1)
    fraction = (position - low).astype(np.float32)
    ordered = _sort(x)
    return ordered[..., low] * (1 - fraction) + ordered[..., high] * fraction


def statistics(params: Params, spec: lstm.LSTMSpec, quantiles: Sequence[float]) -> jax.Array:
    """Per-tensor statistics: [batch, num_tensors * (2 + len(quantiles))].

    For each tensor in `spec.shapes()` order: mean, variance (unbiased, as
    `torch.var` in the paper's code), then the quantiles (linear
    interpolation, as `torch.quantile`).
    """
    features = []
    for name in spec.shapes():
        x = params[name].reshape(params[name].shape[0], -1)
        moments = [x.mean(-1, keepdims=True), x.var(-1, ddof=1, keepdims=True)]
        features.append(jnp.concatenate([*moments, _quantiles(x, quantiles)], axis=-1))
    return jnp.concatenate(features, axis=-1)


class LayerwiseStatistics(base.Encoder):
    """Statistics of each tensor -> MLP -> embedding."""

    def __init__(
        self,
        spec: lstm.LSTMSpec,
        *,
        embedding_size: int,
        normalize: bool,
        hidden_sizes: Sequence[int],
        quantiles: Sequence[float],
        rngs: nnx.Rngs,
    ):
        super().__init__(spec, embedding_size=embedding_size, normalize=normalize)
        self.quantiles = tuple(float(q) for q in quantiles)
        num_features = len(spec.shapes()) * (2 + len(self.quantiles))
        self.mlp = base.MLP([num_features, *hidden_sizes, embedding_size], rngs=rngs)

    def encode(self, params: Params) -> jax.Array:
        return self.mlp(statistics(params, self.spec, self.quantiles))
