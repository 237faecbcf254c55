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


def _cell(gates: jax.Array, c: jax.Array) -> State:
    """LSTM cell update from pre-activations `gates` [..., 4H] and cell `c` [..., H]."""
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h, c


def step(params: Params, x: jax.Array, state: State) -> tuple[jax.Array, State]:
    """One time step: input `x` [in] -> (readout logits [out], new state)."""
    h_all, c_all = state
    new_h, new_c = [], []
    for layer in range(h_all.shape[0]):
        gates = (
            params[f"weight_ih_l{layer}"] @ x
            + params[f"bias_ih_l{layer}"]
            + params[f"weight_hh_l{layer}"] @ h_all[layer]
            + params[f"bias_hh_l{layer}"]
        )
        x, c = _cell(gates, c_all[layer])
        new_h.append(x)
        new_c.append(c)
    output = params["weight_out"] @ x + params["bias_out"]
    return output, (jnp.stack(new_h), jnp.stack(new_c))


def apply(params: Params, inputs: jax.Array, state: State | None = None) -> tuple[jax.Array, State]:
    """Runs the LSTM over a sequence.

    Layer by layer: each layer's input projection is one matmul over all time
    steps, and only the recurrent matmul stays inside the `lax.scan`.

    Args:
      params: one model's params (vmap for many models or sequences).
      inputs: [time, input_size].
      state: initial `(h, c)`, each [num_layers, H]; zeros when None.

    Returns:
      (readout logits [time, output_size], final state).
    """
    num_layers = sum(1 for name in params if name.startswith("weight_hh_l"))
    hidden = params["weight_hh_l0"].shape[-1]
    if state is None:
        state = (jnp.zeros((num_layers, hidden), inputs.dtype),) * 2
    xs = inputs
    final_h, final_c = [], []
    for layer in range(num_layers):
        w_hh = params[f"weight_hh_l{layer}"]
        pre = xs @ params[f"weight_ih_l{layer}"].T + (params[f"bias_ih_l{layer}"] + params[f"bias_hh_l{layer}"])

        def recur(carry, pre_t, w_hh=w_hh):
            h, c = _cell(pre_t + w_hh @ carry[0], carry[1])
            return (h, c), h

        (h, c), xs = jax.lax.scan(recur, (state[0][layer], state[1][layer]), pre)
        final_h.append(h)
        final_c.append(c)
    outputs = xs @ params["weight_out"].T + params["bias_out"]
    return outputs, (jnp.stack(final_h), jnp.stack(final_c))


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
