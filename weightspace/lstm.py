"""The zoo LSTM: PyTorch `nn.LSTM` + `nn.Linear` as pure functions over a dict.

Parameters are a flat dict named after PyTorch's `named_parameters()`:
`weight_ih_l{k}` [4H, in], `weight_hh_l{k}` [4H, H], `bias_ih_l{k}` [4H],
`bias_hh_l{k}` [4H] for each layer k, then the readout `weight_out` [out, H]
and `bias_out` [out]. Gates are stacked in PyTorch's order i, f, g, o. The
state is a pair `(h, c)`, each [num_layers, H]; it starts at zero.

Many models run at once with `jax.vmap` over a leading axis of the params.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from weightspace import symmetry
from weightspace.types import Params, PRNGKey

State = tuple[jax.Array, jax.Array]


@dataclasses.dataclass(frozen=True)
class LSTMSpec:
    """Sizes of a zoo LSTM (a stacked LSTM followed by a linear readout)."""

    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LSTMSpec.{field.name} must be a positive int, got {value!r}.")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor shapes in the reference (PyTorch `named_parameters`) order."""
        h = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            fan_in = self.input_size if layer == 0 else h
            shapes[f"weight_ih_l{layer}"] = (4 * h, fan_in)
            shapes[f"weight_hh_l{layer}"] = (4 * h, h)
            shapes[f"bias_ih_l{layer}"] = (4 * h,)
            shapes[f"bias_hh_l{layer}"] = (4 * h,)
        shapes["weight_out"] = (self.output_size, h)
        shapes["bias_out"] = (self.output_size,)
        return shapes

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes().values())

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def spec_of(params: Params) -> LSTMSpec:
    """Reads the spec off a params dict (with or without leading batch axes)."""
    num_layers = sum(1 for name in params if name.startswith("weight_hh_l"))
    spec = LSTMSpec(
        input_size=params["weight_ih_l0"].shape[-1],
        hidden_size=params["weight_hh_l0"].shape[-1],
        num_layers=num_layers,
        output_size=params["weight_out"].shape[-2],
    )
    check_params(params, spec)
    return spec


def check_params(params: Params, spec: LSTMSpec) -> tuple[int, ...]:
    """Checks names and shapes against `spec`; returns the common leading batch shape."""
    shapes = spec.shapes()
    if set(params) != set(shapes):
        raise ValueError(f"LSTM params have tensors {sorted(params)}, but {spec} needs {sorted(shapes)}.")
    batch_shapes = set()
    for name, shape in shapes.items():
        actual = tuple(params[name].shape)
        if actual[len(actual) - len(shape) :] != shape:
            raise ValueError(f"LSTM tensor {name!r} has shape {actual}, but {spec} needs [..., {shape}].")
        batch_shapes.add(actual[: len(actual) - len(shape)])
    if len(batch_shapes) != 1:
        raise ValueError(f"LSTM tensors disagree on their leading batch shape: {sorted(batch_shapes)}.")
    return batch_shapes.pop()


def init(key: PRNGKey, spec: LSTMSpec) -> Params:
    """PyTorch's default init: every tensor uniform in ±1/sqrt(hidden_size).

    (`nn.LSTM` uses ±1/sqrt(H) for all its tensors; `nn.Linear(H, out)` uses
    ±1/sqrt(fan_in) = ±1/sqrt(H) for weight and bias alike.)
    """
    bound = 1.0 / math.sqrt(spec.hidden_size)
    shapes = spec.shapes()
    keys = jax.random.split(key, len(shapes))
    return {
        name: jax.random.uniform(k, shape, jnp.float32, -bound, bound)
        for k, (name, shape) in zip(keys, shapes.items(), strict=True)
    }


def initial_state(spec: LSTMSpec) -> State:
    zeros = jnp.zeros((spec.num_layers, spec.hidden_size), jnp.float32)
    return zeros, zeros


def _gate_scales(hidden: int, dtype) -> jax.Array:
    """Per-gate scale s [4H]: 1/2 for the sigmoid gates i, f, o and 1 for the tanh gate g.

    sigmoid(x) = tanh(x / 2) / 2 + 1 / 2, so every gate is `tanh(s * z) * s + (1 - s)`:
    one tanh over all four gates instead of three sigmoids and a tanh, which
    XLA fuses into one kernel on CPUs (a 41-step 256-wide forward pass ran
    ~25% faster than with the sigmoids).
    """
    half = jnp.full((hidden,), 0.5, dtype)
    return jnp.concatenate([half, half, jnp.ones((hidden,), dtype), half])


def _cell(pre_t: jax.Array, h: jax.Array, c: jax.Array, w_hh: jax.Array) -> tuple[jax.Array, ...]:
    """One cell update from the input projection (plus biases) `pre_t` [..., 4H] and state `h`, `c` [..., H].

    Returns:
      (new h, new c, t = tanh(s * pre-activations) [..., 4H] (see `_gate_scales`), tanh of new c).
    """
    scales = _gate_scales(h.shape[-1], pre_t.dtype)
    t = jnp.tanh((pre_t + h @ w_hh.T) * scales)
    i, f, g, o = jnp.split(t * scales + (1 - scales), 4, axis=-1)
    c = f * c + i * g
    tanh_c = jnp.tanh(c)
    return o * tanh_c, c, t, tanh_c


# One layer's weights: (W_ih [4H, in], W_hh [4H, H], biases), the biases a tuple of [4H] vectors added
# to the input projection: PyTorch's (b_ih, b_hh), or a single one. Every LSTM stack in the codebase --
# the zoo LSTM, the emulator, the probing encoders' LSTM -- runs through `run_layers` / `step_layers`.
Layer = tuple[jax.Array, jax.Array, tuple[jax.Array, ...]]


def layers_of(params: Params) -> list[Layer]:
    """The zoo LSTM's layers, from its params dict."""
    num_layers = sum(1 for name in params if name.startswith("weight_hh_l"))
    return [
        (params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"], (params[f"bias_ih_l{k}"], params[f"bias_hh_l{k}"]))
        for k in range(num_layers)
    ]


def step_layers(
    layers: list[Layer], x: jax.Array, state: State, first_pre: jax.Array | None = None
) -> tuple[jax.Array, State]:
    """One time step of one sequence through stacked layers: input `x` [in] -> (last layer's h [H], new state).

    Vmap it for many sequences or models (as `step` is).

    Args:
      state: `(h, c)`, each [num_layers, H].
      first_pre: layer 0's input projection plus bias, [4H], when the caller computes it (then
        layer 0's W_ih is not used).
    """
    new_h, new_c = [], []
    for index, (w_ih, w_hh, biases) in enumerate(layers):
        if index == 0 and first_pre is not None:
            pre = first_pre
        else:
            pre = w_ih @ x
            for bias in biases:  # one at a time, as PyTorch's step adds them
                pre = pre + bias
        x, c, _, _ = _cell(pre, state[0][index], state[1][index], w_hh)
        new_h.append(x)
        new_c.append(c)
    return x, (jnp.stack(new_h), jnp.stack(new_c))


def run_layers(
    layers: list[Layer],
    xs: jax.Array | None,
    state: State,
    first_pre: jax.Array | None = None,
    residual: bool = False,
) -> tuple[jax.Array, State]:
    """Stacked layers over a sequence: time-major `xs` [time, ..., in] -> (last layer's h [time, ..., H], final state).

    Each layer's input projection (plus its biases, summed first) is one matmul over all time steps;
    only the recurrent matmul stays inside the scan (`recurrence`, with its fast backward pass).

    Args:
      state: initial `(h, c)`, each [num_layers, ..., H].
      first_pre: layer 0's input projection plus bias [time, ..., 4H], when the caller computes it
        (then `xs` is not read and may be None).
      residual: add each layer's input to its output (layers of equal width).
    """
    final_h, final_c = [], []
    for index, (w_ih, w_hh, biases) in enumerate(layers):
        pre = first_pre if index == 0 and first_pre is not None else xs @ w_ih.T + sum(biases[1:], biases[0])
        hs, (h, c) = recurrence(w_hh, pre, state[0][index], state[1][index])
        xs = hs + xs if residual else hs
        final_h.append(h)
        final_c.append(c)
    return xs, (jnp.stack(final_h), jnp.stack(final_c))


def step(params: Params, x: jax.Array, state: State) -> tuple[jax.Array, State]:
    """One time step: input `x` [in] -> (readout logits [out], new state)."""
    h, state = step_layers(layers_of(params), x, state)
    return params["weight_out"] @ h + params["bias_out"], state


@dataclasses.dataclass(frozen=True)
class Bound:
    """One zoo LSTM with its params fixed, as the sequence-model interface task families score.

    `weightspace.emulator.Conditioned` offers the same three methods, so an
    emulator imitating this LSTM is scored by exactly the same code.
    """

    params: Params

    def initial_state(self) -> State:
        """The zero state of one sequence, each [num_layers, H]."""
        return initial_state(spec_of(self.params))

    def step(self, x: jax.Array, state: State) -> tuple[jax.Array, State]:
        """One step of one sequence: `x` [in] -> (logits [out], new state)."""
        return step(self.params, x, state)

    def apply(self, inputs: jax.Array) -> jax.Array:
        """Logits [..., time, out] on `inputs` [..., time, in] from the zero state."""
        return apply(self.params, inputs)[0]


@jax.custom_vjp
def recurrence(w_hh: jax.Array, pre: jax.Array, h0: jax.Array, c0: jax.Array) -> tuple[jax.Array, State]:
    """One LSTM layer's recurrence over time, with a fast hand-written backward pass.

    Any LSTM in the codebase (the zoo LSTM, the emulator) runs its layers
    through this: hoist the input projection, then call `recurrence`.

    Args:
      w_hh: [4H, H].
      pre: the input projection plus biases at every step, [time, ..., 4H].
      h0, c0: initial state, [..., H].

    Returns:
      (h at every step [time, ..., H], (final h, final c)).
    """

    def body(carry, pre_t):
        h, c, _, _ = _cell(pre_t, *carry, w_hh)
        return (h, c), h

    final, hs = jax.lax.scan(body, (h0, c0), pre)
    return hs, final


def _recurrence_forward(w_hh, pre, h0, c0):
    def body(carry, pre_t):
        h, c, t, tanh_c = _cell(pre_t, *carry, w_hh)
        return (h, c), (h, c, t, tanh_c)

    final, (hs, cs, ts, tanh_cs) = jax.lax.scan(body, (h0, c0), pre)
    h_prev = jnp.concatenate([h0[None], hs[:-1]])
    c_prev = jnp.concatenate([c0[None], cs[:-1]])
    return (hs, final), (w_hh, h_prev, c_prev, ts, tanh_cs)


def _recurrence_backward(residuals, cotangents):
    """Backpropagation through time that keeps only `dh @ W_hh` inside the loop.

    Autodiff of the scan would also accumulate the `W_hh` gradient step by
    step; here the loop emits the gate gradients and `W_hh`'s gradient is one
    large matmul over all steps afterwards, which is what makes zoo training
    fast on CPUs.
    """
    w_hh, h_prev, c_prev, ts, tanh_cs = residuals
    d_hs, (d_h_final, d_c_final) = cotangents

    scales = _gate_scales(w_hh.shape[-1], w_hh.dtype)

    def body(carry, step):
        d_h, d_c = carry
        d_h_t, c_prev_t, t, tanh_c = step
        i, f, g, o = jnp.split(t * scales + (1 - scales), 4, axis=-1)
        d_h = d_h + d_h_t
        d_c = d_c + d_h * o * (1 - tanh_c**2)
        # Gate = tanh(s z) s + (1 - s), so d gate / d z = s^2 (1 - t^2).
        d_gates = jnp.concatenate([d_c * g, d_c * c_prev_t, d_c * i, d_h * tanh_c], axis=-1)
        d_pre_t = d_gates * scales**2 * (1 - t**2)
        return (d_pre_t @ w_hh, d_c * f), d_pre_t

    (d_h0, d_c0), d_pre = jax.lax.scan(body, (d_h_final, d_c_final), (d_hs, c_prev, ts, tanh_cs), reverse=True)
    d_w_hh = jnp.einsum("...g,...h->gh", d_pre, h_prev)
    return d_w_hh, d_pre, d_h0, d_c0


recurrence.defvjp(_recurrence_forward, _recurrence_backward)


def apply(params: Params, inputs: jax.Array, state: State | None = None) -> tuple[jax.Array, State]:
    """Runs the LSTM over a sequence (or a batch of sequences), layer by layer (`run_layers`).

    Args:
      params: one model's params (vmap for many models).
      inputs: [..., time, input_size].
      state: initial `(h, c)`, each [num_layers, ..., H]; zeros when None.

    Returns:
      (readout logits [..., time, output_size], final state).
    """
    layers = layers_of(params)
    if state is None:
        state = (jnp.zeros((len(layers), *inputs.shape[:-2], layers[0][1].shape[-1]), inputs.dtype),) * 2
    hs, final = run_layers(layers, jnp.moveaxis(inputs, -2, 0), state)
    outputs = hs @ params["weight_out"].T + params["bias_out"]
    return jnp.moveaxis(outputs, 0, -2), final


def to_flat(params: Params) -> jax.Array:
    """Concatenates the tensors row-major in reference order: [..., num_params]."""
    spec = spec_of(params)
    batch = check_params(params, spec)
    return jnp.concatenate([params[name].reshape(*batch, -1) for name in spec.shapes()], axis=-1)


def from_flat(vector: jax.Array, spec: LSTMSpec) -> Params:
    """Inverse of `to_flat`: [..., num_params] -> params with the same leading axes."""
    vector = jnp.asarray(vector)
    if vector.ndim == 0 or vector.shape[-1] != spec.num_params:
        raise ValueError(
            f"A flat vector of {spec} needs {spec.num_params} entries in its last axis, "
            f"got shape {tuple(vector.shape)}."
        )
    batch = vector.shape[:-1]
    params, offset = {}, 0
    for name, shape in spec.shapes().items():
        size = math.prod(shape)
        params[name] = vector[..., offset : offset + size].reshape(*batch, *shape)
        offset += size
    return params


def perm_spec(spec: LSTMSpec) -> symmetry.PermSpec:
    """The hidden-neuron permutation symmetry of the LSTM, as a perm spec.

    Permutation `hidden_k` acts on layer k's neurons: the rows of each of the
    four gate blocks of that layer's tensors, the columns of its `weight_hh`,
    and the columns of the next layer's `weight_ih` (or of the readout).
    """
    axes: symmetry.PermSpec = {}
    for layer in range(spec.num_layers):
        gates = symmetry.PermAxis(f"hidden_{layer}", blocks=4)
        own = symmetry.PermAxis(f"hidden_{layer}")
        below = symmetry.PermAxis(f"hidden_{layer - 1}") if layer > 0 else None
        axes[f"weight_ih_l{layer}"] = (gates, below)
        axes[f"weight_hh_l{layer}"] = (gates, own)
        axes[f"bias_ih_l{layer}"] = (gates,)
        axes[f"bias_hh_l{layer}"] = (gates,)
    axes["weight_out"] = (None, symmetry.PermAxis(f"hidden_{spec.num_layers - 1}"))
    axes["bias_out"] = (None,)
    return axes


def permute_hidden(params: Params, layer: int, perm: jax.Array) -> Params:
    """Permutes the hidden neurons of `layer` by `perm` [H]; the function is unchanged."""
    spec = spec_of(params)
    if not 0 <= layer < spec.num_layers:
        raise ValueError(f"Layer {layer} out of range for an LSTM with {spec.num_layers} layers.")
    return symmetry.permute(params, perm_spec(spec), {f"hidden_{layer}": perm})
