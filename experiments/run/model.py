"""The composite models a run trains, and their parts built from the run's config: an encoder with the
emulator (emulation runs; oracle runs with `TargetOracle` as the encoder), or with a prediction head
(supervised runs). Each objective (`experiments.run.objectives`) assembles its own.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from weightspace import emulator, encoders, lstm, targets, tasks
from weightspace.encoders import base
from weightspace.types import PyTree


class Model(nnx.Module):
    """An encoder and the emulator conditioned on its embedding."""

    def __init__(self, encoder: encoders.Encoder, emulator_module: emulator.Emulator):
        self.encoder = encoder
        self.emulator = emulator_module

    def __call__(self, params: PyTree, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(emulator logits [B, T, out], embeddings [B, E]) for zoo params [B, ...] and inputs [B, T, in]."""
        embedding = self.encoder(params)
        return self.emulator(embedding, inputs), embedding


class TargetOracle(nnx.Module):
    """The oracle baseline's encoder: a learned linear map of a downstream target's true value, unit-normalised.

    It stands where a weight encoder would, and bounds what emulation can
    reach with an embedding that knows the target. Its input is
    {"oracle": the target's features [B, F]} (`targets.*.features`) in place of zoo params.
    """

    def __init__(self, target_name: str, num_features: int, embedding_size: int, *, rngs: nnx.Rngs):
        self.target_name = target_name
        self.linear = nnx.Linear(num_features, embedding_size, rngs=rngs)

    def __call__(self, inputs: dict[str, jax.Array]) -> jax.Array:
        return base.unit_normalize(self.linear(inputs["oracle"]))


class SupervisedModel(nnx.Module):
    """The supervised baseline: an encoder and an MLP head predicting one downstream target from its embedding."""

    def __init__(self, encoder: encoders.Encoder, head: base.MLP):
        self.encoder = encoder
        self.head = head

    def __call__(self, params: PyTree) -> jax.Array:
        """The head's raw outputs [B, target.output_size] for zoo params [B, ...]."""
        return self.head(self.encoder(params))


def resolve_encoder_config(config: ml_collections.ConfigDict, family: tasks.TaskFamily) -> ml_collections.ConfigDict:
    """The encoder config with the dataset's probing defaults filled in (probe_length 0, activation "auto")."""
    resolved = ml_collections.ConfigDict(config.to_dict())
    if resolved.get("probe_length") == 0:
        resolved.probe_length = family.probe_length
    if resolved.get("probe_activation") == "auto":
        resolved.probe_activation = family.probe_activation
    return resolved


def make_encoder(config: ml_collections.ConfigDict, family: tasks.TaskFamily, spec: lstm.LSTMSpec) -> encoders.Encoder:
    """The weight encoder of `config.encoder` for LSTMs of `spec`, with the family's probing defaults and prior."""
    resolved = resolve_encoder_config(config.encoder, family)
    data = {}
    if (resolved.get("prior_scale") and resolved.get("prior_policy")) or resolved.get("teacher_steps"):
        data["probe_policy"] = family.probe_policy()
    elif resolved.get("prior_scale"):
        data["probe_prior"] = family.probe_prior(resolved.probe_length, resolved.num_parallel)
    return encoders.build(resolved, spec, seed=config.seed, **data)


def make_emulator(config: ml_collections.ConfigDict, family: tasks.TaskFamily) -> emulator.Emulator:
    """The emulator of `config.emulator`, conditioned on embeddings of `config.encoder.embedding_size`."""
    return emulator.Emulator(
        family.input_size,
        family.output_size,
        embedding_size=config.encoder.embedding_size,
        **config.emulator.to_dict(),
        rngs=nnx.Rngs(config.seed + 1),
    )


def make_head(config: ml_collections.ConfigDict, target: targets.Target) -> base.MLP:
    """The supervised baseline's prediction head (`config.supervised.hidden_sizes`), from embedding to `target`."""
    sizes = (config.encoder.embedding_size, *config.supervised.hidden_sizes, target.output_size)
    return base.MLP(sizes, rngs=nnx.Rngs(config.seed + 1))


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW after clipping, at unit learning rate: a step applies `config.optim.lr` times its update, so the
    members of a sweep with other learning rates share one optimiser (the update is the same number as
    AdamW's at that rate: its last operation is the same product)."""
    return optax.chain(
        optax.clip_by_global_norm(config.optim.clip_norm),
        optax.adamw(1.0, weight_decay=config.optim.weight_decay),
    )


def initial_state(model: Model, optimizer: optax.GradientTransformation) -> PyTree:
    _, params, other = nnx.split(model, nnx.Param, ...)
    return {
        "params": params,
        "other": other,
        "opt_state": optimizer.init(params),
        "step": jnp.int32(0),
        "best_eval_loss": jnp.float32(jnp.inf),
    }
