"""The emulator: an LSTM that, conditioned on an embedding E(θ), imitates the zoo LSTM θ.

Architecture (design §4): the input and the embedding are each projected
linearly to the hidden width; the projected embedding is added to the
projected input at the first time step (or, optionally, at every step); a
stacked LSTM follows, then a linear readout to the output size. The LSTM
layers use PyTorch's `nn.LSTM` layout and init, and run through
`weightspace.lstm.recurrence`, so the emulator shares the zoo LSTM's fast
hand-written backward pass.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm

CONDITIONS = ("first", "every")


def default_config() -> ml_collections.ConfigDict:
    """The paper's emulator settings, for embedding in experiment configs."""
    config = ml_collections.ConfigDict()
    # Width of the input and embedding projections and of every LSTM layer.
    config.hidden_size = 256
    # Number of stacked LSTM layers.
    config.num_layers = 2
    # Where the projected embedding is added to the projected input: "first"
    # (the paper: only at the first step; the LSTM state carries it on) or
    # "every" step.
    config.condition = "first"
    return config


def _uniform(bound: float) -> nnx.Initializer:
    """PyTorch's default init for `nn.LSTM` and `nn.Linear`: uniform in ±bound."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _torch_linear(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
    """An `nnx.Linear` initialised like `torch.nn.Linear` (kernel and bias ±1/sqrt(fan_in))."""
    init = _uniform(1.0 / math.sqrt(in_features))
    return nnx.Linear(in_features, out_features, kernel_init=init, bias_init=init, rngs=rngs)


class LSTMLayer(nnx.Module):
    """One `nn.LSTM` layer (gate order i, f, g, o), started from a zero state.

    Attributes:
      weight_ih: [4H, in].
      weight_hh: [4H, H].
      bias_ih, bias_hh: [4H].
    """

    def __init__(self, input_size: int, hidden_size: int, *, rngs: nnx.Rngs):
        init = _uniform(1.0 / math.sqrt(hidden_size))
        self.hidden_size = hidden_size
        self.weight_ih = nnx.Param(init(rngs.params(), (4 * hidden_size, input_size)))
        self.weight_hh = nnx.Param(init(rngs.params(), (4 * hidden_size, hidden_size)))
        self.bias_ih = nnx.Param(init(rngs.params(), (4 * hidden_size,)))
        self.bias_hh = nnx.Param(init(rngs.params(), (4 * hidden_size,)))

    def __call__(self, xs: jax.Array) -> jax.Array:
        """Runs the layer over time-major inputs `xs` [time, ..., in] -> hidden states [time, ..., H]."""
        # All steps' input projections at once: one large matmul outside the recurrence.
        return self.recur(xs @ self.weight_ih[...].T + self.bias)

    @property
    def bias(self) -> jax.Array:
        """Both biases summed, [4H] (they only ever appear together)."""
        return self.bias_ih[...] + self.bias_hh[...]

    def recur(self, pre: jax.Array) -> jax.Array:
        """The recurrence from precomputed input projections plus biases `pre` [time, ..., 4H] -> [time, ..., H]."""
        zeros = jnp.zeros((*pre.shape[1:-1], self.hidden_size), pre.dtype)
        hs, _ = lstm.recurrence(self.weight_hh[...], pre, zeros, zeros)
        return hs


class Emulator(nnx.Module):
    """Maps (embedding, input sequence) to the emulated LSTM's output logits at every step.

    Attributes:
      input_projection: `nnx.Linear` input_size -> hidden_size.
      embedding_projection: `nnx.Linear` embedding_size -> hidden_size.
      layers: `nnx.List` of `LSTMLayer`s, hidden_size wide.
      output_projection: `nnx.Linear` hidden_size -> output_size.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        embedding_size: int = 16,
        hidden_size: int = 256,
        num_layers: int = 2,
        condition: str = "first",
        rngs: nnx.Rngs,
    ):
        if condition not in CONDITIONS:
            raise ValueError(f"Emulator condition must be one of {CONDITIONS}, got {condition!r}.")
        if num_layers < 1:
            raise ValueError(f"Emulator needs at least one LSTM layer, got num_layers={num_layers}.")
        self.condition = condition
        self.input_projection = _torch_linear(input_size, hidden_size, rngs)
        self.embedding_projection = _torch_linear(embedding_size, hidden_size, rngs)
        self.layers = nnx.List([LSTMLayer(hidden_size, hidden_size, rngs=rngs) for _ in range(num_layers)])
        self.output_projection = _torch_linear(hidden_size, output_size, rngs)

    def __call__(self, embedding: jax.Array, inputs: jax.Array) -> jax.Array:
        """Emulates the LSTM whose embedding is `embedding` on `inputs`.

        Args:
          embedding: [batch, embedding_size].
          inputs: [batch, time, input_size].

        Returns:
          Logits [batch, time, output_size].
        """
        if embedding.shape[:-1] != inputs.shape[:-2]:
            raise ValueError(
                f"Emulator got embeddings of shape {embedding.shape} for inputs of shape {inputs.shape}: "
                "their batch axes must agree."
            )
        first = self.layers[0]
        w_ih = first.weight_ih[...]
        # Nothing nonlinear sits between the two projections and the first
        # layer's `W_ih`, so they are composed into one [input_size, 4H] map
        # first: this skips the [time * batch, H] x [H, 4H] matmul, a quarter
        # of the emulator's matmul FLOPs, forward and backward.
        w_in = self.input_projection.kernel[...] @ w_ih.T
        b_in = self.input_projection.bias[...] @ w_ih.T + first.bias
        pre = jnp.moveaxis(inputs, -2, 0) @ w_in + b_in  # [time, batch, 4H]
        conditioning = self.embedding_projection(embedding) @ w_ih.T  # [batch, 4H]
        pre = pre.at[0].add(conditioning) if self.condition == "first" else pre + conditioning
        hs = first.recur(pre)
        for layer in self.layers[1:]:
            hs = layer(hs)
        return jnp.moveaxis(self.output_projection(hs), 0, -2)
