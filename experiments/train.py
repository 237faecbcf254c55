"""Trains an encoder with the emulator (or a prediction head) on a zoo, with the eval and OOD losses
measured as it goes and resumable checkpoints (the downstream evaluation is `experiments.evaluate`):

    train(config, workdir)

The workdir's layout, and loading what a run trained, are in `experiments.workdirs`.
"""

import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from experiments import batches, context, workdirs
from experiments.model import initial_state, make_optimizer
from weightspace import (
    checkpointing,
    dataset,
    errors,
    metrics,
    multihost,
    prefetch,
    progress,
    sharding,
    tensorboard,
    zoo,
)
from weightspace.encoders import augment
from weightspace.types import PyTree

_DRAW_BLOCK = 256  # on disk: steps whose batches are drawn at once


class Trainer:
    """A run's jitted training step, over its context (`context.RunContext`: family, split, objective)."""

    def __init__(self, config: ml_collections.ConfigDict, the_zoo: zoo.Zoo):
        self.config = config
        self.run = context.RunContext.of(config, the_zoo)
        self.objective = self.run.objective
        self.augment = bool(config.encoder.augment) and self.objective.reads_weights
        model = self.objective.make_model(config, self.run.spec)
        self.graphdef = nnx.graphdef(model)
        self.optimizer = make_optimizer(config)
        self.initial_state = initial_state(model, self.optimizer)
        self.key = jax.random.key(config.seed)
        self.mesh = self.run.mesh()
        self.on_disk = bool(config.train.zoo_on_disk)
        # In memory: train_step(state, arrays, indices); on disk: train_step(state, rows) (`step_inputs`).
        self.train_step = jax.jit(self._step_on_rows if self.on_disk else self._train_step, donate_argnums=0)
        self.draw_block = jax.jit(jax.vmap(self._draw, in_axes=(0, None, None)), static_argnums=2)

    def replicate(self, tree: PyTree) -> PyTree:
        """`tree` placed on every device of the run's mesh (state and data that all steps read whole).

        Every process of a multi-process job passes the same tree (`multihost.put`).
        """
        return multihost.put(tree, sharding.replicated(self.mesh))

    def zoo_arrays(self, the_zoo: zoo.Zoo) -> PyTree:
        """What the steps read (`batches.run_arrays`): placed on the mesh, or left on disk."""
        return batches.run_arrays(self.objective, the_zoo, self.mesh, self.on_disk)

    def row_reader(self, arrays: PyTree) -> batches.RowReader:
        """How the rows of a fixed batch are read from `zoo_arrays`: on device, or from disk and placed."""
        return batches.row_reader(arrays, sharding.split(self.mesh), self.on_disk)

    def _keys(self, step: jax.Array) -> jax.Array:
        """The keys of step `step` [2]: its batch's draw, its augmentation."""
        return jax.random.split(jax.random.fold_in(self.key, step))

    def _draw(self, step: jax.Array, indices: jax.Array, num_sequences: int) -> tuple[jax.Array, jax.Array]:
        """Step `step`'s batch: (snapshots [B], sequences [B]) drawn from `indices`."""
        return dataset.sample_indices(self._keys(step)[0], indices, self.config.train.batch_size, num_sequences)

    def _train_step(self, state: PyTree, arrays: PyTree, indices: jax.Array) -> tuple[PyTree, dict]:
        """One optimisation step, its batch drawn and gathered on device from the placed zoo `arrays`."""
        draw = self._draw(state["step"], indices, dataset.num_sequences(arrays))
        return self._step_on_rows(state, dataset.take(arrays, *draw))

    def _step_on_rows(self, state: PyTree, rows: PyTree) -> tuple[PyTree, dict]:
        """One optimisation step on its batch's rows (`dataset.take`); the augmentation's key is the step's."""
        batch = dataset.assemble(rows, self.run.family)
        if self.augment:
            batch["params"] = augment.augment(self._keys(state["step"])[1], batch["params"], self.run.spec)
        batch = sharding.constrain(batch, sharding.split(self.mesh))
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

    def _train_loss(self, params, other, batch) -> tuple[jax.Array, Any]:
        # copy=True: dropout's RNG counters are mutated inside jax.grad (flax issue #5050).
        model = nnx.merge(self.graphdef, params, other, copy=True)
        return self.objective.loss(model, batch), nnx.state(model, nnx.Not(nnx.Param))

    def step_inputs(self, arrays: PyTree, first: int, stop: int) -> contextlib.AbstractContextManager[Iterator]:
        """The arguments of `train_step` after the state, for steps first, ..., stop - 1 (a context manager).

        In memory: the placed zoo and the train snapshots, every step. On disk: each step's batch rows,
        read ahead of the steps by a thread (`dataset.read`) and placed split over the mesh; the draws
        are the in-memory step's (same keys), made on device `_DRAW_BLOCK` steps at a time.
        """
        indices = np.asarray(self.run.train_snapshots, np.int32)
        if not self.on_disk:
            return contextlib.nullcontext(itertools.repeat((arrays, self.replicate(indices))))
        placement, draws = sharding.split(self.mesh), {}
        num_sequences = dataset.num_sequences(arrays)

        def produce(step: int) -> tuple[PyTree]:
            block = step - step % _DRAW_BLOCK
            if block not in draws:
                draws.clear()
                steps = np.arange(block, block + _DRAW_BLOCK, dtype=np.int32)
                draws[block] = jax.device_get(self.draw_block(steps, indices, num_sequences))
            snapshots, sequences = (drawn[step - block] for drawn in draws[block])
            return (multihost.put(dataset.read(arrays, snapshots, sequences), placement),)

        return prefetch.Prefetcher(produce, first, stop)

    def split_losses(self, state: PyTree, read_rows: batches.RowReader, eval_batches: dict[str, list]) -> dict:
        """The objective's mean losses over each split's fixed batches (`batches.split_losses`)."""
        return batches.split_losses(self.objective, self.graphdef, self.mesh, state, read_rows, eval_batches)


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses an empty workdir and every out-of-range config value, all in one error naming key and range.

    `train` calls it before anything is written, so a bad value neither starts a run nor
    fails one late.
    """
    problems = [] if workdir else ["the workdir is empty (give --workdir=DIR)"]
    if workdir and os.path.exists(workdir) and not os.path.isdir(workdir):
        problems.append(f"the workdir {workdir} is a file, not a directory (give --workdir=DIR)")
    if jax.process_count() > 1 and not config.train.data_parallel:
        problems.append(
            f"a job of {jax.process_count()} processes trains data-parallel: give --config.train.data_parallel=true"
        )
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
        "emulator.hidden_size": 1,
        "emulator.num_layers": 1,
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
        raise errors.ConfigError(f"Bad training settings: {'; '.join(problems)}.")


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (or resumes) the run of `config` in `workdir`; returns the final metrics.

    One job at a time trains in a workdir (`multihost.workdir_lock`; a second fails at once). Before
    anything is written, the config is validated and, on a resume, checked against the recorded
    config, zoo and latest checkpoint. In a multi-process job every process runs this with the same
    arguments and a shared workdir; only process 0 writes the run's files, all save checkpoints together.
    """
    validate(config, workdir)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    with multihost.workdir_lock(workdir, "training or evaluation run", workdirs.TrainingError):
        multihost.check_shared_workdir(workdir, workdirs.TrainingError)
        multihost.check_same_config(config.to_json(), workdirs.TrainingError)
        return _train_locked(config, workdir)


def _train_locked(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    recorded_config = workdirs.check_config(config, workdir)
    resumed = workdirs.resumed_step(workdir)
    num_steps = config.train.num_steps
    if resumed is not None and resumed > num_steps:
        raise workdirs.TrainingError(
            f"{workdir}'s latest checkpoint is at step {resumed}, beyond train.num_steps={num_steps}: a run "
            f"cannot go back. Give --config.train.num_steps={resumed} or more, or use a new workdir."
        )
    identity = workdirs.check_zoo(config, workdir)
    # Refuses a corrupt or non-finite zoo before the run writes anything.
    the_zoo = zoo.load(identity["path"], on_disk=config.train.zoo_on_disk)
    trainer = Trainer(config, the_zoo)
    devices = {"num_devices": trainer.mesh.size, "backend": jax.default_backend()}
    workdirs.check_devices(workdir, devices, resumed)
    split = trainer.run.split
    multihost.write_json(os.path.join(workdir, "config.json"), recorded_config)
    multihost.write_json(os.path.join(workdir, workdirs.RUN_DEVICES), devices)
    multihost.write_json(os.path.join(workdir, workdirs.RUN_ZOO), identity)
    described = dataset.describe_split(the_zoo, trainer.run.family, split)
    multihost.write_json(os.path.join(workdir, "split.json"), described)
    arrays = trainer.zoo_arrays(the_zoo)
    read_rows = trainer.row_reader(arrays)
    eval_batches = batches.fixed_batches(split, config, the_zoo.sequences.shape[1], dataset.HELD_OUT)

    latest = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
    best = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "best"))
    state = trainer.replicate(trainer.initial_state)
    if latest.latest_step() is not None:
        state = latest.restore(latest.latest_step(), checkpointing.abstract_of(state))
        logging.info("Resuming from step %d (%s).", int(state["step"]), workdir)
    step = int(state["step"])
    if multihost.is_primary():
        metrics.drop_after(os.path.join(workdir, workdirs.METRICS), step)
    sizes = "/".join(str(len(split[name])) for name in dataset.SPLITS)
    logging.info(
        "Training %s on %s (train/eval/OOD snapshots %s) for %d steps in %s",
        config.encoder.name, the_zoo.family, sizes, num_steps, workdir,
    )  # fmt: skip
    pending, last, steps = [], {}, progress.Progress(num_steps, done_before=step)
    events = tensorboard.EventWriter(os.path.join(workdir, tensorboard.DIRECTORY), resumed_step=step)
    with events, trainer.step_inputs(arrays, step, num_steps) as inputs:
        while step < num_steps:
            state, step_metrics = trainer.train_step(state, *next(inputs))
            step += 1
            steps.advance(1)
            pending.append(step_metrics)
            is_eval = step % config.eval.every_steps == 0 or step == num_steps
            if step % config.train.log_every_steps == 0 or is_eval or step % config.train.checkpoint_every_steps == 0:
                fetched = jax.device_get(pending)
                pending = []
                values = {k: np.array([m[k] for m in fetched]) for k in fetched[0]}
                if not all(np.all(np.isfinite(v)) for v in values.values()):
                    raise workdirs.TrainingError(
                        f"Non-finite training loss or gradient norm before step {step} "
                        f"(loss {values['loss'][-5:]}, grad norm {values['grad_norm'][-5:]}); {_last_good(latest)}"
                    )
                last = {
                    "step": step,
                    "train_loss": float(values["loss"].mean()),
                    "grad_norm": float(values["grad_norm"].mean()),
                }
                rate = steps.rate  # before the evaluation below
                if is_eval:
                    last.update(trainer.split_losses(state, read_rows, eval_batches))
                    non_finite = [k for k, v in last.items() if not np.isfinite(v)]
                    if non_finite:
                        raise workdirs.TrainingError(
                            f"Non-finite {', '.join(non_finite)} at step {step}; {_last_good(latest)}"
                        )
                    if last["eval_loss"] < float(state["best_eval_loss"]):
                        state["best_eval_loss"] = trainer.replicate(jnp.float32(last["eval_loss"]))
                        best.save(step, state, metrics={"eval_loss": last["eval_loss"]})
                if multihost.is_primary():
                    row = {**last, "steps_per_s": round(rate, 3), "time": time.time()}
                    metrics.append(os.path.join(workdir, workdirs.METRICS), row)
                    events.scalars(step, _tensorboard_scalars(row))
                logging.info(
                    "step %d/%d | %.2f steps/s | ETA %s | %s",
                    step, num_steps, rate, steps.eta(),
                    " ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step"),
                )  # fmt: skip
                if step % config.train.checkpoint_every_steps == 0 or step == num_steps:
                    latest.save(step, state)
    latest.close()
    best.close()
    return last


def _tensorboard_scalars(row: dict[str, float]) -> dict[str, float]:
    """A metrics row as TensorBoard tags: the losses side by side under "loss/" (`train_loss` is
    "loss/train", `ood_boundary_loss` "loss/ood_boundary"), the rest under "train/" ("train/grad_norm",
    "train/steps_per_s"); the step is the events' own, and "time" is left out (events record their time)."""
    return {
        f"loss/{name.removesuffix('_loss')}" if name.endswith("_loss") else f"train/{name}": value
        for name, value in row.items()
        if name not in ("step", "time")
    }


def _last_good(latest: checkpointing.CheckpointManager) -> str:
    """Where a stopped run can resume from: the latest checkpoint that exists, or that none does."""
    latest.wait()
    step = latest.latest_step()
    if step is None:
        return f"no checkpoint was saved yet ({latest.directory} is empty): rerun from the start."
    return f"the last good checkpoint is step {step} in {latest.directory}."
