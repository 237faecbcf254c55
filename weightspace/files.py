"""Writing files and directories so that nothing half-written looks complete."""

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary sibling directory that becomes `path` when the block succeeds.

    `path` must not exist. If the block raises, the temporary directory is
    removed and `path` is never created.
    """
    path = os.path.abspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"Refusing to overwrite {path}: a directory or file is already there.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.partial-", dir=parent)
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


def _strict(document: Any) -> Any:
    """`document` with every non-finite float (an undefined metric) replaced by None."""
    if isinstance(document, dict):
        return {k: _strict(v) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [_strict(v) for v in document]
    if isinstance(document, float) and not math.isfinite(document):
        return None
    return document


def write_json(path: str | os.PathLike, document: Any) -> None:
    """Writes strict JSON (NaN and infinities as null) through a temporary file and a rename."""
    with atomic_path(path) as temporary, open(temporary, "w") as f:
        json.dump(_strict(document), f, indent=1, allow_nan=False)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes text through a temporary file and a rename."""
    with atomic_path(path) as temporary, open(temporary, "w") as f:
        f.write(text)
