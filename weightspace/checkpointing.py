"""Saving and restoring pytrees with Orbax (the only module that imports it).

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so an interrupted save never leaves a directory that restores.
"""

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

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


class CheckpointManager:
    """Latest-k checkpoints of a training state in a directory, by step.

    Every process of a multi-process job saves and restores together; with `process_local`, the calling
    process reads alone (e.g. one process evaluating a run that several trained).
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 1, process_local: bool = False):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not process_local,  # Orbax cannot create it for one process; one that reads needs none
            # A save cut short by a kill leaves a temporary directory; the next start removes it.
            cleanup_tmp_directories=True,
            multiprocessing_options=_multiprocessing(process_local, os.path.basename(os.path.abspath(directory))),
        )
        self._manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)

    @property
    def directory(self) -> str:
        return os.fspath(self._manager.directory)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: PyTree, metrics: dict[str, Any] | None = None) -> None:
        """Saves in the background; `wait` or the next save finishes it."""
        self._manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)

    def restore(self, step: int, abstract: PyTree) -> PyTree:
        """Restores `step` onto the shardings given in `abstract`."""
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # as in `restore_pytree`
            raise CorruptFileError(
                f"Cannot restore checkpoint step {step} in {self.directory}: {_cause(error)}"
            ) from error

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
