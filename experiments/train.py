"""Trains an encoder and an emulator jointly by emulation, with evaluation and resumable checkpoints.

    train_and_evaluate(config, workdir)

Workdir layout:
  config.json              the run's config
  zoo.json                 the zoo it trains on: path, family, spec, snapshots, metadata checksum
  split.json               the task split (tasks and sizes of train / eval / OOD)
  metrics.jsonl            one JSON object per log or eval step (a resume drops the rows it replays)
  .lock                    held by the process training in the workdir (`files.workdir_lock`)
  checkpoints/latest/      the latest training state (Orbax), for resuming
  checkpoints/best/        the state with the lowest eval loss so far

For notebooks: `load_model(workdir)` rebuilds the trained encoder and
emulator, and `embed(workdir_or_model, zoo)` embeds every snapshot of a zoo.

`config.oracle.target` (a downstream target's name) swaps the weight encoder
for `TargetOracle`, an embedding of that target's true value: the same
emulation training then shows what the emulator reaches when the embedding
knows, say, the exact task.
"""

import hashlib
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from weightspace import checkpointing, dataset, emulator, encoders, files, losses, lstm, targets, tasks, zoo
from weightspace.encoders import augment, base
from weightspace.types import PyTree

# The file in a workdir that records the zoo's identity (`zoo_identity`) at the run's first start.
RUN_ZOO = "zoo.json"
METRICS = "metrics.jsonl"
DEFAULT_ZOO_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "weightspace", "zoos")
# The oracle target that embeds nothing about the LSTM (see `_oracle_choices`).
CONSTANT_ORACLE = "constant"


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss or gradients, mismatched workdir)."""


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


def zoo_family(the_zoo: zoo.Zoo) -> tasks.TaskFamily:
    """The task family a zoo was built with, its settings included."""
    return tasks.make(the_zoo.family, the_zoo.info.get("family_settings"))


def task_split(config: ml_collections.ConfigDict, the_zoo: zoo.Zoo, family: tasks.TaskFamily) -> dict[str, np.ndarray]:
    """The run's train / eval / OOD snapshot indices (whole tasks, `config.split`)."""
    return dataset.task_split(the_zoo, family, config.split.seed, config.split.ood_fraction, config.split.eval_fraction)


def downstream_targets(metadata: dict[str, np.ndarray], family: tasks.TaskFamily) -> list[targets.Target]:
    """Every downstream target of a zoo (from its metadata columns): its family's, then the training step."""
    return [*family.downstream_targets(metadata), *targets.step_targets(metadata["step"])]


def _named_target(field: str, name: str, all_targets: list[targets.Target]) -> targets.Target | None:
    """The target called `name` (None for ""), or a clear error naming the config `field`."""
    if not name:
        return None
    by_name = {t.name: t for t in all_targets}
    if name not in by_name:
        raise ValueError(f"Unknown {field} {name!r}; this zoo's targets are {sorted(by_name)}.")
    return by_name[name]


def supervised_target(config: ml_collections.ConfigDict, all_targets: list[targets.Target]) -> targets.Target | None:
    """The target of a supervised run (None when the run trains by emulation)."""
    return _named_target("supervised.target", config.supervised.target, all_targets)


def oracle_target(config: ml_collections.ConfigDict, all_targets: list[targets.Target]) -> targets.Target | None:
    """The target an oracle run embeds in place of encoding weights (None for a weight encoder)."""
    name = config.oracle.target
    if name and config.supervised.target:
        raise ValueError("oracle.target and supervised.target exclude each other: an oracle run trains by emulation.")
    return _named_target("oracle.target", name, _oracle_choices(all_targets))


def _oracle_choices(all_targets: list[targets.Target]) -> list[targets.Target]:
    """What an oracle may embed: any downstream target, or `CONSTANT_ORACLE` (one class for every snapshot).

    The constant oracle's embedding is a learned constant: the emulator knows nothing of the LSTM it
    emulates, which is the level an embedding must beat to matter at all.
    """
    constant = targets.Classes.of(CONSTANT_ORACLE, np.zeros(len(all_targets[0].values)), (0,))
    return [*all_targets, constant]


def encoder_inputs(model: "Model | SupervisedModel", the_zoo: zoo.Zoo) -> PyTree:
    """What the model's encoder reads for every snapshot: the zoo params, or an oracle's target features [N, F]."""
    if not isinstance(model.encoder, TargetOracle):
        return the_zoo.params
    family = zoo_family(the_zoo)
    choices = _oracle_choices(downstream_targets(the_zoo.metadata, family))
    target = _named_target("oracle.target", model.encoder.target_name, choices)
    features = target.features()
    if features.shape[1] != model.encoder.linear.in_features:
        raise ValueError(
            f"The oracle reads {model.encoder.linear.in_features} features of {target.name!r}; "
            f"this zoo gives {features.shape[1]} (another zoo's classes?)."
        )
    return {"oracle": features}


def zoo_path(config: ml_collections.ConfigDict) -> str:
    """The configured zoo path, or its default location in the zoo cache."""
    if config.zoo.path:
        return config.zoo.path
    cache = os.environ.get("WEIGHTSPACE_ZOOS", DEFAULT_ZOO_CACHE)
    return os.path.join(cache, f"{config.zoo.dataset}_{config.zoo.preset}", "zoo")


def run_zoo_path(workdir: str) -> str:
    """The zoo a run was trained on (recorded at its start, so a later WEIGHTSPACE_ZOOS does not matter).

    Raises:
      TrainingError: when the zoo at the recorded path is no longer the one the run was trained on.
    """
    path = os.path.join(workdir, RUN_ZOO)
    if not os.path.exists(path):
        return zoo_path(read_config(workdir))
    recorded = files.read_json(path)
    if len(recorded) > 1:  # runs from before identities were recorded only have the path
        current = zoo_identity(recorded["path"]) if zoo.is_complete(recorded["path"]) else {"path": recorded["path"]}
        if current != recorded:
            raise _zoo_mismatch(workdir, recorded, current)
    return recorded["path"]


def zoo_identity(path: str) -> dict[str, Any]:
    """What a run records of its zoo: absolute path, family, LSTM spec, snapshot count, metadata checksum.

    The checksum is the SHA-256 of the zoo's metadata document (`zoo.read_metadata`, keys sorted): it
    covers the build config and every snapshot's run, step, task and metrics, so a zoo rebuilt
    differently at the same path is told apart without reading its arrays.
    """
    document = zoo.read_metadata(path)
    return {
        "path": os.path.abspath(path),
        "family": document.get("family"),
        "spec": document.get("spec"),
        "num_snapshots": document.get("num_snapshots"),
        "metadata_sha256": hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest(),
    }


def _check_zoo(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """The identity of the run's zoo (built first if missing); a resumed run must have the recorded zoo.

    Runs recorded before identities were (zoo.json with only a path) are checked on the path alone.
    """
    record = os.path.join(workdir, RUN_ZOO)
    recorded = files.read_json(record) if os.path.exists(record) else None
    path = os.path.abspath(zoo_path(config))
    if recorded is not None and os.path.abspath(recorded["path"]) != path:
        # Refused before the other zoo is built: it may not exist yet.
        current = zoo_identity(path) if zoo.is_complete(path) else {"path": path}
        raise _zoo_mismatch(workdir, recorded, current)
    identity = zoo_identity(ensure_zoo(config))
    if identity["family"] != config.zoo.dataset:
        raise TrainingError(
            f"The zoo at {identity['path']} is a {identity['family']} zoo, but the config trains on "
            f"zoo.dataset={config.zoo.dataset!r}; give a {config.zoo.dataset} zoo or the matching config."
        )
    if recorded is not None and any(recorded[key] != identity.get(key) for key in recorded if key != "path"):
        raise _zoo_mismatch(workdir, recorded, identity)
    return identity


def _zoo_mismatch(workdir: str, recorded: dict[str, Any], current: dict[str, Any]) -> "TrainingError":
    """The error for a resume on another zoo than the recorded one (`current` is only {"path"} when no zoo is there)."""
    differences = [] if os.path.abspath(recorded["path"]) == current["path"] else ["path"]
    if len(current) == 1:
        differences.append("no complete zoo is there")
    else:
        differences += [
            f"{key} {recorded[key]!r} -> {current.get(key)!r}"
            for key in recorded
            if key != "path" and recorded[key] != current.get(key)
        ]
    return TrainingError(
        f"{workdir} was trained on the zoo at {recorded['path']} (recorded in {os.path.join(workdir, RUN_ZOO)}), "
        f"but this run would use the zoo at {current['path']}; they differ in: {'; '.join(differences)}. "
        "Resume with the recorded zoo (--config.zoo.path or WEIGHTSPACE_ZOOS), or use a new workdir."
    )


def ensure_zoo(config: ml_collections.ConfigDict) -> str:
    """Returns the zoo's path, building the zoo first (zoo builder, matching preset) if it is missing."""
    path = zoo_path(config)
    if zoo.is_complete(path):
        return path
    if config.zoo.path:
        raise FileNotFoundError(f"No complete zoo at zoo.path={path!r}.")
    import importlib

    from zoo_builder import build

    zoo_config = importlib.import_module(f"zoo_builder.configs.{config.zoo.dataset}").get_config(config.zoo.preset)
    logging.info(
        "No %s zoo at %s yet: building it with the zoo builder's %r preset.",
        config.zoo.dataset,
        path,
        config.zoo.preset,
    )
    return build.build(zoo_config, os.path.dirname(path))


def resolve_encoder_config(config: ml_collections.ConfigDict, family: tasks.TaskFamily) -> ml_collections.ConfigDict:
    """The encoder config with the dataset's probing defaults filled in (probe_length 0, activation "auto")."""
    resolved = ml_collections.ConfigDict(config.to_dict())
    if resolved.get("probe_length") == 0:
        resolved.probe_length = family.probe_length
    if resolved.get("probe_activation") == "auto":
        resolved.probe_activation = family.probe_activation
    return resolved


def make_model(
    config: ml_collections.ConfigDict,
    family: tasks.TaskFamily,
    spec: lstm.LSTMSpec,
    target: targets.Target | None = None,
    oracle: targets.Target | None = None,
) -> Model | SupervisedModel:
    """The encoder with the emulator, or (supervised runs, given their `target`) with a prediction head.

    An oracle run (given its `oracle` target) has a `TargetOracle` in place of the weight encoder.
    """
    if oracle is not None:
        features = oracle.features().shape[1]
        encoder = TargetOracle(oracle.name, features, config.encoder.embedding_size, rngs=nnx.Rngs(config.seed))
    else:
        resolved = resolve_encoder_config(config.encoder, family)
        data = {}
        if resolved.get("prior_scale"):
            data["probe_prior"] = family.probe_prior(resolved.probe_length, resolved.num_parallel)
        encoder = encoders.build(resolved, spec, seed=config.seed, **data)
    if target is not None:
        sizes = (config.encoder.embedding_size, *config.supervised.hidden_sizes, target.output_size)
        return SupervisedModel(encoder, base.MLP(sizes, rngs=nnx.Rngs(config.seed + 1)))
    emulator_module = emulator.Emulator(
        family.input_size,
        family.output_size,
        embedding_size=config.encoder.embedding_size,
        **config.emulator.to_dict(),
        rngs=nnx.Rngs(config.seed + 1),
    )
    return Model(encoder, emulator_module)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(config.optim.clip_norm),
        optax.adamw(config.optim.lr, weight_decay=config.optim.weight_decay),
    )


class Trainer:
    """The static parts of a run (model structure, data, loss) and its jitted steps."""

    def __init__(self, config: ml_collections.ConfigDict, the_zoo: zoo.Zoo):
        self.config = config
        self.family = zoo_family(the_zoo)
        self.spec = the_zoo.spec
        self.split = task_split(config, the_zoo, self.family)
        # The snapshots training draws from: the train split's, from step `train.min_step` on.
        train_steps = np.asarray(the_zoo.metadata["step"])[self.split["train"]]
        self.train_snapshots = self.split["train"][train_steps >= config.train.min_step]
        if not len(self.train_snapshots):
            raise ValueError(f"No training snapshot has a step >= train.min_step={config.train.min_step}.")
        self.targets = downstream_targets(the_zoo.metadata, self.family)
        # Supervised runs: the target, standardised on the train split.
        target = supervised_target(config, self.targets)
        self.target = None if target is None else target.fitted(self.split["train"])
        self.loss_fn = losses.get(config.loss)
        self.token_loss = config.loss in losses.TOKEN_LOSSES and self.target is None
        # Shapes only: does this family's emulation data have next-token targets?
        if self.token_loss and "tokens" not in jax.eval_shape(self.family.emulation_data, the_zoo.behaviour):
            raise ValueError(f"Loss {config.loss!r} needs next-token targets, which {the_zoo.family} zoos do not have.")
        self.oracle = oracle_target(config, self.targets)
        # Augmentation permutes weights, which an oracle does not read.
        self.augment = bool(config.encoder.augment) and self.oracle is None
        model = make_model(config, self.family, self.spec, self.target, self.oracle)
        self.graphdef = nnx.graphdef(model)
        self.optimizer = make_optimizer(config)
        self.initial_state = _initial_state(model, self.optimizer)
        self.key = jax.random.key(config.seed)
        devices = jax.devices() if config.train.data_parallel else jax.devices()[:1]
        self.mesh = jax.sharding.Mesh(np.array(devices), ("data",))
        self.train_step = jax.jit(self._train_step, donate_argnums=0)
        self.eval_step = jax.jit(self._eval_step)

    def _shard_batch(self, batch: PyTree) -> PyTree:
        sharding = jax.sharding.NamedSharding(self.mesh, jax.P("data"))
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)

    def replicate(self, tree: PyTree) -> PyTree:
        """`tree` placed on every device of the run's mesh (state and data that all steps read whole)."""
        return jax.device_put(tree, jax.sharding.NamedSharding(self.mesh, jax.P()))

    def device_arrays(self, the_zoo: zoo.Zoo) -> PyTree:
        """What the jitted steps read, placed once: the zoo (and a supervised run's encoded target [N, ...]).

        An oracle run's "params" are its target's features {"oracle": [N, F]}, which its encoder reads.
        """
        arrays = dataset.device_zoo(the_zoo)
        if self.oracle is not None:
            arrays["params"] = {"oracle": jnp.asarray(self.oracle.features())}
        if self.target is not None:
            arrays["target"] = jnp.asarray(self.target.encode())
        return self.replicate(arrays)

    def _loss(self, model: Model | SupervisedModel, batch: PyTree, mask: jax.Array | None = None) -> jax.Array:
        """The objective on a batch (mean over the snapshots where `mask` [B] is true): emulation or supervised."""
        if self.target is not None:
            per_snapshot = self.target.loss(model(batch["params"]), batch["target"])
            weights = jnp.ones_like(per_snapshot) if mask is None else mask.astype(per_snapshot.dtype)
            return jnp.sum(per_snapshot * weights) / jnp.sum(weights)
        logits, _ = model(batch["params"], batch["inputs"])
        time_mask = None if mask is None else jnp.broadcast_to(mask[:, None], logits.shape[:2])
        return self.loss_fn(logits, batch["tokens"] if self.token_loss else batch["targets"], time_mask)

    def _train_loss(self, params, other, batch) -> tuple[jax.Array, Any]:
        # copy=True: dropout's RNG counters are mutated inside jax.grad (flax issue #5050).
        model = nnx.merge(self.graphdef, params, other, copy=True)
        return self._loss(model, batch), nnx.state(model, nnx.Not(nnx.Param))

    def _train_step(self, state: PyTree, arrays: PyTree, indices: jax.Array) -> tuple[PyTree, dict]:
        """One optimisation step; its batch and augmentation come from `fold_in(key, step)`."""
        step_key = jax.random.fold_in(self.key, state["step"])
        batch_key, augment_key = jax.random.split(step_key)
        batch = dataset.sample_batch(batch_key, arrays, self.family, indices, self.config.train.batch_size)
        if self.augment:
            batch["params"] = augment.augment(augment_key, batch["params"], self.spec)
        batch = self._shard_batch(batch)
        (loss, other), grads = jax.value_and_grad(self._train_loss, has_aux=True)(
            state["params"], state["other"], batch
        )
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
        new_state = {
            **state,
            "params": optax.apply_updates(state["params"], updates),
            "other": other,
            "opt_state": opt_state,
            "step": state["step"] + 1,
        }
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    def _eval_step(self, state: PyTree, arrays: PyTree, snapshots, sequences, mask) -> dict[str, tuple]:
        """Sums of the loss over a fixed batch's valid entries (the model in eval mode: no dropout).

        Returns:
          {"loss": (sum over snapshots of their mean loss, snapshots)} and, for emulation runs,
          {"boundary_loss": (sum over task-dependent positions, those positions)}
          (`TaskFamily.task_positions`: where the emulated outputs depend on the task).
        """
        model = nnx.merge(self.graphdef, state["params"], state["other"])
        model.eval()
        batch = self._shard_batch(dataset.gather(arrays, self.family, snapshots, sequences))
        count = jnp.sum(mask)
        if self.target is not None:
            return {"loss": (self._loss(model, batch, mask) * count, count)}
        logits, _ = model(batch["params"], batch["inputs"])
        target = batch["tokens"] if self.token_loss else batch["targets"]
        time_mask = jnp.broadcast_to(mask[:, None], logits.shape[:2])
        boundary = time_mask & self.family.task_positions(batch)
        return {
            "loss": (self.loss_fn(logits, target, time_mask) * count, count),
            "boundary_loss": (self.loss_fn(logits, target, boundary) * jnp.sum(boundary), jnp.sum(boundary)),
        }

    def model(self, state: PyTree) -> Model | SupervisedModel:
        """The model of a training state, in eval mode."""
        model = nnx.merge(self.graphdef, state["params"], state["other"])
        model.eval()
        return model


def split_losses(trainer: Trainer, state, arrays, eval_batches: dict[str, list]) -> dict[str, float]:
    """The mean losses over each split's fixed batches: {"<split>_loss": float[, "<split>_boundary_loss": float]}."""
    means = {}
    for name, batches in eval_batches.items():
        sums = jax.device_get([trainer.eval_step(state, arrays, *map(jnp.asarray, b)) for b in batches])
        for kind in sums[0]:
            total, count = (sum(float(s[kind][i]) for s in sums) for i in (0, 1))
            means[f"{name}_{kind}"] = total / max(1.0, count)
    return means


def fixed_batches(trainer: Trainer, the_zoo: zoo.Zoo, names: tuple[str, ...]) -> dict[str, list]:
    """Deterministic evaluation batches covering every snapshot of the named splits once."""
    num_sequences = the_zoo.sequences.shape[1]
    return {
        name: dataset.fixed_batches(
            trainer.split[name], trainer.config.eval.batch_size, num_sequences, seed=trainer.config.split.seed
        )
        for name in names
    }


def _append_metrics(workdir: str, record: dict) -> None:
    with open(os.path.join(workdir, METRICS), "a") as f:
        f.write(json.dumps(record) + "\n")


def _drop_metrics_after(workdir: str, step: int) -> None:
    """Rewrites metrics.jsonl without its rows beyond `step`: a run resumed from that step logs them again.

    A last line cut short (a run killed while writing it) is dropped with a warning; a bad line before
    the last is an error.
    """
    path = os.path.join(workdir, METRICS)
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number < len(lines):
                raise TrainingError(f"{path} line {number} is not JSON ({error}); fix or remove it.") from None
            logging.warning("Dropping the last line of %s, cut short (the run was killed writing it).", path)
            continue
        if row["step"] <= step:
            kept.append(line)
    if len(kept) < len(lines):
        logging.info(
            "Dropping %d rows of %s beyond step %d, where the run resumes.", len(lines) - len(kept), path, step
        )
        files.write_text(path, "".join(f"{line}\n" for line in kept))


# Config fields added after runs were saved, with the value such runs had in effect: a saved config that
# lacks one gets this value (and encoder fields their paper default), so older runs resume and load.
ADDED_FIELDS = {("oracle", "target"): "", ("train", "min_step"): 0}


def _with_added_fields(saved: dict) -> dict:
    """A saved config (as JSON) with the fields added since, at the values in effect before them."""
    saved = json.loads(json.dumps(saved))
    for path, value in ADDED_FIELDS.items():
        node = saved
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], value)
    for key, value in encoders.default_config(saved["encoder"]["name"]).to_dict().items():
        saved["encoder"].setdefault(key, value)
    return saved


# Config keys (and sub-configs) that a resumed run may change: logging and checkpoint cadence, the
# length of the run, and the downstream evaluation that follows it.
_RESUMABLE_KEYS = ("train.log_every_steps", "train.checkpoint_every_steps", "train.num_steps", "evaluate")
_ABSENT = "(absent)"


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses an empty workdir and every out-of-range config value, all in one error naming key and range.

    `train_and_evaluate` calls it before anything is written, so a bad value neither starts a run nor
    fails one late.
    """
    problems = [] if workdir else ["the workdir is empty (give --workdir=DIR)"]
    at_least = {
        "train.num_steps": 1,
        "train.batch_size": 1,
        "train.log_every_steps": 1,
        "train.checkpoint_every_steps": 1,
        "train.min_step": 0,
        "eval.every_steps": 1,
        "eval.batch_size": 1,
        "evaluate.num_cloned": 0,
        "encoder.embedding_size": 1,
        "optim.weight_decay": 0,
    }
    for key, low in at_least.items():
        if not config[key] >= low:  # also refuses NaN
            problems.append(f"{key}={config[key]!r} must be >= {low}")
    for key in ("optim.lr", "optim.clip_norm"):
        if not config[key] > 0:
            problems.append(f"{key}={config[key]!r} must be > 0")
    fractions = ("split.ood_fraction", "split.eval_fraction")
    for key in fractions:
        if not 0 <= config[key] < 1:
            problems.append(f"{key}={config[key]!r} must be in [0, 1)")
    total = sum(config[key] for key in fractions)
    if not total < 1:
        problems.append(
            f"split.ood_fraction + split.eval_fraction = {total!r} must be < 1 (tasks must be left to train on)"
        )
    if problems:
        raise ValueError(f"Bad training settings: {'; '.join(problems)}.")


def _check_config(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """The config to record (as JSON); a resumed run must have the recorded one, up to `_RESUMABLE_KEYS`."""
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json())
    if os.path.exists(path):
        saved, now = files.flatten(_with_added_fields(files.read_json(path))), files.flatten(current)
        changed = [
            f"{key}: {saved.get(key, _ABSENT)!r} -> {now.get(key, _ABSENT)!r}"
            for key in sorted(set(saved) | set(now))
            if saved.get(key, _ABSENT) != now.get(key, _ABSENT)
            and not any(key == k or key.startswith(k + ".") for k in _RESUMABLE_KEYS)
        ]
        if changed:
            raise TrainingError(
                f"{workdir} holds a run with another config ({path}); it differs in {'; '.join(changed)}. "
                "Use a new workdir, or the recorded values."
            )
    return current


def _resumed_step(workdir: str) -> int | None:
    """The step of the latest checkpoint a run in `workdir` would resume from (None: a first start)."""
    directory = os.path.join(workdir, "checkpoints", "latest")
    if not os.path.isdir(directory):
        return None
    manager = checkpointing.CheckpointManager(directory)
    step = manager.latest_step()
    manager.close()
    return step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (or resumes) the run of `config` in `workdir`; returns the final metrics.

    One process at a time trains in a workdir (`files.workdir_lock`; a second fails at once). Before
    anything is written, the config is validated and, on a resume, checked against the recorded
    config, zoo and latest checkpoint.
    """
    validate(config, workdir)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    with files.workdir_lock(workdir, "training or evaluation run", TrainingError):
        return _train_locked(config, workdir)


def _train_locked(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    recorded_config = _check_config(config, workdir)
    resumed = _resumed_step(workdir)
    num_steps = config.train.num_steps
    if resumed is not None and resumed > num_steps:
        raise TrainingError(
            f"{workdir}'s latest checkpoint is at step {resumed}, beyond train.num_steps={num_steps}: a run "
            f"cannot go back. Give --config.train.num_steps={resumed} or more, or use a new workdir."
        )
    identity = _check_zoo(config, workdir)
    the_zoo = zoo.load(identity["path"])  # refuses a corrupt or non-finite zoo before the run writes anything
    files.write_json(os.path.join(workdir, "config.json"), recorded_config)
    files.write_json(os.path.join(workdir, RUN_ZOO), identity)
    trainer = Trainer(config, the_zoo)
    split = trainer.split
    files.write_json(os.path.join(workdir, "split.json"), dataset.describe_split(the_zoo, trainer.family, split))
    arrays = trainer.device_arrays(the_zoo)
    train_indices = trainer.replicate(jnp.asarray(trainer.train_snapshots, jnp.int32))
    eval_batches = fixed_batches(trainer, the_zoo, ("eval", "ood"))

    latest = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
    best = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "best"))
    state = trainer.replicate(trainer.initial_state)
    if latest.latest_step() is not None:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
        state = latest.restore(latest.latest_step(), abstract)
        logging.info("Resuming from step %d (%s).", int(state["step"]), workdir)
    step = int(state["step"])
    _drop_metrics_after(workdir, step)
    sizes = "/".join(str(len(split[name])) for name in dataset.SPLITS)
    logging.info(
        "Training %s on %s (train/eval/OOD snapshots %s) for %d steps in %s",
        config.encoder.name, the_zoo.family, sizes, num_steps, workdir,
    )  # fmt: skip
    pending, start, start_step, last = [], time.time(), step, {}
    while step < num_steps:
        state, metrics = trainer.train_step(state, arrays, train_indices)
        step += 1
        pending.append(metrics)
        is_eval = step % config.eval.every_steps == 0 or step == num_steps
        if step % config.train.log_every_steps == 0 or is_eval or step % config.train.checkpoint_every_steps == 0:
            fetched = jax.device_get(pending)
            pending = []
            values = {k: np.array([m[k] for m in fetched]) for k in fetched[0]}
            if not all(np.all(np.isfinite(v)) for v in values.values()):
                raise TrainingError(
                    f"Non-finite training loss or gradient norm before step {step} "
                    f"(loss {values['loss'][-5:]}, grad norm {values['grad_norm'][-5:]}); {_last_good(latest)}"
                )
            last = {
                "step": step,
                "train_loss": float(values["loss"].mean()),
                "grad_norm": float(values["grad_norm"].mean()),
            }
            rate = (step - start_step) / (time.time() - start)
            if is_eval:
                last.update(split_losses(trainer, state, arrays, eval_batches))
                non_finite = [k for k, v in last.items() if not np.isfinite(v)]
                if non_finite:
                    raise TrainingError(f"Non-finite {', '.join(non_finite)} at step {step}; {_last_good(latest)}")
                if last["eval_loss"] < float(state["best_eval_loss"]):
                    state["best_eval_loss"] = trainer.replicate(jnp.float32(last["eval_loss"]))
                    best.save(step, state, metrics={"eval_loss": last["eval_loss"]})
            _append_metrics(workdir, {**last, "steps_per_s": round(rate, 3), "time": time.time()})
            logging.info(
                "step %d/%d | %.2f steps/s | ETA %s | %s",
                step, num_steps, rate, time.strftime("%H:%M:%S", time.gmtime((num_steps - step) / max(rate, 1e-9))),
                " ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step"),
            )  # fmt: skip
            if step % config.train.checkpoint_every_steps == 0 or step == num_steps:
                latest.save(step, state)
    latest.close()
    best.close()
    return last


def _last_good(latest: checkpointing.CheckpointManager) -> str:
    """Where a stopped run can resume from: the latest checkpoint that exists, or that none does."""
    latest.wait()
    step = latest.latest_step()
    if step is None:
        return f"no checkpoint was saved yet ({latest.directory} is empty): rerun from the start."
    return f"the last good checkpoint is step {step} in {latest.directory}."


def _initial_state(model: Model, optimizer: optax.GradientTransformation) -> PyTree:
    _, params, other = nnx.split(model, nnx.Param, ...)
    return {
        "params": params,
        "other": other,
        "opt_state": optimizer.init(params),
        "step": jnp.int32(0),
        "best_eval_loss": jnp.float32(jnp.inf),
    }


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a training workdir was run with."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} is not a training workdir: {path} is missing.")
    with open(path) as f:
        return ml_collections.ConfigDict(_with_added_fields(json.load(f)))


def checkpoint_step(workdir: str, which: str = "best") -> int:
    """The step of a run's best (or latest) checkpoint."""
    manager = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", which))
    step = manager.latest_step()
    manager.close()
    if step is None:
        raise FileNotFoundError(f"No {which!r} checkpoint in {workdir}.")
    return step


def load_model(workdir: str, which: str = "best") -> Model | SupervisedModel:
    """The trained model of a run (`which`: "best" by eval loss, or "latest"), in eval mode.

    A `Model` (encoder and emulator), or for a supervised run a
    `SupervisedModel` (encoder and prediction head); both have `.encoder`.
    """
    config = read_config(workdir)
    document = zoo.read_metadata(run_zoo_path(workdir))
    family = tasks.make(document["family"], document.get("family_settings") or {})
    metadata = {name: np.asarray(column) for name, column in document["snapshots"].items()}
    all_targets = downstream_targets(metadata, family)
    target, oracle = supervised_target(config, all_targets), oracle_target(config, all_targets)
    model = make_model(config, family, lstm.LSTMSpec(**document["spec"]), target, oracle)
    manager = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", which))
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"No {which!r} checkpoint in {workdir}.")
    template = _initial_state(model, make_optimizer(config))
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), template)
    state = manager.restore(step, abstract)
    manager.close()
    nnx.update(model, state["params"], state["other"])
    model.eval()
    return model


def embed(workdir_or_model: str | Model | SupervisedModel, the_zoo: zoo.Zoo | str, batch_size: int = 256) -> np.ndarray:
    """Embeddings [N, embedding_size] of every snapshot of a zoo (a Zoo or its path)."""
    model = load_model(workdir_or_model) if isinstance(workdir_or_model, str) else workdir_or_model
    the_zoo = zoo.load(the_zoo) if isinstance(the_zoo, str) else the_zoo
    graphdef, state = nnx.split(model.encoder)
    encode = jax.jit(lambda state, params: nnx.merge(graphdef, state)(params))
    inputs = encoder_inputs(model, the_zoo)
    chunks = []
    for start in range(0, len(the_zoo), batch_size):
        params = jax.tree.map(lambda x, start=start: x[start : start + batch_size], inputs)
        chunks.append(np.asarray(encode(state, params)))
    return np.concatenate(chunks)
