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

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm
from weightspace.encoders import base
from weightspace.types import Params

NAME = "parameter_transformer"
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


class EncoderLayer(nnx.Module):
    """A post-norm transformer encoder layer (`nn.TransformerEncoderLayer` semantics)."""

    def __init__(self, width: int, num_heads: int, mlp_size: int, dropout: float, *, rngs: nnx.Rngs):
        self.attention = nnx.MultiHeadAttention(
            num_heads, width, dropout_rate=dropout, deterministic=False, decode=False, rngs=rngs
        )
        self.attention_norm = nnx.LayerNorm(width, epsilon=_LAYER_NORM_EPSILON, rngs=rngs)
        self.mlp_in = nnx.Linear(width, mlp_size, rngs=rngs)
        self.mlp_out = nnx.Linear(mlp_size, width, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(width, epsilon=_LAYER_NORM_EPSILON, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """[batch, tokens, width] -> [batch, tokens, width]."""
        x = self.attention_norm(x + self.dropout(self.attention(x)))
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
        for layer in self.layers:
            x = layer(x)
        return self.output(x[:, 0])
