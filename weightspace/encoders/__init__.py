"""The six weight encoders, chosen by name.

    encoder = encoders.build("dwsnet", lstm.LSTMSpec(6, 32, 2, 6), seed=0)
    embeddings = encoder(params)  # params: every tensor [batch, ...] -> [batch, 16]

`default_config(name)` gives the paper's setting; change any field and pass
the config to `build` instead of the name. The modules start in training
mode (dropout on, for the parameter transformer); call `encoder.eval()` for
deterministic embeddings.

Functional pattern: `graphdef, weights, rest = nnx.split(encoder, nnx.Param, ...)`
once, then inside the pure jitted step
`nnx.merge(graphdef, weights, rest, copy=True)(params)`. Two things matter
for the parameter transformer's dropout: `copy=True` is needed when the
merge happens inside `jax.grad` (dropout advances the RNG counters in
`rest`, and NNX refuses to mutate a Variable created outside the grad trace,
flax issue #5050); and the step should return `nnx.state(model, nnx.RngState)`
(the advanced counters) so that the next step draws fresh dropout masks.
"""

from collections.abc import Callable

import ml_collections
from flax import nnx

from weightspace import lstm, schema
from weightspace.encoders import (
    dwsnet,
    flat,
    interactive,
    layerwise_statistics,
    noninteractive,
    parameter_transformer,
    probing,
)
from weightspace.encoders.base import Encoder

_ENCODERS: dict[str, tuple[type[Encoder], Callable[[], ml_collections.ConfigDict]]] = {
    layerwise_statistics.NAME: (layerwise_statistics.LayerwiseStatistics, layerwise_statistics.default_config),
    flat.NAME: (flat.Flat, flat.default_config),
    parameter_transformer.NAME: (parameter_transformer.ParameterTransformer, parameter_transformer.default_config),
    dwsnet.NAME: (dwsnet.DWSNet, dwsnet.default_config),
    noninteractive.NAME: (noninteractive.NonInteractive, noninteractive.default_config),
    interactive.NAME: (interactive.Interactive, interactive.default_config),
}
# Registry names, mechanistic encoders first.
NAMES = tuple(_ENCODERS)
# Each encoder's group: "mechanistic" (reads the weights) or "functionalist" (reads the LSTM's behaviour).
GROUPS = {
    module.NAME: module.GROUP
    for module in (layerwise_statistics, flat, parameter_transformer, dwsnet, noninteractive, interactive)
}
# The declared type and range of every encoder config field (`weightspace.schema`), across the six encoders.
FIELD_RULES: dict[str, schema.Rule] = {
    "name": schema.Choice(*NAMES),
    "embedding_size": schema.Int(1),
    "normalize": schema.Bool(),
    "augment": schema.Bool(),
    "hidden_sizes": schema.Tuple(schema.Int(1), nonempty=False),
    "quantiles": schema.Tuple(schema.Fraction(), increasing=True),
    "width": schema.Int(1),
    "num_layers": schema.Int(1),
    "num_heads": schema.Int(1),
    "mlp_size": schema.Int(1),
    "dropout": schema.Fraction(open_high=True),
    "channels": schema.Int(1),
    "lstm_size": schema.Int(1),
    "lstm_layers": schema.Int(1),
    "residual": schema.Bool(),
    "code_size": schema.Int(1),
    "num_parallel": schema.Int(1),
    # 0 and "auto": the dataset's defaults (experiments/configs/common.py).
    "probe_length": schema.Int(0),
    "probe_activation": schema.Choice("auto", *probing.PROBE_ACTIVATIONS),
    "probe_range": schema.Tuple(schema.Float(), increasing=True, length=2),
    "probe_hidden_sizes": schema.Tuple(schema.Int(1), nonempty=False),
    "answers": schema.Choice(*probing.ANSWERS),
    "answer_temperature": schema.Float(0.0, open_low=True),
    "pool_answers": schema.Bool(),
    "prior_scale": schema.Float(0.0),
    "prior_policy": schema.Bool(),
    "probe_learning": schema.Choice(*probing.PROBE_LEARNING),
    "reinforce_weight": schema.Float(0.0),
    "entropy_weight": schema.Float(0.0),
    "teacher_steps": schema.Int(0),
    "teacher_entry_steps": schema.Int(0),
    "reader_trains_lstm": schema.Bool(),
    "answer_recall_weight": schema.Float(0.0),
}
# Config fields that are not constructor arguments.
_NOT_MODULE_FIELDS = ("name", "augment")


def _lookup(name: str) -> tuple[type[Encoder], Callable[[], ml_collections.ConfigDict]]:
    if name not in _ENCODERS:
        raise KeyError(f"Unknown encoder {name!r}; choose one of {list(NAMES)}.")
    return _ENCODERS[name]


def default_config(name: str) -> ml_collections.ConfigDict:
    """The paper's setting of encoder `name` (fields documented in its module)."""
    return _lookup(name)[1]()


def probes(name: str) -> bool:
    """Whether encoder `name` reads an LSTM by probing it (its config has the probe fields: length, activation,
    prior)."""
    return issubclass(_lookup(name)[0], probing.ProbingEncoder)


def chooses_probes(name: str) -> bool:
    """Whether encoder `name` chooses each probe from the answers so far (and so can follow a probing policy)."""
    return issubclass(_lookup(name)[0], interactive.Interactive)


def build(name_or_config: str | ml_collections.ConfigDict, spec: lstm.LSTMSpec, *, seed: int = 0, **data) -> Encoder:
    """An initialised encoder for zoo LSTMs of `spec`.

    Args:
      name_or_config: a registry name (paper setting) or a config from `default_config`.
      spec: sizes of the LSTMs to encode.
      seed: initialisation (and dropout) seed.
      **data: arrays an encoder's config asks for, not settings (the probing encoders' `probe_prior`).

    Returns:
      A module mapping params (every tensor [batch, ...]) to [batch, embedding_size].
    """
    config = default_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    cls, defaults = _lookup(config.name)
    fields = config.to_dict()
    expected = set(defaults())
    if set(fields) != expected:
        raise ValueError(f"Config of encoder {config.name!r} has fields {sorted(fields)}, expected {sorted(expected)}.")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if k not in _NOT_MODULE_FIELDS}
    return cls(spec, **kwargs, **data, rngs=nnx.Rngs(seed))


__all__ = ["FIELD_RULES", "GROUPS", "NAMES", "Encoder", "build", "chooses_probes", "default_config", "probes"]
