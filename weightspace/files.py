"""Writing files and directories so that nothing half-written looks complete."""

import contextlib
import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from weightspace.errors import UserError

LOCK_FILE = ".lock"


class WorkdirBusyError(UserError, RuntimeError):
    """Another live process holds a workdir's lock."""


def _partial_prefix(path: str) -> str:
    return f".{os.path.basename(path)}.partial-"


def remove_partials(path: str | os.PathLike) -> None:
    """Removes the temporary siblings that `staged_directory(path)` left when its process was killed."""
    path = os.path.abspath(path)
    parent, prefix = os.path.dirname(path), _partial_prefix(path)
    if os.path.isdir(parent):
        for name in os.listdir(parent):
            if name.startswith(prefix):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary sibling directory that becomes `path` when the block succeeds.

    `path` must not exist. If the block raises, the temporary directory is
    removed and `path` is never created; one left by a killed process is
    removed by the next call (the caller holds the workdir, e.g. its lock).
    """
    path = os.path.abspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"Refusing to overwrite {path}: a directory or file is already there.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    remove_partials(path)
    staging = tempfile.mkdtemp(prefix=_partial_prefix(path), dir=parent)
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is meant to be shared
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path next to `path` to write to; it replaces `path` only when the block succeeds."""
    path = os.fspath(path)
    root, extension = os.path.splitext(path)
    temporary = f"{root}.partial{extension}"  # keeps the extension (np.save appends .npy otherwise)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def strict(document: Any) -> Any:
    """`document` with every non-finite float (an undefined metric) replaced by None (as JSON reads back)."""
    if isinstance(document, dict):
        return {k: strict(v) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [strict(v) for v in document]
    if isinstance(document, float) and not math.isfinite(document):
        return None
    return document


def write_json(path: str | os.PathLike, document: Any) -> None:
    """Writes strict JSON (NaN and infinities as null) through a temporary file and a rename."""
    with atomic_path(path) as temporary, open(temporary, "w") as f:
        json.dump(strict(document), f, indent=1, allow_nan=False)


class DamagedFileError(UserError, ValueError):
    """A file the project wrote no longer reads back (cut short or edited)."""


def read_json(path: str | os.PathLike) -> Any:
    """The JSON document at `path`; a `DamagedFileError` naming the file when it does not parse."""
    with open(path) as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DamagedFileError(
                f"{path} is not valid JSON ({error}): it was cut short or edited. Restore it from a copy, or "
                "move its directory away and run the command again."
            ) from None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes text through a temporary file and a rename."""
    with atomic_path(path) as temporary, open(temporary, "w") as f:
        f.write(text)


def flatten(document: dict, prefix: str = "") -> dict[str, Any]:
    """A nested JSON object as {dotted path: leaf value}, e.g. {"optim.lr": 1e-4}."""
    flat = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


_ABSENT = "(absent)"


def config_changes(saved: dict, current: dict, may_change: tuple[str, ...] = ()) -> list[str]:
    """How a recorded config (as JSON) differs from the current one: ["key: old -> new", ...], sorted.

    Keys in `may_change`, and everything under them (a key names a sub-config), are not compared.
    """
    saved, current = flatten(saved), flatten(current)
    return [
        f"{key}: {saved.get(key, _ABSENT)!r} -> {current.get(key, _ABSENT)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, _ABSENT) != current.get(key, _ABSENT)
        and not any(key == k or key.startswith(k + ".") for k in may_change)
    ]


@contextlib.contextmanager
def workdir_lock(
    workdir: str | os.PathLike, holder: str, error: type[Exception] = WorkdirBusyError, lock_file: str = LOCK_FILE
) -> Iterator[None]:
    """Holds an exclusive lock on `workdir` (its `.lock` file) while the block runs.

    The lock is an `flock`, which the OS drops when its holder exits or is
    killed, so a lock left behind by a dead process is simply taken over. The
    holder writes its pid into the file, so that a refused process can say who
    holds it.

    Args:
      workdir: an existing directory.
      holder: what takes the lock, for the message ("zoo builder", "training run").
      error: the exception raised when another process holds the lock.
      lock_file: the lock's file name in `workdir` (each process of a multi-process job holds its own).

    Raises:
      error: naming the workdir and the holder's pid, at once (no waiting).
    """
    path = os.path.join(os.fspath(workdir), lock_file)
    # Opened without truncation: the holder's pid must stay readable to a refused process.
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = handle.read().strip() or "unknown"
            raise error(
                f"Another {holder} (pid {pid}) is writing {workdir} (it holds {path}); "
                "wait for it to finish or stop it."
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate(0)
