"""Builds a zoo in a workdir: trains the runs group by group, snapshots them,
checkpoints the training state, resumes after an interruption, and finally
assembles the zoo (`weightspace.zoo` format) and a `zoo.json` summary.

Workdir layout:
  build_config.json      the config of the build (a resumed build must match)
  layout.json            the group size fixed at the first start
  checkpoints/group_G/   latest training state of the group in progress (Orbax)
  parts/group_G/step_S/  the snapshots of group G at step S (Orbax)
  zoo/                   the finished zoo (written last, atomically)
  zoo.json               summary of the finished zoo
  tensorboard/           TensorBoard event files: mean loss and rate as the build goes (`_Log`)
"""

import dataclasses
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from importlib import metadata as importlib_metadata

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from weightspace import checkpointing, files, lstm, multihost, ownership, progress, sharding, tasks, tensorboard, zoo
from weightspace.errors import UserError
from weightspace.types import Params, PyTree
from zoo_builder import train
from zoo_builder.configs import schema

DEFAULT_RUNS_PER_DEVICE = {"cpu": 1}
ACCELERATOR_RUNS_PER_DEVICE = 256
# Config keys that may change between a build and its resumption.
_EXECUTION_KEYS = ("train.steps_per_call", "train.checkpoint_every_steps", "layout", "log_every_seconds")


class BuildError(UserError, RuntimeError):
    """The build cannot start or continue (bad config, busy or mismatched workdir)."""


def check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Records the config on the first start; on a resume or a finished build, refuses a changed one.

    The recorded config is `build_config.json`, or for a finished zoo without it, the zoo's own.
    """
    path = os.path.join(workdir, "build_config.json")
    current = json.loads(config.to_json())
    zoo_path = os.path.join(workdir, "zoo")
    if os.path.exists(path):
        saved = files.read_json(path)
    elif zoo.is_complete(zoo_path):
        saved, path = zoo.read_metadata(zoo_path)["build_config"], os.path.join(zoo_path, "metadata.json")
    else:
        multihost.write_json(path, current)
        return
    changed = files.config_changes(saved, current, _EXECUTION_KEYS)
    if changed:
        raise BuildError(
            f"{workdir} holds a build with another config; it differs in {'; '.join(changed)}. "
            f"Use a new workdir, or the config recorded in {path}."
        )


def runs_per_device(config: ml_collections.ConfigDict, backend: str, num_devices: int) -> int:
    """Runs each device trains at once: `layout.runs_per_device`, else the backend's default, at most its share."""
    per_device = config.layout.runs_per_device or DEFAULT_RUNS_PER_DEVICE.get(backend, ACCELERATOR_RUNS_PER_DEVICE)
    return min(per_device, -(-config.num_runs // num_devices))


def group_size(config: ml_collections.ConfigDict, workdir: str, num_devices: int) -> int:
    """Runs per group: fixed at the first start (recorded in layout.json) so a resume regroups identically.

    A resume must run on the devices the build started on: another device count shards the same
    groups differently, and XLA's reductions then round differently.
    """
    path = os.path.join(workdir, "layout.json")
    if os.path.exists(path):
        layout = files.read_json(path)
        started_on = (layout["num_devices"], layout["backend"])
        if started_on != (num_devices, jax.default_backend()):
            raise BuildError(
                f"The build in {workdir} started on {started_on[0]} {started_on[1]} devices (layout.json); resumed "
                f"on {num_devices} {jax.default_backend()} devices, the rest of its zoo would differ in the last "
                f"bits from an uninterrupted build. Resume on {started_on[0]} {started_on[1]} devices "
                f"(on CPU: --cpu_devices={started_on[0]}), or use a new workdir."
            )
        return layout["group_size"]
    size = num_devices * runs_per_device(config, jax.default_backend(), num_devices)
    multihost.write_json(path, {"group_size": size, "num_devices": num_devices, "backend": jax.default_backend()})
    return size


def check_snapshot_steps(steps) -> tuple[int, ...]:
    steps = tuple(int(s) for s in steps)
    if not steps or list(steps) != sorted(set(steps)) or steps[0] < 0:
        raise BuildError(f"train.snapshot_steps must be increasing non-negative steps, got {steps}.")
    return steps


def _part_path(workdir: str, group: int, step: int) -> str:
    return os.path.join(workdir, "parts", f"group_{group:05d}", f"step_{step:08d}")


class _Log:
    """Logs rate, loss and ETA (`progress.Progress` of model-steps) at most every `every` seconds.

    Process 0 also writes the mean loss of its runs and the rate to TensorBoard event files in `logdir`
    ("build/mean_loss", "build/model_steps_per_s"), against the build step `group * last_step + step`,
    which goes on increasing across groups.
    """

    def __init__(self, total_model_steps: int, every: float, logdir: str, last_step: int):
        self.progress, self.every, self.last = progress.Progress(total_model_steps), every, time.time()
        self.logdir, self.last_step = logdir, last_step
        self.events: tensorboard.EventWriter | None = None

    def start_group(self, group: int, step: int, group_size: int) -> None:
        """Group `group` trains from `step` (0, or its checkpoint's). The first group to train opens the
        event file from there: TensorBoard drops what a killed build logged after it."""
        self.progress.skip(group_size * step)
        if self.events is None:
            self.events = tensorboard.EventWriter(self.logdir, resumed_step=self._build_step(group, step))

    def close(self) -> None:
        """Closes the event file, if a group was trained."""
        if self.events is not None:
            self.events.close()

    def _build_step(self, group: int, step: int) -> int:
        return group * self.last_step + step

    def update(self, model_steps: int, group: int, num_groups: int, step: int, losses) -> None:
        """Counts `model_steps` more of group `group` (after its `start_group`), now at `step`."""
        self.progress.advance(model_steps)
        if time.time() - self.last < self.every and step != self.last_step:
            return
        self.last = time.time()
        # This process's runs only: when to log is each process's own clock, so nothing here may be collective.
        last = np.concatenate([np.asarray(shard.data)[-1] for shard in losses.addressable_shards])
        mean_loss, rate = float(np.mean(last)), self.progress.rate
        logging.info(
            "group %d/%d step %d/%d | %.0f model-steps/s | mean loss %.4f | ETA %s",
            group + 1, num_groups, step, self.last_step, rate, mean_loss, self.progress.eta(),
        )  # fmt: skip
        self.events.scalars(
            self._build_step(group, step), {"build/mean_loss": mean_loss, "build/model_steps_per_s": rate}
        )
        if not np.all(np.isfinite(last)):
            logging.warning(
                "%d runs of group %d have a non-finite loss at step %d.", np.sum(~np.isfinite(last)), group, step
            )


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses an empty workdir and out-of-range config values, naming each key and its allowed range.

    Called before anything is written, so a corrected command is not refused as "another config".
    """
    problems = [] if workdir else ["the workdir is empty (give --workdir=DIR)"]
    if workdir and os.path.exists(workdir) and not os.path.isdir(workdir):
        problems.append(f"the workdir {workdir} is a file, not a directory (give --workdir=DIR)")
    zoo_path = os.path.join(workdir, "zoo")
    if workdir and os.path.exists(zoo_path) and not zoo.is_complete(zoo_path):
        # A build moves its zoo into place complete, so an incomplete one there was altered.
        problems.append(
            f"{zoo_path} is there but is not a complete zoo (its COMPLETE file is missing): move it away to "
            "build it again, or restore that file if the zoo is intact"
        )
    problems += schema.problems(config)
    if problems:
        raise BuildError(f"Bad zoo build settings: {'; '.join(problems)}.")


def build(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Builds (or finishes, or finds) the zoo of `config` in `workdir`; returns the zoo's path.

    A finished workdir is checked against the config like an unfinished one, and what a kill after
    the zoo was renamed into place left undone (`zoo.json`, removing `parts/`) is finished.
    """
    validate(config, workdir)
    workdir = os.path.abspath(workdir)
    zoo_path = os.path.join(workdir, "zoo")
    ownership.claim(workdir, "zoo_build")
    with multihost.workdir_lock(workdir, "zoo builder", BuildError):
        multihost.check_shared_workdir(workdir, BuildError)
        multihost.check_same_config(config.to_json(), BuildError)
        check_config(config, workdir)
        if not zoo.is_complete(zoo_path):
            _build_locked(config, workdir, zoo_path)
        elif multihost.is_primary():
            zoo.verify(zoo_path)  # a finished zoo is reused only if its arrays still match their checksums
            logging.info("The zoo in %s is complete; nothing to do.", zoo_path)
        _finish(workdir, zoo_path)
        multihost.barrier("zoo_builder.build: zoo finished")  # the others wait while process 0 assembles it
    return zoo_path


def _finish(workdir: str, zoo_path: str) -> None:
    """Writes `zoo.json` if it is missing and removes the build's intermediate files."""
    if not multihost.is_primary():
        return
    summary_path = os.path.join(workdir, "zoo.json")
    if not os.path.exists(summary_path):
        files.write_json(summary_path, summarize(zoo_path))
    for name in ("parts", "checkpoints"):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    files.remove_partials(zoo_path)


def _refuse_diverged(finite: jax.Array, run_ids: np.ndarray, num_runs: int, step: int) -> None:
    """Stops the build, naming the runs, when a run's params are no longer finite (a zoo cannot hold them)."""
    finite = np.asarray(jax.device_get(finite)) | (run_ids >= num_runs)  # the last group's padding does not count
    if not finite.all():
        raise BuildError(
            f"Runs {run_ids[~finite].tolist()} diverged (NaN or infinite params) by step {step}; a zoo cannot "
            "hold them. Lower the learning rate (train.lr_points) or change the seed, in a new workdir."
        )


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What every group of a build shares: the runs' family and LSTM, the steps to stop at, the devices and
    the compiled functions (`train.compile_fns`); made once per build by `_set_up`."""

    config: ml_collections.ConfigDict
    workdir: str
    family: tasks.TaskFamily
    spec: lstm.LSTMSpec
    snapshot_steps: tuple[int, ...]
    # Checkpoint every this many steps.
    every: int
    # The steps a training call must stop at (snapshots and checkpoints), increasing.
    boundaries: list[int]
    # Runs per group (`group_size`).
    size: int
    # [size] run ids of each group; the last group's padding has ids >= config.num_runs.
    groups: list[np.ndarray]
    runs_sharding: jax.sharding.NamedSharding
    replicated: jax.sharding.NamedSharding
    init_fn: Callable
    train_fn: Callable
    snapshot_fn: Callable
    # [size] uint32 run ids -> the runs' keys, split over the devices.
    keys_fn: Callable
    # params -> [runs] bool, whether every param of a run is finite.
    finite_fn: Callable

    @property
    def last_step(self) -> int:
        """The last snapshot step, where every run stops training."""
        return self.snapshot_steps[-1]


@dataclasses.dataclass(frozen=True)
class _Group:
    """One group of runs being trained: its index and the per-run inputs of its training calls."""

    index: int
    run_ids: np.ndarray  # [size] int, on the host
    ids: jax.Array  # [size] uint32, split over the devices
    keys: jax.Array  # [size] the runs' keys
    task: tasks.Task  # each entry [size, ...]


def _all_finite_fn(replicated: jax.sharding.NamedSharding) -> Callable:
    """Jitted params -> [runs] bool, whether every param of a run is finite; replicated so that every process
    can read it whole (`_refuse_diverged`)."""
    return jax.jit(
        lambda params: jnp.all(jnp.stack([jnp.isfinite(x.reshape(x.shape[0], -1)).all(1) for x in params.values()]), 0),
        out_shardings=replicated,
    )  # [runs] whether every param of a run is finite


def _set_up(config: ml_collections.ConfigDict, workdir: str) -> _Setup:
    """Makes what the groups share, compiled for the devices, and logs what the build will do.

    The group size is the one recorded at the first start (`group_size`), so a resume regroups identically.
    """
    family = tasks.make(config.task.name, config.task.settings)
    spec = lstm.LSTMSpec(family.input_size, config.lstm.hidden_size, config.lstm.num_layers, family.output_size)
    snapshot_steps = check_snapshot_steps(config.train.snapshot_steps)
    every = int(config.train.checkpoint_every_steps)
    boundaries = sorted(set(snapshot_steps) | set(range(every, snapshot_steps[-1], every)))

    mesh = sharding.mesh("models")
    size = group_size(config, workdir, mesh.size)
    groups = [np.arange(first, first + size) for first in range(0, config.num_runs, size)]
    runs_sharding = sharding.split(mesh)
    schedule = train.learning_rate_schedule(config.train.lr_points)
    init_fn, train_fn, snapshot_fn = train.compile_fns(family, schedule, mesh)
    keys_fn = jax.jit(lambda ids: train.run_keys(config.seed, ids), out_shardings=runs_sharding)
    replicated = sharding.replicated(mesh)
    finite_fn = _all_finite_fn(replicated)
    logging.info(
        "Building a %s zoo of %d runs (%s, %d params each) in %d groups of %d on %d %s device(s); workdir %s",
        family.name, config.num_runs, spec, spec.num_params, len(groups), size, mesh.size, jax.default_backend(),
        workdir,
    )  # fmt: skip
    return _Setup(
        config=config,
        workdir=workdir,
        family=family,
        spec=spec,
        snapshot_steps=snapshot_steps,
        every=every,
        boundaries=boundaries,
        size=size,
        groups=groups,
        runs_sharding=runs_sharding,
        replicated=replicated,
        init_fn=init_fn,
        train_fn=train_fn,
        snapshot_fn=snapshot_fn,
        keys_fn=keys_fn,
        finite_fn=finite_fn,
    )


def _build_locked(config: ml_collections.ConfigDict, workdir: str, zoo_path: str) -> None:
    """Trains the groups not yet snapshotted, then (process 0) assembles the zoo and writes `zoo.json`.

    Called by `build` under the workdir's lock, once the config matches the one the workdir records.
    """
    start = time.time()
    setup = _set_up(config, workdir)
    events_dir = os.path.join(workdir, tensorboard.DIRECTORY)
    log = _Log(len(setup.groups) * setup.size * setup.last_step, config.log_every_seconds, events_dir, setup.last_step)
    host_data, data_info = setup.family.data()
    data = multihost.put(host_data, setup.replicated)

    try:
        for g, run_ids in enumerate(setup.groups):
            _train_group(setup, g, run_ids, data, log)
    finally:
        log.close()

    if multihost.is_primary():
        _write_zoo(setup, zoo_path, data_info, start, log.progress.share_done_here)


def _train_group(setup: _Setup, g: int, run_ids: np.ndarray, data: PyTree, log: _Log) -> None:
    """Trains group `g` from its checkpoint (or step 0) to the last step, saving its snapshots, then removes
    its checkpoints; a group whose snapshots are all saved is only counted as done."""
    if all(os.path.isdir(_part_path(setup.workdir, g, s)) for s in setup.snapshot_steps):
        log.progress.skip(setup.size * setup.last_step)
        return
    ids = multihost.global_array(run_ids.astype(np.uint32), setup.runs_sharding)
    task = multihost.put(setup.family.sample_tasks(setup.config.seed, run_ids), setup.runs_sharding)
    group = _Group(g, run_ids, ids, setup.keys_fn(ids), task)
    checkpoint_dir = os.path.join(setup.workdir, "checkpoints", f"group_{g:05d}")
    manager = checkpointing.CheckpointManager(checkpoint_dir)
    step, state = _start_group(setup, group, manager, checkpoint_dir)
    log.start_group(g, step, setup.size)
    _train_steps(setup, group, data, step, state, manager, log)
    manager.close()
    if multihost.is_primary():
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _start_group(
    setup: _Setup, group: _Group, manager: checkpointing.CheckpointManager, checkpoint_dir: str
) -> tuple[int, PyTree]:
    """The group's (step, training state): its latest checkpoint's, else a fresh state at step 0."""
    step = manager.latest_step()
    if step is None:
        return 0, setup.init_fn(setup.spec, group.keys, group.task)
    abstract = checkpointing.abstract_of(
        jax.eval_shape(setup.init_fn, setup.spec, group.keys, group.task), setup.runs_sharding
    )
    state = manager.restore(step, abstract)
    logging.info("Resuming group %d/%d at step %d from %s", group.index + 1, len(setup.groups), step, checkpoint_dir)
    return step, state


def _train_steps(
    setup: _Setup,
    group: _Group,
    data: PyTree,
    step: int,
    state: PyTree,
    manager: checkpointing.CheckpointManager,
    log: _Log,
) -> None:
    """Trains the group from `step` to the last step, in calls that stop at every snapshot step (to save the
    snapshot, unless saved) and checkpoint step (to save the state, except at the last step)."""
    while True:
        if step in setup.snapshot_steps and not os.path.isdir(_part_path(setup.workdir, group.index, step)):
            _save_snapshot(setup, group, data, state["params"], step)
        if step == setup.last_step:
            return
        num_steps = min(setup.config.train.steps_per_call, next(b for b in setup.boundaries if b > step) - step)
        state, losses = setup.train_fn(state, group.keys, group.task, data, jnp.int32(step), num_steps)
        step += num_steps
        log.update(setup.size * num_steps, group.index, len(setup.groups), step, losses)
        if step % setup.every == 0 and step != setup.last_step:
            manager.save(step, state)


def _save_snapshot(setup: _Setup, group: _Group, data: PyTree, params: Params, step: int) -> None:
    """Saves the group's snapshot at `step` (params, behaviour, metrics, run ids, tasks) as a part, after
    refusing diverged runs (a zoo cannot hold them)."""
    _refuse_diverged(setup.finite_fn(params), group.run_ids, setup.config.num_runs, step)
    behaviour, metrics = setup.snapshot_fn(params, group.keys, group.task, data, jnp.int32(step))
    part = {
        "params": params,
        "behaviour": behaviour,
        "metrics": metrics,
        "run": group.ids,
        "task": group.task,
    }
    checkpointing.save_pytree(_part_path(setup.workdir, group.index, step), part)


def _write_zoo(setup: _Setup, zoo_path: str, data_info: dict, start: float, trained_share: float) -> None:
    """Process 0's end of a build: assembles the parts into the zoo, then writes `zoo.json` with the wall time
    since `start` and the share of the build's model-steps this process trained (below 1 where it resumed a
    build: the wall time is then this process's part of it)."""
    assemble(
        setup.config, setup.workdir, zoo_path, setup.family, setup.spec, setup.groups, setup.snapshot_steps, data_info
    )
    files.write_json(
        os.path.join(setup.workdir, "zoo.json"),
        {**summarize(zoo_path), "wall_time_s": round(time.time() - start, 2), "trained_share": trained_share},
    )
    logging.info("Zoo complete: %s (%.0f s)", zoo_path, time.time() - start)


def assemble(config, workdir, zoo_path, family, spec, groups, snapshot_steps, data_info) -> None:
    """Gathers the parts into the final zoo (run-major, then step), one group in memory at a time."""
    info = {
        "family": family.name,
        "family_settings": config.task.settings.to_dict(),
        "build_config": json.loads(config.to_json()),
        "snapshot_steps": list(snapshot_steps),
        "data": data_info,
        "built_with": {
            "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
            "versions": {
                "python": platform.python_version(),
                **{p: importlib_metadata.version(p) for p in ("jax", "jaxlib", "optax", "orbax-checkpoint", "numpy")},
            },
        },
    }
    with zoo.writer(zoo_path, config.num_runs * len(snapshot_steps), spec, info) as add:
        for g in range(len(groups)):
            add(*_group_snapshots(config, workdir, g, snapshot_steps))


def _group_snapshots(config, workdir: str, group: int, snapshot_steps) -> tuple[dict, dict, dict]:
    """The (params, behaviour, metadata) of one group's snapshots, run-major, then step, padding dropped."""
    parts = [checkpointing.restore_pytree(_part_path(workdir, group, s)) for s in snapshot_steps]
    stacked = jax.tree.map(lambda *xs: np.stack(xs, axis=1), *parts)  # [runs, steps, ...] for every leaf
    keep = stacked["run"][:, 0] < config.num_runs  # drop the padding of the last group
    flat = jax.tree.map(lambda x: x[keep].reshape(-1, *x.shape[2:]), stacked)
    metadata = {
        "run": flat["run"].astype(np.int64),
        "step": np.tile(np.asarray(snapshot_steps, np.int64), int(keep.sum())),
        **{name: np.asarray(v) for name, v in flat["task"].items()},
        **{name: np.asarray(v) for name, v in flat["metrics"].items()},
    }
    return flat["params"], flat["behaviour"], metadata


def summarize(zoo_path: str) -> dict:
    """The summary written to `zoo.json`, from the zoo's metadata alone: sizes, tasks, mean metrics per step."""
    document = zoo.read_metadata(zoo_path)
    family = tasks.make(document["family"], document.get("family_settings"))
    columns = {name: np.asarray(values) for name, values in document["snapshots"].items()}
    task_fields = list(tasks.task_columns(family, columns))
    metric_fields = [name for name in columns if name not in ("run", "step", *task_fields)]
    steps = document["snapshot_steps"]
    task_rows = np.concatenate([columns[name].reshape(len(columns["run"]), -1) for name in task_fields], axis=1)
    return {
        "zoo": zoo_path,
        "family": family.name,
        "num_runs": len(np.unique(columns["run"])),
        "num_snapshots": document["num_snapshots"],
        "snapshot_steps": steps,
        "num_distinct_tasks": len(np.unique(task_rows, axis=0)),
        "data": document.get("data"),
        "mean_metrics_per_step": {
            name: {str(s): round(float(np.mean(columns[name][columns["step"] == s])), 6) for s in steps}
            for name in metric_fields
        },
        "spec": document["spec"],
        **document.get("built_with", {}),
    }
