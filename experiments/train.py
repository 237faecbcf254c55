"""Trains an encoder with the emulator (or a prediction head) on a zoo, with evaluation and resumable
checkpoints:

    train_and_evaluate(config, workdir)

The workdir's layout, and loading what a run trained, are in `experiments.runs`.
"""

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

from experiments import context, objectives, runs
from experiments.model import initial_state, make_optimizer
from weightspace import checkpointing, dataset, metrics, multihost, progress, sharding, zoo
from weightspace.encoders import augment
from weightspace.types import PyTree


class Trainer:
    """A run's jitted training step, over its context (`context.RunContext`: family, split, objective)."""

    def __init__(self, config: ml_collections.ConfigDict, the_zoo: zoo.Zoo):
        self.config = config
        self.run = context.RunContext.of(config, the_zoo)
        self.objective = self.run.objective
        self.augment = bool(config.encoder.augment) and self.objective.augments
        model = self.objective.make_model(config, self.run.spec)
        self.graphdef = nnx.graphdef(model)
        self.optimizer = make_optimizer(config)
        self.initial_state = initial_state(model, self.optimizer)
        self.key = jax.random.key(config.seed)
        self.mesh = self.run.mesh()
        self.train_step = jax.jit(self._train_step, donate_argnums=0)

    def replicate(self, tree: PyTree) -> PyTree:
        """`tree` placed on every device of the run's mesh (state and data that all steps read whole).

        Every process of a multi-process job passes the same tree (`multihost.put`).
        """
        return multihost.put(tree, sharding.replicated(self.mesh))

    def device_arrays(self, the_zoo: zoo.Zoo) -> PyTree:
        """What the steps read, placed once: the zoo and what the objective adds (`Objective.device_arrays`)."""
        return self.replicate(self.objective.device_arrays(dataset.zoo_arrays(the_zoo)))

    def _train_loss(self, params, other, batch) -> tuple[jax.Array, Any]:
        # copy=True: dropout's RNG counters are mutated inside jax.grad (flax issue #5050).
        model = nnx.merge(self.graphdef, params, other, copy=True)
        return self.objective.loss(model, batch), nnx.state(model, nnx.Not(nnx.Param))

    def _train_step(self, state: PyTree, arrays: PyTree, indices: jax.Array) -> tuple[PyTree, dict]:
        """One optimisation step; its batch and augmentation come from `fold_in(key, step)`."""
        step_key = jax.random.fold_in(self.key, state["step"])
        batch_key, augment_key = jax.random.split(step_key)
        batch = dataset.sample_batch(batch_key, arrays, self.run.family, indices, self.config.train.batch_size)
        if self.augment:
            batch["params"] = augment.augment(augment_key, batch["params"], self.run.spec)
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

    def split_losses(self, state: PyTree, arrays: PyTree, batches: dict[str, list]) -> dict[str, float]:
        """The objective's mean losses over each split's fixed batches (`objectives.split_losses`)."""
        return objectives.split_losses(self.run, self.graphdef, self.mesh, state, arrays, batches)


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses an empty workdir and every out-of-range config value, all in one error naming key and range.

    `train_and_evaluate` calls it before anything is written, so a bad value neither starts a run nor
    fails one late.
    """
    problems = [] if workdir else ["the workdir is empty (give --workdir=DIR)"]
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (or resumes) the run of `config` in `workdir`; returns the final metrics.

    One job at a time trains in a workdir (`multihost.workdir_lock`; a second fails at once). Before
    anything is written, the config is validated and, on a resume, checked against the recorded
    config, zoo and latest checkpoint. In a multi-process job every process runs this with the same
    arguments and a shared workdir; only process 0 writes the run's files, all save checkpoints together.
    """
    validate(config, workdir)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    with multihost.workdir_lock(workdir, "training or evaluation run", runs.TrainingError):
        multihost.check_shared_workdir(workdir, runs.TrainingError)
        return _train_locked(config, workdir)


def _train_locked(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    recorded_config = runs.check_config(config, workdir)
    resumed = runs.resumed_step(workdir)
    num_steps = config.train.num_steps
    if resumed is not None and resumed > num_steps:
        raise runs.TrainingError(
            f"{workdir}'s latest checkpoint is at step {resumed}, beyond train.num_steps={num_steps}: a run "
            f"cannot go back. Give --config.train.num_steps={resumed} or more, or use a new workdir."
        )
    identity = runs.check_zoo(config, workdir)
    the_zoo = zoo.load(identity["path"])  # refuses a corrupt or non-finite zoo before the run writes anything
    trainer = Trainer(config, the_zoo)
    split = trainer.run.split
    multihost.write_json(os.path.join(workdir, "config.json"), recorded_config)
    multihost.write_json(os.path.join(workdir, runs.RUN_ZOO), identity)
    described = dataset.describe_split(the_zoo, trainer.run.family, split)
    multihost.write_json(os.path.join(workdir, "split.json"), described)
    arrays = trainer.device_arrays(the_zoo)
    train_indices = trainer.replicate(np.asarray(trainer.run.train_snapshots, np.int32))
    eval_batches = objectives.fixed_batches(trainer.run, the_zoo.sequences.shape[1], dataset.HELD_OUT)

    latest = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
    best = checkpointing.CheckpointManager(os.path.join(workdir, "checkpoints", "best"))
    state = trainer.replicate(trainer.initial_state)
    if latest.latest_step() is not None:
        state = latest.restore(latest.latest_step(), checkpointing.abstract_of(state))
        logging.info("Resuming from step %d (%s).", int(state["step"]), workdir)
    step = int(state["step"])
    if multihost.is_primary():
        metrics.drop_after(os.path.join(workdir, runs.METRICS), step)
    sizes = "/".join(str(len(split[name])) for name in dataset.SPLITS)
    logging.info(
        "Training %s on %s (train/eval/OOD snapshots %s) for %d steps in %s",
        config.encoder.name, the_zoo.family, sizes, num_steps, workdir,
    )  # fmt: skip
    pending, last, steps = [], {}, progress.Progress(num_steps, done_before=step)
    while step < num_steps:
        state, step_metrics = trainer.train_step(state, arrays, train_indices)
        step += 1
        steps.advance(1)
        pending.append(step_metrics)
        is_eval = step % config.eval.every_steps == 0 or step == num_steps
        if step % config.train.log_every_steps == 0 or is_eval or step % config.train.checkpoint_every_steps == 0:
            fetched = jax.device_get(pending)
            pending = []
            values = {k: np.array([m[k] for m in fetched]) for k in fetched[0]}
            if not all(np.all(np.isfinite(v)) for v in values.values()):
                raise runs.TrainingError(
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
                last.update(trainer.split_losses(state, arrays, eval_batches))
                non_finite = [k for k, v in last.items() if not np.isfinite(v)]
                if non_finite:
                    raise runs.TrainingError(f"Non-finite {', '.join(non_finite)} at step {step}; {_last_good(latest)}")
                if last["eval_loss"] < float(state["best_eval_loss"]):
                    state["best_eval_loss"] = trainer.replicate(jnp.float32(last["eval_loss"]))
                    best.save(step, state, metrics={"eval_loss": last["eval_loss"]})
            if multihost.is_primary():
                row = {**last, "steps_per_s": round(rate, 3), "time": time.time()}
                metrics.append(os.path.join(workdir, runs.METRICS), row)
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


def _last_good(latest: checkpointing.CheckpointManager) -> str:
    """Where a stopped run can resume from: the latest checkpoint that exists, or that none does."""
    latest.wait()
    step = latest.latest_step()
    if step is None:
        return f"no checkpoint was saved yet ({latest.directory} is empty): rerun from the start."
    return f"the last good checkpoint is step {step} in {latest.directory}."
