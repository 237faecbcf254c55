"""The emulator: an LSTM that, conditioned on an embedding E(θ), imitates the zoo LSTM θ.

Architecture (design §4): the input and the embedding are each projected
linearly to the hidden width; the projected embedding is added to the
projected input at the first time step (or, optionally, at every step); a
stacked LSTM follows, then a linear readout to the output size. The LSTM
layers use PyTorch's `nn.LSTM` layout and init, and run through
`weightspace.lstm.run_layers` / `step_layers`, the zoo LSTM's own code (with
its fast hand-written backward pass).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm, schema

CONDITIONS = ("first", "every")


# The declared type and range of every emulator config field (`weightspace.schema`).
FIELD_RULES = {"hidden_size": schema.Int(1), "num_layers": schema.Int(1), "condition": schema.Choice(*CONDITIONS)}


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

    @property
    def bias(self) -> jax.Array:
        """Both biases summed, [4H] (they only ever appear together)."""
        return self.bias_ih[...] + self.bias_hh[...]

    def weights(self) -> lstm.Layer:
        """The layer in `weightspace.lstm`'s form: (W_ih, W_hh, (summed bias,))."""
        return self.weight_ih[...], self.weight_hh[...], (self.bias,)


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
        w_in, b_in = self._input_map()
        pre = jnp.moveaxis(inputs, -2, 0) @ w_in + b_in  # [time, batch, 4H]
        conditioning = self._conditioning(embedding)  # [batch, 4H]
        pre = pre.at[0].add(conditioning) if self.condition == "first" else pre + conditioning
        zeros = jnp.zeros((len(self.layers), *pre.shape[1:-1], self.layers[0].hidden_size), pre.dtype)
        hs, _ = lstm.run_layers(self.weights(), None, (zeros, zeros), first_pre=pre)
        return jnp.moveaxis(self.output_projection(hs), 0, -2)

    def weights(self) -> list[lstm.Layer]:
        """The LSTM layers in `weightspace.lstm`'s form."""
        return [layer.weights() for layer in self.layers]

    def _input_map(self) -> tuple[jax.Array, jax.Array]:
        """The input projection composed with layer 0's `W_ih` and biases: ([input_size, 4H], [4H]).

        Nothing nonlinear sits between them, so composing them first skips the
        [time * batch, H] x [H, 4H] matmul, a quarter of the emulator's matmul
        FLOPs, forward and backward.
        """
        first = self.layers[0]
        w_ih = first.weight_ih[...]
        w_in = self.input_projection.kernel[...] @ w_ih.T
        return w_in, self.input_projection.bias[...] @ w_ih.T + first.bias

    def _conditioning(self, embedding: jax.Array) -> jax.Array:
        """The projected embedding as it enters layer 0's gates: [..., embedding_size] -> [..., 4H]."""
        return self.embedding_projection(embedding) @ self.layers[0].weight_ih[...].T

    def conditioned(self, embedding: jax.Array) -> "Conditioned":
        """The emulator with one embedding [embedding_size] fixed: a sequence model like `lstm.Bound`."""
        return Conditioned(self, embedding)


@dataclasses.dataclass(frozen=True)
class Conditioned:
    """The emulator conditioned on one embedding, with the zoo LSTM's sequence-model interface.

    Task families score it exactly as they score the zoo LSTM (`lstm.Bound`),
    which is how cloning is measured. Its state is `(h, c, started)`: h and c
    [num_layers, H], and whether the first step (which gets the embedding) is done.
    """

    emulator: Emulator
    embedding: jax.Array

    def initial_state(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        layers = self.emulator.layers
        zeros = jnp.zeros((len(layers), layers[0].hidden_size), jnp.float32)
        return zeros, zeros, jnp.array(False)

    def step(self, x: jax.Array, state: tuple) -> tuple[jax.Array, tuple]:
        """One step of one sequence: `x` [input_size] -> (logits [output_size], new state)."""
        h, c, started = state
        w_in, b_in = self.emulator._input_map()
        conditioning = self.emulator._conditioning(self.embedding)
        if self.emulator.condition == "first":
            conditioning = jnp.where(started, 0.0, conditioning)
        first_pre = x @ w_in + b_in + conditioning  # [4H]
        x, (h, c) = lstm.step_layers(self.emulator.weights(), x, (h, c), first_pre=first_pre)
        return self.emulator.output_projection(x), (h, c, jnp.array(True))

    def apply(self, inputs: jax.Array) -> jax.Array:
        """Logits [..., time, output_size] on `inputs` [..., time, input_size]."""
        embedding = jnp.broadcast_to(self.embedding, (*inputs.shape[:-2], self.embedding.shape[-1]))
        return self.emulator(embedding, inputs)
