"""What a job of several processes (JAX's distributed runtime) needs besides its jitted steps.

Host data becomes global arrays without any transfer between processes; only the first process writes
the files every process shares; each process holds a workdir lock of its own; every process must see
the workdir the first one writes (a shared filesystem); barriers. In a one-process run each of these is
the plain single-process operation, and nothing is exchanged.
"""

import contextlib
import hashlib
import os
import secrets

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from numpy.typing import ArrayLike

from weightspace import files
from weightspace.types import PyTree

WORKDIR_TOKEN = ".job_token"


def is_primary() -> bool:
    """Whether this process writes the files all processes share (process 0)."""
    return jax.process_index() == 0


def write_json(path: str, document) -> None:
    """Writes a JSON file every process shares (`files.write_json`), from process 0 only."""
    if is_primary():
        files.write_json(path, document)


def global_array(host: ArrayLike, sharding: jax.sharding.Sharding) -> jax.Array:
    """A global array from a value every process holds in full (each process places its own shards).

    Unlike `jax.device_put` onto devices of several processes, nothing is compared between processes:
    the caller guarantees that every process passes the same value (e.g. read from the same file).
    Typed PRNG keys keep their type.
    """
    if isinstance(host, jax.Array) and jnp.issubdtype(host.dtype, jax.dtypes.prng_key):
        data = global_array(jax.random.key_data(host), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(host))
    host = np.asarray(host)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put(tree: PyTree, sharding: jax.sharding.Sharding) -> PyTree:
    """Every leaf of `tree` as a `global_array` on `sharding`."""
    return jax.tree.map(lambda leaf: global_array(leaf, sharding), tree)


def workdir_lock(workdir: str, holder: str, error: type[Exception]) -> contextlib.AbstractContextManager[None]:
    """This process's lock on `workdir` (`files.workdir_lock`): process 0 holds `.lock`, process i `.lock.process{i}`.

    A second job on the same workdir fails at once on every process, naming the holder.
    """
    index = jax.process_index()
    lock_file = files.LOCK_FILE if index == 0 else f"{files.LOCK_FILE}.process{index}"
    return files.workdir_lock(workdir, holder, error, lock_file)


def check_shared_workdir(workdir: str, error: type[Exception]) -> None:
    """Raises `error` on every process unless every process sees the workdir that process 0 writes.

    Process 0 writes a random token into the workdir; each process reads it back; all learn who could
    not. Every process raises together, so none is left waiting for the others in a collective.
    """
    if jax.process_count() == 1:
        return
    token = multihost_utils.broadcast_one_to_all(np.frombuffer(secrets.token_bytes(16), np.uint8))
    path, expected = os.path.join(workdir, WORKDIR_TOKEN), bytes(token).hex()
    if is_primary():
        files.write_text(path, expected)
    barrier("check_shared_workdir")  # not naming the workdir: the processes' paths may differ
    try:
        with open(path) as f:
            sees = f.read() == expected
    except OSError:
        sees = False
    seen = multihost_utils.process_allgather(np.array([sees]), tiled=True)
    if not seen.all():
        blind = np.flatnonzero(~seen).tolist()
        raise error(
            f"Processes {blind} of this {jax.process_count()}-process job do not see {workdir} as process 0 "
            "writes it: every process must share the workdir (the same shared filesystem at the same path)."
        )


def check_same_config(config_json: str, error: type[Exception]) -> None:
    """Raises `error` on every process unless every process of the job was given the same config.

    Each process hashes its config (as JSON); all learn every hash, so all raise together, naming
    the processes whose config is not process 0's.
    """
    if jax.process_count() == 1:
        return
    digest = np.frombuffer(hashlib.sha256(config_json.encode()).digest(), np.uint32)
    digests = multihost_utils.process_allgather(digest[None], tiled=True)  # [processes, 8]
    differing = np.flatnonzero((digests != digests[0]).any(axis=1)).tolist()
    if differing:
        raise error(
            f"Processes {differing} of this {jax.process_count()}-process job were started with another config "
            "than process 0: give every process the same --config and --config.* overrides."
        )


def barrier(name: str) -> None:
    """Waits until every process of the job reaches the barrier `name` (nothing in a one-process run)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
