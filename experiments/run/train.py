"""Trains an encoder with the emulator (or a prediction head) on a zoo, with the eval and OOD losses
measured as it goes and resumable checkpoints (the downstream evaluation is `experiments.run.evaluate`):

    train(config, workdir)
    train_sweep(configs, workdirs)   # runs that differ only in seed and learning rate, trained together

A sweep trains its members in one jitted step, vmapped over a leading member axis of the params, the
optimiser state and the keys: each member draws the batches, and takes the steps, of its single run
(up to floating-point rounding), and writes a single run's workdir (its config, metrics, checkpoints),
so evaluation, tables and `workdirs.load_run` read a member as they read a run. A single run is a sweep
of one member. The workdir's layout, and loading what a run trained, are in `experiments.run.workdirs`.
"""

import contextlib
import itertools
import os
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from experiments.configs import schema
from experiments.run import batches, context, layout, recording, workdirs
from experiments.run.model import initial_state, make_optimizer
from weightspace import (
    checkpointing,
    dataset,
    errors,
    files,
    metrics,
    multihost,
    ownership,
    prefetch,
    progress,
    sharding,
    zoo,
)
from weightspace.encoders import augment
from weightspace.types import PyTree

_DRAW_BLOCK = 256  # on disk: steps whose batches are drawn at once


# Config keys in which the members of a sweep may differ.
MEMBER_KEYS = ("seed", "optim.lr")


class Trainer:
    """A sweep's jitted training step over its context (`context.RunContext`: family, split, objective).

    The members are runs of configs equal but for `MEMBER_KEYS`; every array of the training state has a
    leading member axis [M, ...], and the step is the single run's step vmapped over it.
    """

    def __init__(self, configs: Sequence[ml_collections.ConfigDict], the_zoo: zoo.Zoo):
        self.configs = list(configs)
        config = self.config = self.configs[0]
        for other in self.configs[1:]:
            differences = files.config_changes(config.to_dict(), other.to_dict(), MEMBER_KEYS)
            if differences:
                raise errors.ConfigError(
                    f"The members of a sweep differ only in {', '.join(MEMBER_KEYS)}; these differ in "
                    f"{'; '.join(differences)}."
                )
        self.run = context.RunContext.of(config, the_zoo)
        self.objective = self.run.objective
        self.augment = bool(config.encoder.augment) and self.objective.reads_weights
        models = [self.objective.make_model(c, self.run.spec) for c in self.configs]
        self.graphdef = nnx.graphdef(models[0])
        self.optimizer = make_optimizer(config)
        self.initial_state = recording.stack([initial_state(model, self.optimizer) for model in models])
        # Each member's key and learning rate [M]: what its single run has.
        self.keys = jax.vmap(jax.random.key)(jnp.asarray([c.seed for c in self.configs]))
        self.learning_rates = jnp.asarray([c.optim.lr for c in self.configs], jnp.float32)
        self.mesh = self.run.mesh(members=len(self.configs))
        self.on_disk = bool(config.train.zoo_on_disk)
        # In memory: train_step(state, keys, lrs, arrays, indices); on disk: train_step(state, keys, lrs, rows)
        # (`step_inputs`; rows [M, B, ...]).
        if self.on_disk:
            member_step, axes = self._step_on_rows, (0, 0, 0, 0)
        else:
            member_step, axes = self._train_step, (0, 0, 0, None, None)
        # The members' axis is the mesh's "members": each device steps its own members.
        self.train_step = jax.jit(jax.vmap(member_step, in_axes=axes, spmd_axis_name="members"), donate_argnums=0)
        draw_steps = jax.vmap(self._draw, in_axes=(0, None, None, None))  # [steps] of one member
        self.draw_block = jax.jit(jax.vmap(draw_steps, in_axes=(None, None, None, 0)), static_argnums=2)

    def replicate(self, tree: PyTree) -> PyTree:
        """`tree` placed on every device of the run's mesh (state and data that all steps read whole).

        Every process of a multi-process job passes the same tree (`multihost.put`).
        """
        return multihost.put(tree, sharding.replicated(self.mesh))

    def place_members(self, tree: PyTree) -> PyTree:
        """`tree` with a leading member axis [M, ...] split over the mesh's "members" (state, keys, rates)."""
        return multihost.put(tree, sharding.split(self.mesh, name="members"))

    def zoo_arrays(self, the_zoo: zoo.Zoo) -> PyTree:
        """What the steps read (`batches.run_arrays`): placed on the mesh, or left on disk."""
        return batches.run_arrays(self.objective, the_zoo, self.mesh, self.on_disk)

    def row_reader(self, arrays: PyTree) -> batches.RowReader:
        """How the rows of a fixed batch are read from `zoo_arrays`: on device, or from disk and placed."""
        return batches.row_reader(arrays, sharding.split(self.mesh, name="data"), self.on_disk)

    @staticmethod
    def _keys(step: jax.Array, key: jax.Array) -> jax.Array:
        """The keys of step `step` of the run of `key` [2]: its batch's draw, its augmentation."""
        return jax.random.split(jax.random.fold_in(key, step))

    def _draw(self, step: jax.Array, indices: jax.Array, num_sequences: int, key: jax.Array):
        """Step `step`'s batch of the run of `key`: (snapshots [B], sequences [B]) drawn from `indices`."""
        return dataset.sample_indices(self._keys(step, key)[0], indices, self.config.train.batch_size, num_sequences)

    def _train_step(self, state: PyTree, key: jax.Array, lr: jax.Array, arrays: PyTree, indices: jax.Array):
        """One member's optimisation step, its batch drawn and gathered on device from the placed zoo `arrays`."""
        draw = self._draw(state["step"], indices, dataset.num_sequences(arrays), key)
        return self._step_on_rows(state, key, lr, dataset.take(arrays, *draw))

    def _step_on_rows(self, state: PyTree, key: jax.Array, lr: jax.Array, rows: PyTree) -> tuple[PyTree, dict]:
        """One member's optimisation step on its batch's rows (`dataset.take`); the augmentation's key is the
        step's. The optimiser's update is at unit learning rate (`make_optimizer`), scaled here by `lr`."""
        batch = self.objective.assemble(rows)
        if self.augment:
            batch["params"] = augment.augment(self._keys(state["step"], key)[1], batch["params"], self.run.spec)
        batch = sharding.constrain(batch, sharding.split(self.mesh, name="data"))
        (_, (other, logged)), grads = jax.value_and_grad(self._train_loss, has_aux=True)(
            state["params"], state["other"], batch
        )
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
        new_state = {
            **state,
            "params": optax.apply_updates(state["params"], jax.tree.map(lambda u: u * lr, updates)),
            "other": other,
            "opt_state": opt_state,
            "step": state["step"] + 1,
        }
        return new_state, {**logged, "grad_norm": optax.tree.norm(grads)}

    def _train_loss(self, params, other, batch) -> tuple[jax.Array, tuple[Any, dict[str, jax.Array]]]:
        """The objective's loss plus the terms the model records for its own training (`nnx.sow`: a probe
        policy's loss); aux: the model's new non-parameter state, and what is logged ({"loss": the objective's
        loss, each recorded term by name})."""
        # copy=True: dropout's RNG counters are mutated inside jax.grad (flax issue #5050).
        model = nnx.merge(self.graphdef, params, other, copy=True)
        loss, recorded = nnx.capture(lambda m, b: self.objective.loss(m, b), nnx.Intermediate)(model, batch)
        terms = {path[-1]: sum(variable.get_value()) for path, variable in nnx.to_flat_state(recorded)}
        total = loss + sum(v for k, v in terms.items() if k.endswith("_loss"))
        return total, (nnx.state(model, nnx.Not(nnx.Param)), {"loss": loss, **terms})

    def step_inputs(self, arrays: PyTree, first: int, stop: int) -> contextlib.AbstractContextManager[Iterator]:
        """The arguments of `train_step` after the state, for steps first, ..., stop - 1 (a context manager).

        Always the members' keys and learning rates. Then in memory: the placed zoo and the train
        snapshots, every step. On disk: each step's batch rows of every member [M, B, ...], read ahead of
        the steps by a thread (`dataset.read`) and placed split over the mesh; the draws are the in-memory
        step's (same keys), made on device `_DRAW_BLOCK` steps at a time.
        """
        indices = np.asarray(self.run.train_snapshots, np.int32)
        members = self.place_members((self.keys, self.learning_rates))
        if not self.on_disk:
            return contextlib.nullcontext(itertools.repeat((*members, arrays, self.replicate(indices))))
        placement, draws = jax.sharding.NamedSharding(self.mesh, jax.P("members", "data")), {}
        num_sequences = dataset.num_sequences(arrays)

        def produce(step: int) -> tuple[PyTree, ...]:
            block = step - step % _DRAW_BLOCK
            if block not in draws:
                draws.clear()
                steps = np.arange(block, block + _DRAW_BLOCK, dtype=np.int32)
                draws[block] = jax.device_get(self.draw_block(steps, indices, num_sequences, self.keys))
            snapshots, sequences = (drawn[:, step - block] for drawn in draws[block])  # [M, B] each
            rows = recording.stack([dataset.read(arrays, s, q) for s, q in zip(snapshots, sequences, strict=True)])
            return (*members, multihost.put(rows, placement))

        return prefetch.Prefetcher(produce, first, stop)

    def split_losses(self, state: PyTree, read_rows: batches.RowReader, eval_batches: dict[str, list]) -> list[dict]:
        """Each member's mean losses over each split's fixed batches (`batches.split_losses`)."""
        return batches.split_losses(self.objective, self.graphdef, self.mesh, state, read_rows, eval_batches)


def sweep_pays(members: int) -> bool:
    """Whether `members` runs train faster as one sweep than one after another on this machine's devices.

    On an accelerator always: its step is bound by kernel launches, which the members share. On CPUs
    only when each member gets a device (a core) of its own: a CPU step is bound by its FLOPs, and
    members that share a CPU device cost about what their runs one after another cost, or more
    (experiments/BENCHMARKS.md#sweeps; the parameter transformer, whose matmuls already use every
    core, is slower as a sweep even then).
    """
    return jax.default_backend() != "cpu" or members <= len(jax.devices())


def sweep_members(
    config: ml_collections.ConfigDict, workdir: str, seeds: Sequence[int] = (), learning_rates: Sequence[float] = ()
) -> tuple[list[ml_collections.ConfigDict], list[str]]:
    """The members (configs, workdirs) of a sweep of `config` over `seeds` (and `learning_rates`, one per seed)
    run in `workdir` (`layout.member`); no seeds: the single run of `config` in `workdir`."""
    if learning_rates and len(learning_rates) != len(seeds):
        raise errors.ConfigError(
            f"A sweep takes one learning rate per seed: {len(seeds)} seeds, {len(learning_rates)} learning rates."
        )
    if not seeds:
        return [config], [workdir]
    configs, paths = [], []
    for i, seed in enumerate(seeds):
        member = ml_collections.ConfigDict(config.to_dict())
        member.seed = seed
        rate = learning_rates[i] if learning_rates else None
        if rate is not None:
            member.optim.lr = rate
        configs.append(member)
        paths.append(layout.member(workdir, seed, rate))
    return configs, paths


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
    problems += schema.problems(config)
    if problems:
        raise errors.ConfigError(f"Bad training settings: {'; '.join(problems)}.")


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (or resumes) the run of `config` in `workdir`; returns the final metrics (a sweep of one)."""
    return train_sweep([config], [workdir])[0]


def train_sweep(configs: Sequence[ml_collections.ConfigDict], workdirs_: Sequence[str]) -> list[dict[str, float]]:
    """Trains (or resumes) the runs of `configs` together, each in its workdir; returns each one's final metrics.

    The configs differ only in `MEMBER_KEYS` (seed, learning rate). One job at a time trains in a workdir
    (`multihost.workdir_lock`; a second fails at once). Before anything is written, every config is
    validated and, on a resume, checked against its workdir's recorded config, zoo and latest checkpoint.
    In a multi-process job every process runs this with the same arguments and shared workdirs; only
    process 0 writes the runs' files, all save checkpoints together.
    """
    if len(configs) != len(workdirs_) or not configs:
        raise ValueError(
            f"A sweep needs one workdir per config, got {len(configs)} configs, {len(workdirs_)} workdirs."
        )
    for config, workdir in zip(configs, workdirs_, strict=True):
        validate(config, workdir)
    paths = [os.path.abspath(w) for w in workdirs_]
    if len(set(paths)) != len(paths):
        raise workdirs.TrainingError(f"The members of a sweep need workdirs of their own, got {list(workdirs_)}.")
    with contextlib.ExitStack() as locks:
        for workdir in paths:
            ownership.claim(workdir, "run")
            locks.enter_context(multihost.workdir_lock(workdir, "training or evaluation run", workdirs.TrainingError))
            multihost.check_shared_workdir(workdir, workdirs.TrainingError)
        multihost.check_same_config("".join(c.to_json() for c in configs), workdirs.TrainingError)
        with workdirs.releasing_compiled_programs():
            return _train_locked(list(configs), paths)


def _resume_step(paths: list[str], num_steps: int) -> tuple[int | None, list[str]]:
    """The step every member resumes from, the newest one all have (None: a first start), and the members
    ahead of it (killed while the others saved: they replay those steps exactly, `_set_aside_ahead`)."""
    resumed = [workdirs.resumed_step(path) for path in paths]
    for path, step in zip(paths, resumed, strict=True):
        if step is not None and step > num_steps:
            raise workdirs.TrainingError(
                f"{path}'s latest checkpoint is at step {step}, beyond train.num_steps={num_steps}: a run "
                f"cannot go back. Give --config.train.num_steps={step} or more, or use a new workdir."
            )
    common = None if None in resumed else min(resumed)
    return common, [path for path, step in zip(paths, resumed, strict=True) if step != common]


def _set_aside_ahead(paths: list[str], step: int | None) -> None:
    """Sets the latest and best checkpoints after `step` of these members aside (`checkpointing.set_aside_after`)."""
    for path in paths:
        for which in ("latest", "best"):
            checkpointing.set_aside_after(layout.checkpoints(path, which), step, "ahead")


def _prepare(configs: list[ml_collections.ConfigDict], paths: list[str]) -> tuple["Trainer", zoo.Zoo, int | None]:
    """Checks every member's workdir against its config, zoo, devices and files, then records them: the
    trainer, the zoo and the step resumed from (None: a first start). Nothing is written before the checks."""
    config, num_steps = configs[0], configs[0].train.num_steps
    recorded_configs = [workdirs.check_config(c, path) for c, path in zip(configs, paths, strict=True)]
    resumed, ahead = _resume_step(paths, num_steps)
    identity = [workdirs.check_zoo(c, path) for c, path in zip(configs, paths, strict=True)][-1]
    # Refuses a corrupt or non-finite zoo before the run writes anything.
    the_zoo = zoo.load(identity["path"], on_disk=config.train.zoo_on_disk)
    trainer = Trainer(configs, the_zoo)
    # The devices a member's batch is split over: members on other devices compute alike.
    devices = {"num_devices": trainer.mesh.shape["data"], "backend": jax.default_backend()}
    described = dataset.describe_split(the_zoo, trainer.run.family, trainer.run.split)
    for path in paths:
        workdirs.check_devices(path, devices, resumed)
        metrics.read(layout.run_file(path, layout.METRICS))  # a damaged file is refused before anything is written
    _set_aside_ahead(ahead, resumed)
    for path, recorded in zip(paths, recorded_configs, strict=True):
        multihost.write_json(layout.run_file(path, layout.CONFIG), recorded)
        multihost.write_json(layout.run_file(path, layout.DEVICES), devices)
        multihost.write_json(layout.run_file(path, layout.ZOO_RECORD), identity)
        multihost.write_json(layout.run_file(path, layout.SPLIT), described)
    return trainer, the_zoo, resumed


def _start_state(trainer: "Trainer", recorder: recording.Recorder, resumed: int | None) -> PyTree:
    """The members' stacked state: initial, or restored from their latest checkpoints at step `resumed`."""
    state = trainer.place_members(trainer.initial_state)
    if resumed is None:
        return state
    single = checkpointing.abstract_of(recording.member_state(state, 0), sharding.replicated(trainer.mesh))
    logging.info("Resuming from step %d (%s).", resumed, ", ".join(recorder.paths))
    return trainer.place_members(recording.stack([manager.restore(resumed, single) for manager in recorder.latest]))


def _evaluate(trainer: "Trainer", recorder: recording.Recorder, state: PyTree, rows: list[dict], step: int, held_out):
    """Adds each member's eval and OOD losses to its row (`held_out`: (read_rows, fixed batches)), refusing a
    non-finite one, and saves the members that improved as their best (`selection_score`); returns the state."""
    for member, losses in enumerate(trainer.split_losses(state, *held_out)):
        rows[member].update(losses)
        recorder.check_finite(rows[member], member, step)
    scores = [selection_score(row, config.eval.select_by) for row, config in zip(rows, trainer.configs, strict=True)]
    best = np.array(jax.device_get(state["best_eval_loss"]))
    improved = [m for m in range(len(rows)) if scores[m] < best[m]]
    if improved:
        best[improved] = [scores[m] for m in improved]
        state["best_eval_loss"] = trainer.place_members(jnp.asarray(best, jnp.float32))
        recorder.save_best(state, rows, improved, step)
    return state


# With eval.select_by='novelty': the answers found count to this many decimals; within that, the lower eval loss
# wins (the reader keeps learning while a policy's probes stay as good).
NOVELTY_DECIMALS = 2


def selection_score(row: dict[str, float], select_by: str) -> float:
    """What the best checkpoint minimises (kept in the state as "best_eval_loss"): the eval loss, or with
    `eval.select_by='novelty'` minus the mean number of answers a probing encoder's probes find on the eval
    split (label-free: the LSTMs' own answers), rounded to `NOVELTY_DECIMALS`, plus the eval loss / 10^4 (below
    one rounding step for any loss under 100: it only breaks ties)."""
    if select_by != "novelty":
        return row["eval_loss"]
    return -round(row["eval_novelty"], NOVELTY_DECIMALS) + min(row["eval_loss"], 99.0) * 1e-4


def _train_locked(configs: list[ml_collections.ConfigDict], paths: list[str]) -> list[dict[str, float]]:
    """Trains the members (their workdirs locked) from where they stopped; returns each one's last row."""
    trainer, the_zoo, resumed = _prepare(configs, paths)
    config, num_steps, split = configs[0], configs[0].train.num_steps, trainer.run.split
    arrays = trainer.zoo_arrays(the_zoo)
    held_out = (
        trainer.row_reader(arrays),
        batches.fixed_batches(split, config, the_zoo.sequences.shape[1], dataset.HELD_OUT),
    )
    with recording.Recorder(paths) as recorder:
        state = _start_state(trainer, recorder, resumed)
        step = int(state["step"][0])
        recorder.start(step)
        sizes = "/".join(str(len(split[name])) for name in dataset.SPLITS)
        logging.info(
            "Training %s on %s (train/eval/OOD snapshots %s) for %d steps in %s",
            config.encoder.name, the_zoo.family, sizes, num_steps, ", ".join(paths),
        )  # fmt: skip
        pending, rows, steps = [], [{} for _ in paths], progress.Progress(num_steps, done_before=step)
        inputs = recorder.enter_context(trainer.step_inputs(arrays, step, num_steps))
        while step < num_steps:
            state, step_metrics = trainer.train_step(state, *next(inputs))
            step += 1
            steps.advance(1)
            pending.append(step_metrics)
            is_eval = step % config.eval.every_steps == 0 or step == num_steps
            is_checkpoint = step % config.train.checkpoint_every_steps == 0 or step == num_steps
            if step % config.train.log_every_steps == 0 or is_eval or is_checkpoint:
                rows, pending = recorder.train_rows(jax.device_get(pending), step), []
                rate = steps.rate  # before the evaluation below
                if is_eval:
                    state = _evaluate(trainer, recorder, state, rows, step, held_out)
                recorder.log(rows, rate, steps.eta(), num_steps)
                if is_checkpoint:
                    recorder.save_latest(state, step)
    return rows
