"""Saving and restoring pytrees with Orbax (the only module that imports it).

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so an interrupted save never leaves a directory that restores. A
`CheckpointManager` then writes the SHA-256 of every file of the step into it
(`checksums.json`) and checks them before it offers the step again: a damaged
checkpoint is set aside and the previous good one is used, saying so.
"""

import hashlib
import os
import shutil
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from weightspace import files, multihost
from weightspace.errors import UserError
from weightspace.types import PyTree


class CorruptFileError(UserError, ValueError):
    """A stored file or checkpoint is missing, truncated or unreadable."""


def abstract_of(tree: PyTree, sharding: jax.sharding.Sharding | None = None) -> PyTree:
    """`tree` as `jax.ShapeDtypeStruct`s to restore onto: on `sharding`, or where each leaf now lives."""

    def struct(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding if sharding is None else sharding)

    return jax.tree.map(struct, tree)


def _multiprocessing(process_local: bool, name: str | None = None) -> ocp.options.MultiprocessingOptions:
    """Orbax's coordination: every process of the job together, or the calling process alone.

    `name` prefixes the job's barriers: two managers saving the same step at once (a run's latest and
    best checkpoints) would otherwise meet at the same barrier and fail.
    """
    if not process_local:
        return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)
    here = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=here, active_processes={here}, barrier_sync_key_prefix=name)


def _checkpointer(process_local: bool) -> ocp.StandardCheckpointer:
    """A checkpointer for every process of the job (device arrays), or for the calling process alone."""
    return ocp.StandardCheckpointer(multiprocessing_options=_multiprocessing(process_local))


def save_pytree(path: str | os.PathLike, tree: PyTree) -> None:
    """Saves `tree` at `path` (which must not exist yet) and waits until it is written.

    A tree of device arrays is saved by every process of a multi-process job together (each writes its
    shards); a tree of NumPy arrays only is this process's own, and it saves it alone.
    """
    checkpointer = _checkpointer(process_local=not any(isinstance(x, jax.Array) for x in jax.tree.leaves(tree)))
    checkpointer.save(os.path.abspath(path), tree)
    checkpointer.wait_until_finished()
    checkpointer.close()


def restore_pytree(path: str | os.PathLike, abstract: PyTree | None = None) -> PyTree:
    """Restores a pytree saved by `save_pytree`.

    Args:
      path: the checkpoint directory.
      abstract: a tree of `jax.ShapeDtypeStruct` (with shardings) to restore
        onto devices (every process of a multi-process job calls it); when None,
        every array is returned as a NumPy array, to the calling process alone.

    Raises:
      CorruptFileError: naming the path, when it is missing or unreadable.
    """
    path = os.path.abspath(path)
    checkpointer = _checkpointer(process_local=abstract is None)
    try:
        if abstract is None:
            metadata = checkpointer.metadata(path).item_metadata
            if metadata is None:
                raise CorruptFileError(f"Cannot read the checkpoint at {path}: its metadata is missing or unreadable.")
            metadata = metadata.tree
            device = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
            return jax.tree.map(np.asarray, checkpointer.restore(path, abstract_of(metadata, device)))
        return checkpointer.restore(path, abstract)
    except CorruptFileError:
        raise
    except Exception as error:  # TensorStore raises bare Exceptions for damaged files
        raise CorruptFileError(f"Cannot read the checkpoint at {path}: {_cause(error)}") from error
    finally:
        checkpointer.close()


def _cause(error: Exception) -> str:
    """The first line of an Orbax/TensorStore error (their messages go on with a dump of the array spec)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text.split(" See full TensorStore details")[0]
    return f"the files are truncated, damaged or missing ({text[:300]})"


CHECKSUMS = "checksums.json"


def _file_digests(step_directory: str) -> dict[str, str]:
    """SHA-256 of every file of a checkpoint step but its checksums, by path relative to it."""
    digests = {}
    for root, _, names in os.walk(step_directory):
        for name in names:
            file = os.path.join(root, name)
            relative = os.path.relpath(file, step_directory)
            if relative != CHECKSUMS:
                with open(file, "rb") as f:
                    digests[relative] = hashlib.file_digest(f, "sha256").hexdigest()
    return dict(sorted(digests.items()))


def _damage(step_directory: str) -> str | None:
    """Why a checkpoint step does not match its checksums (None: it does)."""
    try:
        recorded = files.read_json(os.path.join(step_directory, CHECKSUMS))
    except FileNotFoundError:
        return f"it has no {CHECKSUMS} (a save cut short, or files removed)"
    except (OSError, ValueError) as error:
        return f"its {CHECKSUMS} is unreadable ({error})"
    found = _file_digests(step_directory)
    changed = sorted(name for name in set(recorded) | set(found) if recorded.get(name) != found.get(name))
    return f"its files {changed[:3]} differ from its checksums" if changed else None


def _steps(directory: str) -> list[int]:
    """The finished checkpoint steps in a manager's directory, newest first."""
    if not os.path.isdir(directory):
        return []
    return sorted((int(n) for n in os.listdir(directory) if n.isdigit()), reverse=True)


class CheckpointManager:
    """Latest-k checkpoints of a training state in a directory, by step, each checked against its checksums.

    Every process of a multi-process job saves and restores together; with `process_local`, the calling
    process reads alone (e.g. one process evaluating a run that several trained). At the start, the
    newest steps that do not match their checksums are skipped with a warning and, by a manager that
    saves, moved to `<directory>.damaged/` (nothing is deleted): `latest_step` is then the previous good
    one. A directory written before checksums (none has them) is used unchecked, with a warning.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2, process_local: bool = False):
        directory = os.path.abspath(directory)
        self._unsealed: list[int] = []
        self._damaged = _check_newest(directory)
        if not process_local:
            if jax.process_index() == 0:
                _set_aside(directory, self._damaged)
            multihost.barrier(f"checked-{os.path.basename(directory)}")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not process_local,  # Orbax cannot create it for one process; one that reads needs none
            # Done by `_set_aside`: Orbax's own cleanup runs in a thread that `close` does not wait for.
            cleanup_tmp_directories=False,
            multiprocessing_options=_multiprocessing(process_local, os.path.basename(os.path.abspath(directory))),
        )
        self._manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)

    @property
    def directory(self) -> str:
        return os.fspath(self._manager.directory)

    def latest_step(self) -> int | None:
        """The newest good step (None: there is none)."""
        steps = [s for s in self._manager.all_steps() if s not in self._damaged]
        return max(steps) if steps else None

    def save(self, step: int, state: PyTree, metrics: dict[str, Any] | None = None) -> None:
        """Saves in the background; `wait` or the next save finishes it (and writes its checksums)."""
        self.wait()
        self._manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)
        self._unsealed.append(step)

    def restore(self, step: int, abstract: PyTree) -> PyTree:
        """Restores `step` onto the shardings given in `abstract`."""
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # as in `restore_pytree`
            raise CorruptFileError(
                f"Cannot restore checkpoint step {step} in {self.directory}: {_cause(error)}"
            ) from error

    def wait(self) -> None:
        """Waits for the save in progress, then writes the checksums of every step saved since the last wait."""
        self._manager.wait_until_finished()
        for step in self._unsealed:
            path = os.path.join(self.directory, str(step))
            if jax.process_index() == 0 and os.path.isdir(path):  # not already removed by max_to_keep
                files.write_json(os.path.join(path, CHECKSUMS), _file_digests(path))
        self._unsealed = []

    def close(self) -> None:
        self.wait()
        self._manager.close()


def set_aside_after(directory: str | os.PathLike, step: int | None, why: str) -> list[int]:
    """Moves the steps newer than `step` (None: every step) to `<directory>.<why>/`, nothing deleted; before a
    manager opens the directory. Returns the steps moved."""
    directory = os.path.abspath(directory)
    newer = [s for s in _steps(directory) if step is None or s > step]
    for moved in newer:
        logging.warning("Setting checkpoint step %d in %s aside to %s.%s/.", moved, directory, directory, why)
    _set_aside(directory, newer, why)
    return newer


def _set_aside(directory: str, steps: list[int], why: str = "damaged") -> None:
    """Moves `steps` to `<directory>.<why>/` and removes the temporary directories of saves cut short."""
    aside = f"{directory}.{why}"
    if steps:
        os.makedirs(aside, exist_ok=True)
    for step in steps:
        shutil.move(os.path.join(directory, str(step)), os.path.join(aside, f"{step}-{time.time_ns()}"))
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if ".orbax-checkpoint-tmp" in name:  # Orbax renames a save to its step once it is complete
                shutil.rmtree(os.path.join(directory, name))


def _check_newest(directory: str) -> list[int]:
    """The steps newer than the newest one that matches its checksums, each named in a warning.

    A directory where no step has checksums (written before them) is not checked.
    """
    steps = _steps(directory)
    if not any(os.path.exists(os.path.join(directory, str(s), CHECKSUMS)) for s in steps):
        if steps:
            logging.warning("The checkpoints in %s have no checksums (written before them): unchecked.", directory)
        return []
    damaged = []
    for step in steps:
        why = _damage(os.path.join(directory, str(step)))
        if why is None:
            break
        damaged.append(step)
        logging.warning("Checkpoint step %d in %s is damaged: %s. Using the previous one.", step, directory, why)
    if len(damaged) == len(steps):
        logging.warning("No checkpoint in %s is good: starting from the beginning.", directory)
    return damaged
