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
"""

import contextlib
import json
import os
import platform
import shutil
import time
from importlib import metadata as importlib_metadata

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from weightspace import checkpointing, files, lstm, tasks, zoo
from zoo_builder import train

DEFAULT_RUNS_PER_DEVICE = {"cpu": 1}
ACCELERATOR_RUNS_PER_DEVICE = 256
# Config keys that may change between a build and its resumption.
_EXECUTION_KEYS = ("train.steps_per_call", "train.checkpoint_every_steps", "layout", "log_every_seconds")


class BuildError(RuntimeError):
    """The build cannot start or continue (bad config, busy or mismatched workdir)."""


def workdir_lock(workdir: str) -> contextlib.AbstractContextManager[None]:
    """Holds the workdir's lock (`files.workdir_lock`): a second builder fails at once, naming the holder."""
    return files.workdir_lock(workdir, "zoo builder", BuildError)


def check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Records the config on the first start; on a resume, refuses a changed one."""
    path = os.path.join(workdir, "build_config.json")
    current = json.loads(config.to_json())
    if not os.path.exists(path):
        _write_json(path, current)
        return
    with open(path) as f:
        saved = json.load(f)
    saved, current = files.flatten(saved), files.flatten(current)
    changed = sorted(
        key
        for key in set(saved) | set(current)
        if saved.get(key) != current.get(key) and not any(key == k or key.startswith(k + ".") for k in _EXECUTION_KEYS)
    )
    if changed:
        raise BuildError(
            f"{workdir} holds a build with another config (differs in {changed}); "
            "use a new workdir or the config in build_config.json."
        )


def _write_json(path: str, document) -> None:
    """Writes JSON from the first process only (all processes see the same filesystem)."""
    if jax.process_index() == 0:
        files.write_json(path, document)


def group_size(config: ml_collections.ConfigDict, workdir: str, num_devices: int) -> int:
    """Runs per group: fixed at the first start (recorded in layout.json) so a resume regroups identically."""
    path = os.path.join(workdir, "layout.json")
    if os.path.exists(path):
        with open(path) as f:
            size = json.load(f)["group_size"]
        if size % num_devices:
            raise BuildError(
                f"{path} fixes groups of {size} runs, which {num_devices} devices cannot share evenly; "
                "resume on a device count that divides it."
            )
        return size
    per_device = config.layout.runs_per_device or DEFAULT_RUNS_PER_DEVICE.get(
        jax.default_backend(), ACCELERATOR_RUNS_PER_DEVICE
    )
    size = num_devices * min(per_device, -(-config.num_runs // num_devices))
    _write_json(path, {"group_size": size, "num_devices": num_devices, "backend": jax.default_backend()})
    return size


def _check_snapshot_steps(steps) -> tuple[int, ...]:
    steps = tuple(int(s) for s in steps)
    if not steps or list(steps) != sorted(set(steps)) or steps[0] < 0:
        raise BuildError(f"train.snapshot_steps must be increasing non-negative steps, got {steps}.")
    return steps


def _global(array: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
    """A global array from host data every process holds in full; each takes its own shard."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _part_path(workdir: str, group: int, step: int) -> str:
    return os.path.join(workdir, "parts", f"group_{group:05d}", f"step_{step:08d}")


class _Progress:
    """Prints rate, loss and ETA at most every `every` seconds."""

    def __init__(self, total_model_steps: int, every: float):
        self.total, self.every = total_model_steps, every
        self.start = self.last = time.time()
        self.done = 0

    def update(self, model_steps: int, group: int, num_groups: int, step: int, last_step: int, losses) -> None:
        self.done += model_steps
        now = time.time()
        if now - self.last < self.every and step != last_step:
            return
        self.last = now
        losses = np.asarray(jax.device_get(jnp.stack([jnp.mean(losses[-1]), jnp.sum(~jnp.isfinite(losses[-1]))])))
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / max(rate, 1e-9)
        logging.info(
            "group %d/%d step %d/%d | %.0f model-steps/s | mean loss %.4f | ETA %s",
            group + 1, num_groups, step, last_step, rate, losses[0], time.strftime("%H:%M:%S", time.gmtime(eta)),
        )  # fmt: skip
        if losses[1]:
            logging.warning("%d runs of group %d have a non-finite loss at step %d.", losses[1], group, step)


def validate(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses an empty workdir and out-of-range config values, naming each key and its allowed range."""
    problems = [] if workdir else ["the workdir is empty (give --workdir=DIR)"]
    for key in ("num_runs", "train.steps_per_call", "train.checkpoint_every_steps"):
        value = config[key]
        if not value >= 1:
            problems.append(f"{key}={value!r} must be >= 1")
    if problems:
        raise BuildError(f"Bad zoo build settings: {'; '.join(problems)}.")


def build(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Builds (or finishes, or finds) the zoo of `config` in `workdir`; returns the zoo's path."""
    validate(config, workdir)
    workdir = os.path.abspath(workdir)
    zoo_path = os.path.join(workdir, "zoo")
    if zoo.is_complete(zoo_path):
        logging.info("The zoo in %s is complete; nothing to do.", zoo_path)
        return zoo_path
    os.makedirs(workdir, exist_ok=True)
    with workdir_lock(workdir):
        return _build_locked(config, workdir, zoo_path)


def _build_locked(config: ml_collections.ConfigDict, workdir: str, zoo_path: str) -> str:
    start = time.time()
    check_config(config, workdir)
    family = tasks.make(config.task.name, config.task.settings)
    spec = lstm.LSTMSpec(family.input_size, config.lstm.hidden_size, config.lstm.num_layers, family.output_size)
    snapshot_steps = _check_snapshot_steps(config.train.snapshot_steps)
    last_step = snapshot_steps[-1]
    every = int(config.train.checkpoint_every_steps)
    boundaries = sorted(set(snapshot_steps) | set(range(every, last_step, every)))

    mesh = train.make_mesh()
    size = group_size(config, workdir, mesh.size)
    groups = [np.arange(first, first + size) for first in range(0, config.num_runs, size)]
    runs_sharding = jax.sharding.NamedSharding(mesh, jax.P("models"))
    schedule = train.learning_rate_schedule(config.train.lr_points)
    init_fn, train_fn, snapshot_fn = train.compile_fns(family, schedule, mesh)
    keys_fn = jax.jit(lambda ids: train.run_keys(config.seed, ids), out_shardings=runs_sharding)
    logging.info(
        "Building a %s zoo of %d runs (%s, %d params each) in %d groups of %d on %d %s device(s); workdir %s",
        family.name, config.num_runs, spec, spec.num_params, len(groups), size, mesh.size, jax.default_backend(),
        workdir,
    )  # fmt: skip
    progress = _Progress(len(groups) * size * last_step, config.log_every_seconds)
    replicated = jax.sharding.NamedSharding(mesh, jax.P())
    host_data, data_info = family.data()
    data = jax.tree.map(lambda x: _global(np.asarray(x), replicated), host_data)

    for g, run_ids in enumerate(groups):
        if all(os.path.isdir(_part_path(workdir, g, s)) for s in snapshot_steps):
            progress.done += size * last_step
            continue
        ids = _global(run_ids.astype(np.uint32), runs_sharding)
        task = {k: _global(v, runs_sharding) for k, v in family.sample_tasks(config.seed, run_ids).items()}
        keys = keys_fn(ids)
        checkpoint_dir = os.path.join(workdir, "checkpoints", f"group_{g:05d}")
        manager = checkpointing.CheckpointManager(checkpoint_dir)
        step = manager.latest_step()
        if step is None:
            step, state = 0, init_fn(spec, keys, task)
        else:
            abstract = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=runs_sharding),
                jax.eval_shape(init_fn, spec, keys, task),
            )
            state = manager.restore(step, abstract)
            logging.info("Resuming group %d/%d at step %d from %s", g + 1, len(groups), step, checkpoint_dir)
        progress.done += size * step
        while True:
            if step in snapshot_steps and not os.path.isdir(_part_path(workdir, g, step)):
                behaviour, metrics = snapshot_fn(state["params"], keys, task, data, jnp.int32(step))
                part = {"params": state["params"], "behaviour": behaviour, "metrics": metrics, "run": ids, "task": task}
                checkpointing.save_pytree(_part_path(workdir, g, step), part)
            if step == last_step:
                break
            num_steps = min(config.train.steps_per_call, next(b for b in boundaries if b > step) - step)
            state, losses = train_fn(state, keys, task, data, jnp.int32(step), num_steps)
            step += num_steps
            progress.update(size * num_steps, g, len(groups), step, last_step, losses)
            if step % every == 0 and step != last_step:
                manager.save(step, state)
        manager.close()
        if jax.process_index() == 0:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    if jax.process_index() == 0:
        summary = assemble(config, workdir, zoo_path, family, spec, groups, snapshot_steps, data_info)
        summary["wall_time_s"] = round(time.time() - start, 2)
        _write_json(os.path.join(workdir, "zoo.json"), summary)
        logging.info(
            "Zoo complete: %s (%d snapshots, %.0f s)", zoo_path, summary["num_snapshots"], summary["wall_time_s"]
        )
    return zoo_path


def assemble(config, workdir, zoo_path, family, spec, groups, snapshot_steps, data_info) -> dict:
    """Gathers the parts into the final zoo (run-major, then step) and returns its summary."""
    per_group = []
    for g in range(len(groups)):
        parts = [checkpointing.restore_pytree(_part_path(workdir, g, s)) for s in snapshot_steps]
        # [runs, steps, ...] for every leaf of the part.
        per_group.append(jax.tree.map(lambda *xs: np.stack(xs, axis=1), *parts))
    stacked = jax.tree.map(lambda *xs: np.concatenate(xs), *per_group)
    keep = stacked["run"][:, 0] < config.num_runs  # drop the padding of the last group
    flat = jax.tree.map(lambda x: x[keep].reshape(-1, *x.shape[2:]), stacked)
    num_runs, num_steps = int(keep.sum()), len(snapshot_steps)
    metadata = {
        "run": flat["run"].astype(np.int64),
        "step": np.tile(np.asarray(snapshot_steps, np.int64), num_runs),
        **{name: np.asarray(v) for name, v in flat["task"].items()},
        **{name: np.asarray(v) for name, v in flat["metrics"].items()},
    }
    info = {
        "family": family.name,
        "family_settings": config.task.settings.to_dict(),
        "build_config": json.loads(config.to_json()),
        "snapshot_steps": list(snapshot_steps),
        "data": data_info,
    }
    zoo.save(zoo_path, flat["params"], flat["behaviour"], metadata, spec, info)
    shutil.rmtree(os.path.join(workdir, "parts"), ignore_errors=True)

    task_rows = np.concatenate([v.reshape(num_runs * num_steps, -1) for v in flat["task"].values()], axis=1)
    per_step = {
        name: {
            str(s): round(float(np.mean(values.reshape(num_runs, num_steps)[:, i])), 6)
            for i, s in enumerate(snapshot_steps)
        }
        for name, values in flat["metrics"].items()
    }
    return {
        "zoo": zoo_path,
        "family": family.name,
        "num_runs": num_runs,
        "num_snapshots": num_runs * num_steps,
        "snapshot_steps": list(snapshot_steps),
        "num_distinct_tasks": len(np.unique(task_rows, axis=0)),
        "data": data_info,
        "mean_metrics_per_step": per_step,
        "spec": spec.to_dict(),
        "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        "versions": {
            "python": platform.python_version(),
            **{p: importlib_metadata.version(p) for p in ("jax", "jaxlib", "optax", "orbax-checkpoint", "numpy")},
        },
    }
