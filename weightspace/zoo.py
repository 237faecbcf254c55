"""Zoo storage: snapshots of trained LSTMs with their behaviour and metadata.

A zoo directory holds

* `arrays/`: an Orbax pytree `{"params": {tensor: [N, ...]}, "behaviour":
  {name: [N, ...]}}` -- the LSTM params of all N snapshots and what was kept
  of their behaviour (formal languages: `sequences` int16 [N, 100, 42] and
  `log_probs` float16 [N, 100, 41, 6]);
* `metadata.json`: readable without JAX -- the LSTM spec, the task family and
  its settings, the build config, per-snapshot columns (`run`, `step`, the
  task's fields, the metrics) and the manifest of `arrays/`: shape, dtype and
  SHA-256 of every stored array;
* `COMPLETE`: written last. A directory without it is not a zoo.

Loading checks every array against the manifest and refuses non-finite
values, so a corrupt, truncated or diverged zoo is never used silently.

Zoos are written into a temporary sibling directory that is renamed into
place once complete, so nothing half-written ever sits at the zoo's path.
"""

import dataclasses
import hashlib
import json
import os
from typing import Any

import jax
import numpy as np
from absl import logging

from weightspace import checkpointing, files, lstm
from weightspace.types import Params

FORMAT = "weightspace-zoo"
VERSION = 2  # 2 added the manifest; version 1 zoos load without checksums (with a warning)
_ARRAYS, _METADATA, _COMPLETE = "arrays", "metadata.json", "COMPLETE"


class ZooError(ValueError):
    """A zoo directory is missing, incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Zoo:
    """A loaded zoo; every array has a leading snapshot axis [N].

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


def check_finite(arrays: dict[str, Any], where: str) -> None:
    """Raises ZooError naming the snapshots (leading axis) and arrays with NaN or infinite values."""
    bad_rows, bad_arrays = set(), []
    for name, array in _named(arrays).items():
        if array.dtype.kind != "f":
            continue
        rows = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
        if len(rows):
            bad_rows.update(rows.tolist())
            bad_arrays.append(name)
    if bad_rows:
        rows = sorted(bad_rows)
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
    """Writes a zoo at `path` (which must not exist) atomically; see the module docstring."""
    batch = lstm.check_params(params, spec)
    num = len(metadata["run"])
    if batch != (num,):
        raise ZooError(f"Params have leading shape {batch}, but the metadata describes {num} snapshots.")
    for name, column in {**behaviour, **metadata}.items():
        if len(column) != num:
            raise ZooError(f"Column {name!r} has {len(column)} rows, expected {num}.")
    arrays = {"params": params, "behaviour": behaviour}
    check_finite(arrays, f"Refusing to save the zoo at {path}")
    with files.staged_directory(path) as staging:
        checkpointing.save_pytree(os.path.join(staging, _ARRAYS), arrays)
        document = {
            "format": FORMAT,
            "version": VERSION,
            "num_snapshots": num,
            "spec": spec.to_dict(),
            **info,
            "arrays": manifest(arrays),
            "snapshots": {name: np.asarray(column).tolist() for name, column in metadata.items()},
        }
        files.write_json(os.path.join(staging, _METADATA), document)
        with open(os.path.join(staging, _COMPLETE), "w") as f:
            f.write(f"{num}\n")


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
    if document.get("format") != FORMAT:
        raise ZooError(f"{metadata_path} is not a {FORMAT} metadata file.")
    return document


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
    arrays = {"params": {}, "behaviour": {}}
    for name, entry in document["arrays"].items():
        part, key = name.split("/", 1)
        arrays[part][key] = jax.ShapeDtypeStruct(tuple(entry["shape"]), np.dtype(entry["dtype"]))
    metadata = {name: np.asarray(values) for name, values in document.pop("snapshots").items()}
    info = {k: v for k, v in document.items() if k not in ("format", "version", "num_snapshots", "spec", "arrays")}
    return Zoo(arrays["params"], arrays["behaviour"], metadata, lstm.LSTMSpec(**document["spec"]), info)


def load(path: str | os.PathLike, verify: bool = True) -> Zoo:
    """Loads a complete zoo into host memory (NumPy arrays).

    Args:
      path: the zoo directory.
      verify: check every array's SHA-256 against the manifest (about a quarter
        of the load time); False skips only the hashes, for a trusted local zoo.

    Raises:
      ZooError: naming the file or field, when the directory is not a complete,
        consistent zoo (missing, unfinished, corrupt or truncated arrays, params
        that do not match the declared LSTM, NaN or infinite values).
    """
    document = read_metadata(path)
    try:
        spec = lstm.LSTMSpec(**document["spec"])
        num = int(document["num_snapshots"])
        columns = document.pop("snapshots")
    except (KeyError, TypeError, ValueError) as error:
        raise ZooError(f"Malformed {os.path.join(path, _METADATA)}: {error}") from error
    metadata = {name: np.asarray(values) for name, values in columns.items()}
    try:
        arrays = checkpointing.restore_pytree(os.path.join(path, _ARRAYS))
    except checkpointing.CorruptFileError as error:
        raise ZooError(str(error)) from error
    _check_manifest(path, document, arrays, verify)
    check_finite(arrays, f"Zoo at {path}")
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
    info = {k: v for k, v in document.items() if k not in ("format", "version", "num_snapshots", "spec", "arrays")}
    return Zoo(params=params, behaviour=arrays["behaviour"], metadata=metadata, spec=spec, info=info)


def _check_manifest(path: str | os.PathLike, document: dict[str, Any], arrays: dict[str, Any], verify: bool) -> None:
    """Refuses arrays that differ from the manifest in metadata.json (names, shapes, dtypes, and hashes if `verify`)."""
    if "arrays" not in document:
        logging.warning("The zoo at %s has no manifest (format version 1): its arrays cannot be verified.", path)
        return
    expected = document["arrays"]
    found = manifest(arrays, hashes=verify)
    if set(found) != set(expected):
        raise ZooError(
            f"Zoo at {path}: the stored arrays {sorted(found)} are not those in metadata.json's manifest "
            f"{sorted(expected)}."
        )
    for name, entry in expected.items():
        for field in ("shape", "dtype", "sha256"):
            if found[name][field] is not None and found[name][field] != entry[field]:
                raise ZooError(
                    f"Zoo at {path}: the stored array {name!r} does not match metadata.json ({field} "
                    f"{found[name][field]} != {entry[field]}); the files in {os.path.join(path, _ARRAYS)} are "
                    "corrupt. Re-copy or rebuild the zoo."
                )
