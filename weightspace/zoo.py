"""Zoo storage: snapshots of trained LSTMs with their behaviour and metadata.

A zoo directory holds

* `npy/`: one NumPy `.npy` file per array, `npy/params/<tensor>.npy` and
  `npy/behaviour/<name>.npy`, each with a leading snapshot axis [N] -- the LSTM
  params of all N snapshots and what was kept of their behaviour (formal
  languages: `sequences` int16 [N, 100, 42] and `log_probs` float16
  [N, 100, 41, 6]). Plain `.npy` files can be memory-mapped, and read row by
  row, so a zoo larger than memory can stay on disk (`load(on_disk=True)`);
* `metadata.json`: readable without JAX -- the LSTM spec, the task family and
  its settings, the build config, per-snapshot columns (`run`, `step`, the
  task's fields, the metrics) and the manifest of the arrays: shape, dtype and
  SHA-256 of every stored array; `sha256` is that of the rest of the document,
  so an edited column (a task, a step) is refused like a flipped byte;
* `COMPLETE`: written last. A directory without it is not a zoo;
* `verified.json` (optional, written by `verify`): the array files whose hash last matched the manifest,
  with their size, times, inode and device then, so that reusing a finished zoo need not hash it again.

Loading checks every array against the manifest and refuses non-finite
values, so a corrupt, truncated or diverged zoo is never used silently. The
checks read each file in chunks: they need no more memory for a zoo kept on
disk than for a small one. Zoos written before `npy/` (their arrays are one
Orbax checkpoint in `arrays/`) load into memory; `upgrade` moves one to
`npy/` in place.

Zoos are written into a temporary sibling directory that is renamed into
place once complete, so nothing half-written ever sits at the zoo's path;
`writer` writes one a block of snapshots at a time, for zoos larger than
memory.
"""

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import mmap
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from absl import logging

from weightspace import checkpointing, files, lstm
from weightspace.errors import UserError
from weightspace.types import Params

FORMAT = "weightspace-zoo"
# 2 added the manifest, 3 the document's own checksum; version 1 zoos load without checksums, version 2
# without a check of their columns (each with a warning). The storage of the arrays
# (`npy/`, or an Orbax checkpoint in `arrays/` before it) is not part of the version: it changes no content,
# and a zoo moved to `npy/` by `upgrade` keeps its metadata, so runs that recorded the zoo still resume on it.
VERSION = 3
_NPY, _ORBAX, _METADATA, _COMPLETE, _VERIFIED = "npy", "arrays", "metadata.json", "COMPLETE", "verified.json"
_CHUNK_BYTES = 1 << 26  # loading checks a file 64 MiB at a time


class ZooError(UserError, ValueError):
    """A zoo directory is missing, incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Zoo:
    """A loaded zoo; every array has a leading snapshot axis [N].

    Arrays are NumPy arrays in memory, or read-only `np.memmap`s of the zoo's files for a zoo loaded with
    `on_disk` (read batches of rows with `take_rows`).

    Attributes:
      params: the LSTM params of every snapshot, {tensor: [N, ...]}.
      behaviour: kept behaviour, e.g. {"sequences": [N, 100, 42], "log_probs": [N, 100, 41, 6]}.
      metadata: per-snapshot columns: "run", "step", the task's fields, the metrics.
      spec: the LSTM's sizes.
      info: family name and settings, build config, and other zoo-level facts.
    """

    params: Params
    behaviour: dict[str, np.ndarray]
    metadata: dict[str, np.ndarray]
    spec: lstm.LSTMSpec
    info: dict[str, Any]

    def __len__(self) -> int:
        return len(self.metadata["run"])

    @property
    def sequences(self) -> np.ndarray:
        return self.behaviour["sequences"]

    @property
    def log_probs(self) -> np.ndarray:
        """Log-probabilities of the LSTM on `sequences` (formal-language zoos)."""
        return self.behaviour["log_probs"]

    @property
    def family(self) -> str:
        return self.info["family"]


def is_complete(path: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(path, _COMPLETE))


def _named(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a nested dict by path, e.g. {"params/weight_hh_l0": ...}."""
    return {
        jax.tree_util.keystr(key, simple=True, separator="/"): np.asarray(array)
        for key, array in jax.tree_util.tree_leaves_with_path(arrays)
    }


def _nested(named: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of `_named` for the zoo's two levels: {"params": {...}, "behaviour": {...}}."""
    arrays = {"params": {}, "behaviour": {}}
    for name, array in named.items():
        part, key = name.split("/", 1)
        arrays.setdefault(part, {})[key] = array
    return arrays


def manifest(arrays: dict[str, Any], hashes: bool = True) -> dict[str, dict[str, Any]]:
    """Shape, dtype and SHA-256 (None without `hashes`) of every array in `arrays`, by path."""
    return {
        name: {
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "sha256": hashlib.sha256(np.ascontiguousarray(array).data).hexdigest() if hashes else None,
        }
        for name, array in _named(arrays).items()
    }


def check_finite(arrays: dict[str, Any], where: str, first: int = 0) -> None:
    """Raises ZooError naming the snapshots (leading axis, numbered from `first`) and arrays with NaN or infinite
    values."""
    _refuse_non_finite(
        where,
        {
            name: first + np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
            for name, array in _named(arrays).items()
            if array.dtype.kind == "f"
        },
    )


def _refuse_non_finite(where: str, bad_rows: dict[str, Any]) -> None:
    """Raises ZooError if any array has rows with NaN or infinite values ({array name: its bad rows})."""
    bad_arrays = [name for name, rows in bad_rows.items() if len(rows)]
    if bad_arrays:
        rows = sorted(set().union(*(set(np.asarray(bad_rows[name]).tolist()) for name in bad_arrays)))
        shown = ", ".join(map(str, rows[:20])) + (f" and {len(rows) - 20} more" if len(rows) > 20 else "")
        raise ZooError(f"{where}: snapshots {shown} have NaN or infinite values (in {', '.join(bad_arrays)}).")


def save(
    path: str | os.PathLike,
    params: Params,
    behaviour: dict[str, np.ndarray],
    metadata: dict[str, np.ndarray],
    spec: lstm.LSTMSpec,
    info: dict[str, Any],
) -> None:
    """Writes a zoo held in memory at `path` (which must not exist) atomically; see the module docstring."""
    with writer(path, len(metadata["run"]), spec, info) as add:
        add(params, behaviour, metadata)


@contextlib.contextmanager
def writer(
    path: str | os.PathLike, num: int, spec: lstm.LSTMSpec, info: dict[str, Any]
) -> Iterator[Callable[[Params, dict[str, np.ndarray], dict[str, np.ndarray]], None]]:
    """Writes a zoo of `num` snapshots at `path` (which must not exist) a block of snapshots at a time.

    Yields `add(params, behaviour, metadata)`, which appends a block of snapshots (every array and
    column with the block's leading axis) to the zoo's `.npy` files, hashing them as it goes: only one
    block is ever in memory. When the block ends, metadata.json (with the manifest) and `COMPLETE` are
    written and the zoo is moved into place; if it raises, or fewer than `num` snapshots were added,
    nothing is left at `path`.
    """
    with files.staged_directory(path) as staging, contextlib.ExitStack() as open_files:
        blocks = _Blocks(str(path), staging, num, spec, open_files)
        yield blocks.add
        blocks.finish(info)


class _Blocks:
    """The state of a `writer`: the open `.npy` files, their hashes, and the metadata columns so far."""

    def __init__(self, path: str, staging: str, num: int, spec: lstm.LSTMSpec, open_files: contextlib.ExitStack):
        self.path, self.staging, self.num, self.spec, self.open_files = path, staging, num, spec, open_files
        self.done, self.files, self.entries, self.digests, self.columns = 0, {}, {}, {}, {}

    def add(self, params: Params, behaviour: dict[str, np.ndarray], metadata: dict[str, np.ndarray]) -> None:
        rows, batch = len(metadata["run"]), lstm.check_params(params, self.spec)
        if batch != (rows,):
            raise ZooError(f"Params have leading shape {batch}, but the metadata describes {rows} snapshots.")
        for name, column in {**behaviour, **metadata}.items():
            if len(column) != rows:
                raise ZooError(f"Column {name!r} has {len(column)} rows, expected {rows}.")
        if self.done + rows > self.num or (self.columns and set(metadata) != set(self.columns)):
            raise ZooError(
                f"A block of {rows} snapshots with columns {sorted(metadata)} does not fit the zoo at {self.path}: "
                f"{self.done} of {self.num} written, columns {sorted(self.columns)}."
            )
        arrays = {"params": params, "behaviour": behaviour}
        named = _named(arrays)
        if self.entries and set(named) != set(self.entries):
            raise ZooError(f"A block with arrays {sorted(named)} does not fit the zoo's {sorted(self.entries)}.")
        check_finite(arrays, f"Refusing to save the zoo at {self.path}", first=self.done)
        for name, array in named.items():
            array = np.ascontiguousarray(array)
            if name not in self.files:
                self._open(name, array)
            entry = self.entries[name]
            if [self.num, *array.shape[1:]] != entry["shape"] or str(array.dtype) != entry["dtype"]:
                raise ZooError(
                    f"Array {name!r} of this block is {array.dtype} {list(array.shape)}; the zoo's is "
                    f"{entry['dtype']} {entry['shape']}."
                )
            self.files[name].write(array.data)
            self.digests[name].update(array.data)
        for name, column in metadata.items():
            self.columns.setdefault(name, []).append(np.asarray(column))
        self.done += rows

    def _open(self, name: str, first_block: np.ndarray) -> None:
        """Opens `name`'s `.npy` file with the header of the whole zoo's array [num, ...]."""
        file = os.path.join(self.staging, _NPY, f"{name}.npy")
        os.makedirs(os.path.dirname(file), exist_ok=True)
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.files[name] = self.open_files.enter_context(os.fdopen(descriptor, "wb"))
        shape = (self.num, *first_block.shape[1:])
        header = {"descr": np.lib.format.dtype_to_descr(first_block.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.files[name], header)
        self.entries[name] = {"shape": list(shape), "dtype": str(first_block.dtype)}
        self.digests[name] = hashlib.sha256()

    def finish(self, info: dict[str, Any]) -> None:
        """Writes metadata.json (with the manifest) and `COMPLETE` once every snapshot was added."""
        if self.done != self.num:
            raise ZooError(f"Only {self.done} of the {self.num} snapshots of the zoo at {self.path} were written.")
        manifest = {name: {**entry, "sha256": self.digests[name].hexdigest()} for name, entry in self.entries.items()}
        document = {
            "format": FORMAT,
            "version": VERSION,
            "num_snapshots": self.num,
            "spec": self.spec.to_dict(),
            **info,
            "arrays": dict(sorted(manifest.items())),
            "snapshots": {name: np.concatenate(blocks).tolist() for name, blocks in self.columns.items()},
        }
        files.write_json(os.path.join(self.staging, _METADATA), sealed(document))
        with open(os.path.join(self.staging, _COMPLETE), "w") as f:
            f.write(f"{self.num}\n")


def _digest(document: dict[str, Any]) -> str:
    """SHA-256 of a metadata document without its own `sha256`, as JSON with sorted keys (as written and read)."""
    body = json.loads(json.dumps(files.strict({k: v for k, v in document.items() if k != "sha256"})))
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sealed(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with its checksum, `sha256`: what `read_metadata` checks."""
    return {**document, "sha256": _digest(document)}


def _write_npy(directory: str, arrays: dict[str, Any]) -> None:
    """One C-ordered `.npy` file per array of `arrays`, at `directory/<path>.npy`."""
    for name, array in _named(arrays).items():
        file = os.path.join(directory, f"{name}.npy")
        os.makedirs(os.path.dirname(file), exist_ok=True)
        np.save(file, np.ascontiguousarray(array))


def upgrade(path: str | os.PathLike) -> bool:
    """Moves the arrays of a zoo written before `npy/` (one Orbax checkpoint) to `npy/` files, in place.

    Returns False for a zoo already in `npy/` alone. The zoo stays complete throughout: `npy/` is
    written aside, checked and renamed into the zoo (loading prefers it), and only then is `arrays/`
    removed. `arrays/` is never removed before an `npy/` beside it has been read back whole against
    the arrays' checksums (those of the manifest, or for a zoo without one, of `arrays/` itself): an
    upgrade killed after its rename is finished, and a stray or partial `npy/` is refused, naming
    it, with nothing removed. The upgrade holds the zoo's lock, so a second one at the same time
    fails at once. metadata.json is not touched, so runs that recorded the zoo still resume on it.
    Nothing may read the zoo while it is upgraded.

    Raises:
      ZooError: the zoo is incomplete or corrupt, another upgrade holds it, or a `npy/` beside
        `arrays/` is not a complete copy of it.
    """
    path = os.path.abspath(path)
    document = read_metadata(path)
    with files.workdir_lock(path, "zoo upgrade", ZooError):
        return _upgrade_locked(path, document)


def _upgrade_locked(path: str, document: dict[str, Any]) -> bool:
    orbax, npy = os.path.join(path, _ORBAX), os.path.join(path, _NPY)
    if not os.path.isdir(orbax):
        return False
    loaded = None
    if "arrays" not in document:  # a version-1 zoo: its own checkpoint gives the checksums
        loaded = _read_orbax(path, document, verify=True)
        document = {**document, "arrays": manifest(loaded)}
    if os.path.isdir(npy):
        try:
            _read_npy(npy, document, verify=True, on_disk=True)
        except ZooError as error:
            raise ZooError(
                f"The zoo at {path} holds both {_ORBAX}/ (its Orbax arrays) and {_NPY}/, and {_NPY}/ is not a "
                f"complete copy of them ({error}). Nothing was removed: move {npy} away, then upgrade again."
            ) from None
        shutil.rmtree(orbax)  # an upgrade killed after its rename: npy/ is whole
        return True
    arrays = loaded if loaded is not None else _read_orbax(path, document, verify=True)
    with files.staged_directory(npy) as staging:
        _write_npy(staging, arrays)
        _read_npy(staging, document, verify=True, on_disk=True)  # every file read back against the checksums
    shutil.rmtree(orbax)
    return True


@functools.cache
def _warn_once(message: str) -> None:
    """Logs a warning about a zoo once per process: its metadata is read again by every step that needs it."""
    logging.warning(message)


def identity(path: str | os.PathLike) -> dict[str, Any]:
    """What a run records of the zoo at `path` (`experiments.run.workdirs`): absolute path, family, LSTM spec,
    snapshot count, metadata checksum.

    The checksum is the SHA-256 of the zoo's metadata document (`read_metadata`, keys sorted): it
    covers the build config and every snapshot's run, step, task and metrics, so a zoo rebuilt
    differently at the same path is told apart without reading its arrays.
    """
    document = read_metadata(path)
    return {
        "path": os.path.abspath(path),
        "family": document.get("family"),
        "spec": document.get("spec"),
        "num_snapshots": document.get("num_snapshots"),
        "metadata_sha256": hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest(),
    }


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The zoo's `metadata.json` as a dict (no arrays loaded); checks completeness."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise ZooError(f"No zoo at {path}: the directory does not exist.")
    if not is_complete(path):
        raise ZooError(
            f"No complete zoo at {path}: {_COMPLETE} is missing (empty directory, or a build that did not finish)."
        )
    metadata_path = os.path.join(path, _METADATA)
    try:
        with open(metadata_path) as f:
            document = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ZooError(f"Cannot read {metadata_path}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ZooError(f"{metadata_path} is not a {FORMAT} metadata file.")
    _check_document(metadata_path, document)
    return document


def _check_document(metadata_path: str, document: dict[str, Any]) -> None:
    """Refuses a metadata.json that was edited (its checksum) or lost what its version promises."""
    version = document.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ZooError(f"{metadata_path} has format version {version!r}; this code reads versions 1 to {VERSION}.")
    if version >= 2 and "arrays" not in document:
        raise ZooError(
            f"{metadata_path} (format version {version}) has lost its manifest of the arrays ('arrays'): it was "
            "edited or damaged. Re-copy or rebuild the zoo."
        )
    if "sha256" in document:
        if document["sha256"] != _digest(document):
            raise ZooError(
                f"{metadata_path} does not match its checksum: it was edited or damaged after it was written "
                "(its columns give every snapshot's task and step). Re-copy or rebuild the zoo."
            )
    elif version >= 3:
        raise ZooError(f"{metadata_path} (format version {version}) has lost its checksum ('sha256'). "
                       "Re-copy or rebuild the zoo.")  # fmt: skip
    elif version == 2:
        _warn_once(f"The zoo's {metadata_path} (format version 2) has no checksum of its own: its columns cannot "
                   "be verified.")  # fmt: skip


def describe(path: str | os.PathLike) -> Zoo:
    """A complete zoo's metadata with its arrays as `jax.ShapeDtypeStruct`s from the manifest (nothing loaded).

    For what needs only the zoo's shapes (planning a job); `load` reads and checks the arrays. A zoo
    without a manifest (format version 1) is loaded to learn them.
    """
    document = read_metadata(path)
    if "arrays" not in document:
        loaded = load(path)
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), (loaded.params, loaded.behaviour))
        return dataclasses.replace(loaded, params=shapes[0], behaviour=shapes[1])
    arrays = _nested({
        name: jax.ShapeDtypeStruct(tuple(entry["shape"]), np.dtype(entry["dtype"]))
        for name, entry in document["arrays"].items()
    })  # fmt: skip
    metadata = {name: np.asarray(values) for name, values in document.pop("snapshots").items()}
    return Zoo(arrays["params"], arrays["behaviour"], metadata, lstm.LSTMSpec(**document["spec"]), _info(document))


def _info(document: dict[str, Any]) -> dict[str, Any]:
    reserved = ("format", "version", "num_snapshots", "spec", "arrays", "sha256")
    return {k: v for k, v in document.items() if k not in reserved}


def load(path: str | os.PathLike, verify: bool = True, on_disk: bool = False) -> Zoo:
    """Loads a complete zoo: into host memory (NumPy arrays), or with `on_disk` as memory maps of its files.

    Args:
      path: the zoo directory.
      verify: check every array's SHA-256 against the manifest; False skips only the hashes, for a
        trusted local zoo (finiteness is always checked).
      on_disk: leave the arrays in the zoo's files (`np.memmap`s; read batches with `take_rows`), for a
        zoo larger than memory. Checking them reads every file once, a chunk at a time.

    Raises:
      ZooError: naming the file or field, when the directory is not a complete,
        consistent zoo (missing, unfinished, corrupt or truncated arrays, params
        that do not match the declared LSTM, NaN or infinite values), or when `on_disk`
        is asked of a zoo whose arrays are an Orbax checkpoint (`upgrade` it).
    """
    path = os.path.abspath(path)
    document = read_metadata(path)
    if not verify:
        logging.warning("Loading the zoo at %s without checking its arrays' checksums (verify=False).", path)
    try:
        spec = lstm.LSTMSpec(**document["spec"])
        num = int(document["num_snapshots"])
        columns = document.pop("snapshots")
    except (KeyError, TypeError, ValueError) as error:
        raise ZooError(f"Malformed {os.path.join(path, _METADATA)}: {error}") from error
    metadata = {name: np.asarray(values) for name, values in columns.items()}
    _require_npy(path)
    arrays = _read_npy(os.path.join(path, _NPY), document, verify, on_disk)
    params = arrays["params"]
    try:
        batch = lstm.check_params(params, spec)
    except ValueError as error:
        raise ZooError(f"Zoo at {path}: params do not match the declared {spec}: {error}") from error
    rows = {"params": batch[0] if len(batch) == 1 else batch}
    rows.update({name: len(column) for name, column in {**arrays["behaviour"], **metadata}.items()})
    for name, count in rows.items():
        if count != num:
            raise ZooError(f"Zoo at {path}: {name!r} has {count} rows, but metadata.json declares {num} snapshots.")
    return Zoo(params=params, behaviour=arrays["behaviour"], metadata=metadata, spec=spec, info=_info(document))


UPGRADE_COMMAND = "python -m experiments.upgrade --path={path}"


def _require_npy(path: str) -> None:
    """Refuses a zoo whose arrays are not `npy/` files: one of an older format names the command that upgrades it."""
    if os.path.isdir(os.path.join(path, _NPY)):
        return
    if os.path.isdir(os.path.join(path, _ORBAX)):
        raise ZooError(
            f"The zoo at {path} stores its arrays in an older format (one Orbax checkpoint, {_ORBAX}/). Upgrade it "
            f"once, in place (runs that recorded it still resume on it): {UPGRADE_COMMAND.format(path=path)}"
        )
    raise ZooError(
        f"The zoo at {path} has lost its arrays: neither {_NPY}/ nor {_ORBAX}/ is there. Restore {_NPY}/ from "
        "a copy, or build the zoo again in a new workdir."
    )


def _read_orbax(path: str, document: dict[str, Any], verify: bool) -> dict[str, Any]:
    """The arrays of a zoo written before `npy/` (one Orbax checkpoint), checked, in memory: read by `upgrade`
    alone."""
    try:
        arrays = checkpointing.restore_pytree(os.path.join(path, _ORBAX))
    except checkpointing.CorruptFileError as error:
        raise ZooError(str(error)) from error
    where = f"Zoo at {path}"
    if "arrays" not in document:
        _warn_once(f"The zoo at {path} has no manifest (format version 1): its arrays cannot be verified.")
    else:
        _check_names(where, os.path.join(path, _ORBAX), _named(arrays), document["arrays"])
        found = manifest(arrays, hashes=verify)
        for name, entry in document["arrays"].items():
            for field in ("shape", "dtype", "sha256"):
                if found[name][field] is not None and found[name][field] != entry[field]:
                    raise _mismatch(where, name, field, found[name][field], entry[field])
    check_finite(arrays, where)
    return arrays


def _check_names(where: str, directory: str, found: Any, expected: dict[str, Any]) -> None:
    if set(found) != set(expected):
        raise ZooError(
            f"{where}: the arrays stored in {directory} {sorted(found)} are not those in metadata.json's "
            f"manifest {sorted(expected)}."
        )


def _mismatch(where: str, name: str, field: str, found: Any, expected: Any) -> ZooError:
    return ZooError(
        f"{where}: the stored array {name!r} does not match metadata.json ({field} {found} != {expected}); "
        "its files are corrupt. Re-copy or rebuild the zoo."
    )


def _read_npy(directory: str, document: dict[str, Any], verify: bool, on_disk: bool) -> dict[str, Any]:
    """The arrays of `npy/`, each file read once in chunks to check it against the manifest and for finiteness.

    Zoos without a manifest (format version 1, upgraded) are checked for finiteness only.
    """
    where = f"Zoo at {os.path.dirname(directory)}"
    named, bad_rows = {}, {}
    for name, entry in _npy_manifest(directory, document).items():
        named[name], bad_rows[name] = _read_checked(where, directory, name, entry, verify, on_disk)
    _refuse_non_finite(where, bad_rows)
    return _nested(named)


def _npy_manifest(directory: str, document: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The manifest entry of every array in `npy/` (None in a zoo without a manifest), once the `.npy` files
    there are those the manifest names."""
    path = os.path.dirname(directory)
    stored = sorted(
        os.path.relpath(os.path.join(root, name), directory).removesuffix(".npy")
        for root, _, names in os.walk(directory)
        for name in names
        if name.endswith(".npy")
    )
    expected = document.get("arrays")
    if expected is None:
        _warn_once(f"The zoo at {path} has no manifest (format version 1): its arrays cannot be verified.")
        expected = {name: None for name in stored}
    _check_names(f"Zoo at {path}", directory, stored, expected)
    return expected


def verify(path: str | os.PathLike) -> None:
    """Checks a complete zoo's arrays as `load` does (manifest, checksums, finiteness) without keeping them:
    a finished zoo is checked before it is reused (the builder's rerun, `experiments.run.workdirs.ensure_zoo`).

    Each `.npy` file whose hash matched is recorded in `verified.json` with its size, times, inode and
    device at that moment; a file with all of them unchanged since is not read again, so a reuse costs a
    `stat` per file. Any change (a write, even with its mtime set back; a replacement; a copy) hashes the
    file again. A zoo in an Orbax checkpoint, or without a manifest, is read whole every time.

    Raises:
      ZooError: one line naming the array (or file) and the zoo, and the fix, when the zoo is incomplete,
        corrupt, truncated or holds non-finite values; nothing is written then.
    """
    path = os.path.abspath(path)
    document = read_metadata(path)
    directory = os.path.join(path, _NPY)
    _require_npy(path)
    where, record_path = f"Zoo at {path}", os.path.join(path, _VERIFIED)
    verified, record, bad_rows = _verification(record_path), {}, {}
    for name, entry in _npy_manifest(directory, document).items():
        state = None if entry is None else _file_state(os.path.join(directory, f"{name}.npy"), entry["sha256"])
        if state is None or verified.get(name) != state:
            _, bad_rows[name] = _read_checked(where, directory, name, entry, verify=True, on_disk=True)
        if state is not None:
            record[name] = state
    _refuse_non_finite(where, bad_rows)
    if record != verified:
        try:
            files.write_json(record_path, record)
        except OSError as error:  # a read-only zoo is still checked, in full each time
            _warn_once(f"Cannot record the verification of the zoo at {path} ({error}): it is hashed at every reuse.")


def _verification(record_path: str) -> dict[str, Any]:
    """What a previous `verify` recorded ({} when there is no readable record: every file is hashed)."""
    try:
        record = files.read_json(record_path)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _file_state(file: str, sha256: str) -> dict[str, Any] | None:
    """What `verify` records of a file whose hash matched `sha256`: its size, times, inode and device, which a
    write, a replacement or a copy changes (ctime even when the mtime is set back). None when it cannot be read."""
    try:
        stat = os.stat(file)
    except OSError:
        return None
    return {
        "sha256": sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "inode": stat.st_ino,
        "device": stat.st_dev,
    }


def _read_checked(
    where: str, directory: str, name: str, entry: dict[str, Any] | None, verify: bool, on_disk: bool
) -> tuple[np.ndarray, set[int]]:
    """One `.npy` file of a zoo, checked: (the array, in memory or an `np.memmap`; rows with non-finite values)."""
    file = os.path.join(directory, f"{name}.npy")
    try:
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = header(f)
            offset, size = f.tell(), os.fstat(f.fileno()).st_size
    except (OSError, ValueError) as error:
        raise ZooError(f"{where}: cannot read {file}: {error}") from error
    declared = entry is None or (list(shape) == entry["shape"] and str(dtype) == entry["dtype"])
    if fortran_order or not declared:
        raise ZooError(
            f"{where}: {file} holds {dtype} {list(shape)}{' in Fortran order' if fortran_order else ''}"
            + ("" if entry is None else f", but metadata.json declares {entry['dtype']} {entry['shape']}")
            + ". Re-copy or rebuild the zoo."
        )
    total = math.prod(shape)
    if size != offset + total * dtype.itemsize:
        raise ZooError(
            f"{where}: {file} has {size - offset} bytes of data, but {dtype} {list(shape)} needs "
            f"{total * dtype.itemsize} (a truncated or damaged copy). Re-copy or rebuild the zoo."
        )
    step = max(1, _CHUNK_BYTES // dtype.itemsize)
    # In memory, the chunks are read into the array itself; on disk, into one reused buffer.
    array = np.empty(shape, dtype) if not on_disk else None
    flat = array.reshape(-1) if not on_disk else np.empty(min(total, step), dtype)
    digest, bad_rows, row_size = hashlib.sha256(), set(), max(1, math.prod(shape[1:]))
    with open(file, "rb") as f:
        f.seek(offset)
        for start in range(0, total, step):
            chunk = flat[start : start + step] if not on_disk else flat[: min(step, total - start)]
            if f.readinto(chunk.view(np.uint8)) != chunk.nbytes:
                raise ZooError(f"{where}: {file} ended early: it changed while it was read.")
            if verify:
                digest.update(chunk)
            if dtype.kind == "f":
                bad_rows.update(((np.flatnonzero(~np.isfinite(chunk)) + start) // row_size).tolist())
    if verify and entry is not None and digest.hexdigest() != entry["sha256"]:
        raise _mismatch(where, name, "sha256", digest.hexdigest(), entry["sha256"])
    if on_disk:
        array = np.memmap(file, dtype=dtype, mode="r", offset=offset, shape=shape)
    return array, bad_rows


def take_rows(array: np.ndarray, *indices: np.ndarray) -> np.ndarray:
    """`array[indices]` [B, ...] for integer index arrays [B] over the leading axes, as a new NumPy array.

    A zoo array kept on disk (an `np.memmap` from `load(on_disk=True)`) is read with `pread`, one row at
    a time, or at once for consecutive rows: the pages a memory map reads count towards the process's
    resident memory until the kernel reclaims them, a read into a fresh buffer does not. Rows read from
    disk are checked for finiteness again, as the file may have changed since it was loaded.

    Raises:
      ZooError: the indices are not integer 1-D arrays of one length within their axes (the same in
        memory and on disk), or the file was truncated, or overwritten with non-finite values, after it
        was loaded.
    """
    indices = _checked_indices(array.shape, indices)
    if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)):  # not the file's own map
        return np.asarray(array[indices])
    rows = np.ravel_multi_index(indices, array.shape[: len(indices)])
    out = np.empty((len(rows), *array.shape[len(indices) :]), array.dtype)
    if not len(rows):
        return out
    size = out[0].nbytes
    data = memoryview(out.reshape(-1).view(np.uint8))
    consecutive = rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1)
    reads = (
        [(0, len(data), int(rows[0]) * size)]
        if consecutive
        else zip(range(0, len(data), size), range(size, len(data) + 1, size), (rows * size).tolist(), strict=True)
    )
    descriptor = os.open(array.filename, os.O_RDONLY)
    try:
        for start, stop, position in reads:
            if os.preadv(descriptor, [data[start:stop]], array.offset + position) != stop - start:
                raise ZooError(f"{array.filename} ended before byte {array.offset + position + stop - start}: "
                               "the zoo's file was truncated after it was loaded.")  # fmt: skip
    finally:
        os.close(descriptor)
    if out.dtype.kind == "f" and not np.isfinite(out).all():  # checked at load, so the file changed since
        bad = rows[~np.isfinite(out.reshape(len(rows), -1)).all(axis=1)]
        raise ZooError(f"{array.filename} holds NaN or infinite values in rows {sorted(set(bad.tolist()))[:10]} "
                       "that were finite when the zoo was loaded: the file was overwritten. Re-copy or rebuild "
                       "the zoo.")  # fmt: skip
    return out


def _checked_indices(shape: tuple[int, ...], indices: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
    """`take_rows`'s indices as NumPy arrays, refused unless 1 to len(shape) integer 1-D arrays of one length,
    each within [0, n) of the axis it indexes: in memory NumPy would read a boolean as a mask, a negative index
    from the end and a 2-D index as the result's shape, where a read from disk would not."""
    arrays = tuple(np.asarray(index) for index in indices)
    valid = 1 <= len(arrays) <= len(shape) and all(
        np.issubdtype(a.dtype, np.integer)
        and a.ndim == 1
        and a.shape == arrays[0].shape
        and (not a.size or 0 <= a.min() <= a.max() < n)
        for a, n in zip(arrays, shape, strict=False)
    )
    if not valid:
        given = "; ".join(
            f"{a.dtype} {list(a.shape)}" + (f" from {a.min()} to {a.max()}" if a.size and a.dtype.kind in "iuf" else "")
            for a in arrays
        )
        raise ZooError(
            f"take_rows reads an array {list(shape)} by 1 to {len(shape)} integer 1-D index arrays of one length "
            f"over its leading axes, each within [0, the size of its axis); it was given {len(arrays)}: "
            f"{given or 'none'}."
        )
    return arrays
