"""Parameter transformer: every neuron's incoming weights are one token.

Token layout. Each weight matrix in reference order contributes one token per
row, that row with the matching entry of the bias of the same name appended:
`weight_ih_l{k}` rows with `bias_ih_l{k}`, `weight_hh_l{k}` rows with
`bias_hh_l{k}` (so each of the LSTM's two biases attaches to the matrix it
belongs to in PyTorch, as in the paper's code), and `weight_out` rows with
`bias_out`. For the 2 x 32 LSTM with 6 inputs and outputs that is
128 + 128 + 128 + 128 + 6 = 518 tokens. A token of matrix m has width
`columns(m) + 1` and is projected to the model width by m's own linear map.
A learned summary token comes first, learned positional encodings are added
to all 519 positions, and the summary token's output gives the embedding.

The layers are PyTorch's `nn.TransformerEncoderLayer` defaults (what the
paper's code uses): post-norm, ReLU, dropout on the attention weights, after
attention, inside the MLP and after it. Positions break the permutation
symmetry, so the paper trains it with permutation augmentation.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm
from weightspace.encoders import base
from weightspace.types import Params

NAME = "parameter_transformer"
GROUP = "mechanistic"  # reads the weights themselves
# PyTorch's LayerNorm epsilon.
_LAYER_NORM_EPSILON = 1e-5


def default_config() -> ml_collections.ConfigDict:
    """Paper setting: 6 layers of width 128, 2 heads, MLP 512, dropout 0.1, augmentation."""
    return base.config_with(
        NAME,
        augment=True,
        # Model width (every token is projected to it).
        width=128,
        # Number of encoder layers.
        num_layers=6,
        # Attention heads per layer.
        num_heads=2,
        # Hidden width of each layer's MLP.
        mlp_size=512,
        # Dropout rate (attention weights, residual branches, MLP hidden).
        dropout=0.1,
    )


def token_groups(spec: lstm.LSTMSpec) -> tuple[tuple[str, str], ...]:
    """(weight matrix, bias appended to its rows) pairs in token order."""
    return tuple((name, name.replace("weight", "bias", 1)) for name, shape in spec.shapes().items() if len(shape) == 2)


def num_tokens(spec: lstm.LSTMSpec) -> int:
    """Number of neuron tokens (without the summary token): rows of all weight matrices."""
    shapes = spec.shapes()
    return sum(shapes[weight][0] for weight, _ in token_groups(spec))


def _hash(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash with good avalanche ("lowbias32", nullprogram.com/blog/2018/07/31)."""
    x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
    x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Inverted dropout (as `nnx.Dropout`) with masks from a keyed integer hash of the element index.

    JAX's threefry costs ~12 ns per element on a CPU, more than all the
    matmuls touching the [batch, heads, tokens, tokens] attention weights;
    the two hash rounds fuse into the multiply and cost next to nothing. The
    key only seeds the hash: the masks are as random as dropout needs, not
    cryptographically.
    """
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, math.prod(x.shape)).reshape(x.shape)
    keep = _hash(_hash(index ^ seeds[0]) ^ seeds[1]) < jnp.uint32(round((1 - rate) * 2**32))
    return jnp.where(keep, x / (1 - rate), 0)


class Dropout(nnx.Module):
    """`nnx.Dropout` (same state: a forked `rngs` stream, `deterministic`) with the hash masks of `dropout`."""

    def __init__(self, rate: float, *, rngs: nnx.Rngs):
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}.")
        self.rate = rate
        self.deterministic = False
        self.rngs = rngs["dropout"].fork()

    def __call__(self, x: jax.Array) -> jax.Array:
        return x if self.deterministic or self.rate == 0 else dropout(x, self.rate, self.rngs())


class EncoderLayer(nnx.Module):
    """A post-norm transformer encoder layer (`nn.TransformerEncoderLayer` semantics).

    `nnx.MultiHeadAttention` holds the attention's params and RNG stream, but
    the attention itself is computed here: with one QKV projection, and with
    dropout on the attention weights drawn per batch entry and head as in
    PyTorch (`nnx.MultiHeadAttention` shares one mask across them).
    """

    def __init__(self, width: int, num_heads: int, mlp_size: int, dropout: float, *, rngs: nnx.Rngs):
        self.attention = nnx.MultiHeadAttention(
            num_heads, width, dropout_rate=dropout, deterministic=False, decode=False, rngs=rngs
        )
        self.attention_norm = nnx.LayerNorm(width, epsilon=_LAYER_NORM_EPSILON, rngs=rngs)
        self.mlp_in = nnx.Linear(width, mlp_size, rngs=rngs)
        self.mlp_out = nnx.Linear(mlp_size, width, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(width, epsilon=_LAYER_NORM_EPSILON, rngs=rngs)
        self.dropout = Dropout(dropout, rngs=rngs)

    def attend(self, x: jax.Array, num_queries: int) -> jax.Array:
        """Self-attention of the first `num_queries` tokens: [batch, tokens, width] -> [batch, num_queries, width]."""
        attention = self.attention
        kernels = [attention.query.kernel, attention.key.kernel, attention.value.kernel]
        kernel = jnp.stack([k[...] for k in kernels], axis=1)  # [width, 3, heads, head]
        bias = jnp.stack([attention.query.bias[...], attention.key.bias[...], attention.value.bias[...]])
        q, k, v = jnp.unstack(jnp.einsum("btw,wshd->sbhtd", x, kernel) + bias[:, None, :, None], axis=0)
        q = q[:, :, :num_queries] / jnp.sqrt(q.shape[-1]).astype(q.dtype)
        weights = jax.nn.softmax(jnp.einsum("bhqd,bhkd->bhqk", q, k))  # [batch, heads, queries, tokens]
        if not attention.deterministic and attention.dropout_rate > 0:
            weights = dropout(weights, attention.dropout_rate, attention.rngs())
        heads = jnp.einsum("bhqk,bhkd->bqhd", weights, v)
        return jnp.einsum("bqhd,hdw->bqw", heads, attention.out.kernel[...]) + attention.out.bias[...]

    def __call__(self, x: jax.Array, num_outputs: int | None = None) -> jax.Array:
        """[batch, tokens, width] -> the first `num_outputs` (default: all) tokens' outputs [batch, num_outputs, width].

        Only the summary token's output is read after the last layer, and
        every token's output depends on the others only through attention:
        the last layer runs its queries, MLP and norms on that token alone.
        """
        num_outputs = x.shape[1] if num_outputs is None else num_outputs
        x = self.attention_norm(x[:, :num_outputs] + self.dropout(self.attend(x, num_outputs)))
        hidden = self.dropout(nnx.relu(self.mlp_in(x)))
        return self.mlp_norm(x + self.dropout(self.mlp_out(hidden)))


class ParameterTransformer(base.Encoder):
    """Neuron tokens + summary token -> transformer encoder -> summary output -> embedding."""

    def __init__(
        self,
        spec: lstm.LSTMSpec,
        *,
        embedding_size: int,
        normalize: bool,
        width: int,
        num_layers: int,
        num_heads: int,
        mlp_size: int,
        dropout: float,
        rngs: nnx.Rngs,
    ):
        super().__init__(spec, embedding_size=embedding_size, normalize=normalize)
        self.groups = token_groups(spec)
        shapes = spec.shapes()
        self.project = nnx.Dict(
            {weight: nnx.Linear(shapes[weight][1] + 1, width, rngs=rngs) for weight, _ in self.groups}
        )
        self.summary = nnx.Param(jnp.zeros((width,)))
        self.positions = nnx.Param(jax.random.normal(rngs.params(), (1 + num_tokens(spec), width)))
        self.layers = nnx.List(
            [EncoderLayer(width, num_heads, mlp_size, dropout, rngs=rngs) for _ in range(num_layers)]
        )
        self.output = nnx.Linear(width, embedding_size, rngs=rngs)

    def tokens(self, params: Params) -> jax.Array:
        """The projected token sequence with the summary token first: [batch, 1 + num_tokens, width]."""
        batch = params[self.groups[0][0]].shape[0]
        tokens = [jnp.broadcast_to(self.summary[...], (batch, 1, self.summary.shape[0]))]
        for weight, bias in self.groups:
            rows = jnp.concatenate([params[weight], params[bias][..., None]], axis=-1)
            tokens.append(self.project[weight](rows))
        return jnp.concatenate(tokens, axis=1) + self.positions[...]

    def encode(self, params: Params) -> jax.Array:
        x = self.tokens(params)
        for layer in self.layers[:-1]:
            x = layer(x)
        return self.output(self.layers[-1](x, num_outputs=1)[:, 0])
