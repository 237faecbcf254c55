"""DWSNet for LSTMs: hidden-neuron-permutation-equivariant layers over the weight space.

Deep Weight Space networks (Navon et al. 2023) adapted to recurrent layers,
as in the paper. The structure comes from `lstm.perm_spec` (data, not
hard-coded indices).

Features. Each tensor becomes a feature map [batch, *axes, channels]: a
`4H`-long axis (the gate blocks i, f, g, o, see `PermAxis.blocks`) is split
into 4 gate channels x H rows, so `weight_hh_l{k}` [4H, H] becomes
[H, H, 4] and `bias_ih_l{k}` [4H] becomes [H, 4]; the readout, which has no
gates, is repeated across the 4 channels. Every axis has a name: the hidden
permutation acting on it (`hidden_k`), or, for the axes no permutation acts
on, `input` (the columns of `weight_ih_l0`) and `output` (the rows of
`weight_out` and the entries of `bias_out`).

Equivariant layer. For each output tensor t with axes (p_1, ..., p_k), the
output feature map is the sum of
  * a pointwise channel mix of t's own features (2-D tensors only; for a
    1-D tensor the row term below already contains it);
  * a global term: a linear map of the means (over all axes) of every
    tensor's features, broadcast over all of t;
  * for each axis i of t, a row/column broadcast term: for every axis j of
    every tensor s whose name is p_i (e.g. for `hidden_0`: the rows of
    `weight_ih_l0`, rows and columns of `weight_hh_l0`, both layer-0 biases
    and the columns of `weight_ih_l1`), the mean of s's features over its
    other axes is a vector indexed by p_i; these vectors, concatenated over
    channels, go through a linear map and are broadcast along t's other axes.
Every term commutes with any permutation of any named axis, so the layer is
equivariant to all hidden permutations (it leaves out the extra maps that a
square matrix sharing one permutation on both axes would allow, such as its
diagonal, as does the paper's code). It would also be equivariant to
permutations of the `input` and `output` axes, which are not symmetries of
the LSTM; learned embeddings added on those axes at the start of every layer
break that. The terms' kernels are initialised with variance 1 / (total
fan-in of all terms) so that their sum has the scale of one linear layer.

Encoder. Layers of `channels` channels with ReLU between them, then the
mean of each tensor's features over all its axes (invariant pooling) ->
MLP -> embedding: exactly invariant to the hidden-neuron symmetry.
"""

import itertools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm, symmetry
from weightspace.encoders import base
from weightspace.types import Params

NAME = "dwsnet"
GROUP = "mechanistic"  # reads the weights themselves
# The LSTM's gate blocks become the input channels.
GATES = 4
INPUT = "input"
OUTPUT = "output"

# Per tensor, the feature map [batch, *axes, channels].
Features = dict[str, jax.Array]


def default_config() -> ml_collections.ConfigDict:
    """Paper setting: 4 equivariant layers of 48 channels, MLP 128."""
    return base.config_with(
        NAME,
        # Channels of every equivariant layer.
        channels=48,
        # Number of equivariant layers.
        num_layers=4,
        # Hidden widths of the MLP from the pooled features to the embedding.
        hidden_sizes=(128,),
    )


def axis_names(spec: lstm.LSTMSpec) -> dict[str, tuple[str, ...]]:
    """The name of every axis of every tensor's feature map (without the channel axis).

    A permuted axis is named after its permutation; an unpermuted column axis
    indexes the network's inputs, an unpermuted row axis its outputs.
    """
    names = {}
    for tensor, axes in lstm.perm_spec(spec).items():
        names[tensor] = tuple(
            axis.perm if axis is not None else (INPUT if i == 1 else OUTPUT) for i, axis in enumerate(axes)
        )
    return names


def feature_perm_spec(spec: lstm.LSTMSpec) -> symmetry.PermSpec:
    """How the hidden permutations act on the feature maps [batch, *axes, channels]."""
    hidden = {axis.perm for axes in lstm.perm_spec(spec).values() for axis in axes if axis is not None}
    return {
        tensor: (*(symmetry.PermAxis(name) if name in hidden else None for name in names), None)
        for tensor, names in axis_names(spec).items()
    }


def to_features(params: Params, spec: lstm.LSTMSpec) -> Features:
    """LSTM params [batch, ...] -> feature maps [batch, *axes, GATES] (gates as channels)."""
    features = {}
    for tensor, axes in lstm.perm_spec(spec).items():
        x = params[tensor]
        blocked = [i for i, axis in enumerate(axes) if axis is not None and axis.blocks > 1]
        if blocked:
            # +1: the batch axis comes first.
            axis = blocked[0] + 1
            x = jnp.moveaxis(x.reshape(*x.shape[:axis], GATES, -1, *x.shape[axis + 1 :]), axis, -1)
        else:
            x = jnp.broadcast_to(x[..., None], (*x.shape, GATES))
        features[tensor] = x
    return features


def _mean_except(x: jax.Array, keep: int | None) -> jax.Array:
    """Mean of a feature map [batch, *axes, channels] over its axes except axis `keep` (None: all)."""
    axes = [1 + i for i in range(x.ndim - 2) if i != keep]
    return x.mean(axis=axes)


def _channel_map(layer: nnx.Linear, x: jax.Array) -> jax.Array:
    """`layer` over the channel axis of a feature map or vector set [batch, *axes, in] -> [batch, *axes, out].

    Applied as one 2-D matmul: on the map itself, the kernel's gradient is a
    contraction over all the leading axes at once, which XLA:CPU ran 3x
    slower than the same contraction over one flattened axis (the paper-size
    DWSNet train step got 23% faster).
    """
    return layer(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], layer.out_features)


def _scaled_init(fan_in: int, total_fan_in: int) -> nnx.Initializer:
    """Kernel init with variance 1 / total_fan_in for a term of fan-in `fan_in` among several."""
    return nnx.initializers.variance_scaling(fan_in / total_fan_in, "fan_in", "normal")


class EquivariantLayer(nnx.Module):
    """One permutation-equivariant linear layer over the LSTM's feature maps (see the module docstring)."""

    def __init__(
        self,
        names: Mapping[str, tuple[str, ...]],
        sizes: Mapping[str, int],
        in_channels: int,
        out_channels: int,
        *,
        rngs: nnx.Rngs,
    ):
        """Builds the terms.

        Args:
          names: axis names of every tensor's feature map, as from `axis_names`.
          sizes: size of every axis name.
          in_channels: channels of the input feature maps.
          out_channels: channels of the output feature maps.
          rngs: for the initialisation.
        """
        self.names = tuple(names.items())
        # For each axis name, the (tensor, axis) pairs it indexes: their means
        # over the other axes are the vectors that name's broadcast terms read.
        self.sources = tuple(
            (name, tuple((t, i) for t, axes in names.items() for i, a in enumerate(axes) if a == name))
            for name in sorted({a for axes in names.values() for a in axes})
        )
        num_sources = {name: len(pairs) for name, pairs in self.sources}
        num_global = len(names) * in_channels

        def linear(fan_in: int, total: int, use_bias: bool = False) -> nnx.Linear:
            return nnx.Linear(
                fan_in, out_channels, use_bias=use_bias, kernel_init=_scaled_init(fan_in, total), rngs=rngs
            )

        pointwise_terms, global_terms, broadcast_terms, embeddings = {}, {}, {}, {}
        for tensor, axes in names.items():
            pointwise = in_channels if len(axes) > 1 else 0
            total = pointwise + num_global + sum(num_sources[a] * in_channels for a in axes)
            if pointwise:
                pointwise_terms[tensor] = linear(in_channels, total)
            # The only bias of this output: the other terms' biases would be redundant.
            global_terms[tensor] = linear(num_global, total, use_bias=True)
            for i, a in enumerate(axes):
                broadcast_terms[f"{tensor}_axis{i}"] = linear(num_sources[a] * in_channels, total)
                if a in (INPUT, OUTPUT):
                    embeddings[f"{tensor}_axis{i}"] = nnx.Param(
                        jax.random.normal(rngs.params(), (sizes[a], in_channels))
                    )
        self.pointwise = nnx.Dict(pointwise_terms)
        self.global_term = nnx.Dict(global_terms)
        self.broadcast = nnx.Dict(broadcast_terms)
        self.embeddings = nnx.Dict(embeddings)

    def __call__(self, features: Features) -> Features:
        """Feature maps [batch, *axes, in_channels] -> [batch, *axes, out_channels]."""
        features = dict(features)
        for tensor, axes in self.names:
            for i in range(len(axes)):
                key = f"{tensor}_axis{i}"
                if key in self.embeddings:
                    shape = [1] * len(axes) + [-1]
                    shape[i] = self.embeddings[key].shape[0]
                    features[tensor] = features[tensor] + self.embeddings[key][...].reshape(shape)
        global_means = jnp.concatenate([_mean_except(features[t], None) for t, _ in self.names], axis=-1)
        vectors = {
            name: jnp.concatenate([_mean_except(features[t], i) for t, i in pairs], axis=-1)
            for name, pairs in self.sources
        }
        out = {}
        for tensor, axes in self.names:
            y = jnp.expand_dims(self.global_term[tensor](global_means), tuple(range(1, 1 + len(axes))))
            if tensor in self.pointwise:
                y = y + _channel_map(self.pointwise[tensor], features[tensor])
            for i, name in enumerate(axes):
                term = _channel_map(self.broadcast[f"{tensor}_axis{i}"], vectors[name])  # [batch, size, out_channels]
                y = y + jnp.expand_dims(term, [1 + j for j in range(len(axes)) if j != i])
            out[tensor] = y
        return out


class DWSNet(base.Encoder):
    """Equivariant layers -> per-tensor mean pooling -> MLP -> embedding."""

    def __init__(
        self,
        spec: lstm.LSTMSpec,
        *,
        embedding_size: int,
        normalize: bool,
        channels: int,
        num_layers: int,
        hidden_sizes: Sequence[int],
        rngs: nnx.Rngs,
    ):
        super().__init__(spec, embedding_size=embedding_size, normalize=normalize)
        names = axis_names(spec)
        sizes = {INPUT: spec.input_size, OUTPUT: spec.output_size}
        sizes.update({f"hidden_{k}": spec.hidden_size for k in range(spec.num_layers)})
        widths = [GATES] + [channels] * num_layers
        self.layers = nnx.List([EquivariantLayer(names, sizes, a, b, rngs=rngs) for a, b in itertools.pairwise(widths)])
        self.head = base.MLP([len(names) * channels, *hidden_sizes, embedding_size], rngs=rngs)

    def encode(self, params: Params) -> jax.Array:
        features = to_features(params, self.spec)
        for i, layer in enumerate(self.layers):
            features = layer({t: nnx.relu(x) for t, x in features.items()} if i else features)
        pooled = jnp.concatenate([_mean_except(x, None) for x in features.values()], axis=-1)
        return self.head(pooled)
