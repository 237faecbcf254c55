"""Zoo storage: snapshots of trained LSTMs with their behaviour and metadata.

A zoo directory holds

* `arrays/`: an Orbax pytree `{"params": {tensor: [N, ...]}, "behaviour":
  {name: [N, ...]}}` -- the LSTM params of all N snapshots and what was kept
  of their behaviour (formal languages: `sequences` int16 [N, 100, 42] and
  `log_probs` float16 [N, 100, 41, 6]);
* `metadata.json`: readable without JAX -- the LSTM spec, the task family and
  its settings, the build config, and per-snapshot columns (`run`, `step`,
  the task's fields, the metrics);
* `COMPLETE`: written last. A directory without it is not a zoo.

Zoos are written into a temporary sibling directory that is renamed into
place once complete, so nothing half-written ever sits at the zoo's path.
"""

import dataclasses
import json
import os
from typing import Any

import numpy as np

from weightspace import checkpointing, files, lstm
from weightspace.types import Params

FORMAT = "weightspace-zoo"
VERSION = 1
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
    with files.staged_directory(path) as staging:
        checkpointing.save_pytree(os.path.join(staging, _ARRAYS), {"params": params, "behaviour": behaviour})
        document = {
            "format": FORMAT,
            "version": VERSION,
            "num_snapshots": num,
            "spec": spec.to_dict(),
            **info,
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


def load(path: str | os.PathLike) -> Zoo:
    """Loads a complete zoo into host memory (NumPy arrays).

    Raises:
      ZooError: naming the file or field, when the directory is not a complete,
        consistent zoo (missing, unfinished, corrupt, or params that do not
        match the declared LSTM).
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
    info = {k: v for k, v in document.items() if k not in ("format", "version", "num_snapshots", "spec")}
    return Zoo(params=params, behaviour=arrays["behaviour"], metadata=metadata, spec=spec, info=info)
