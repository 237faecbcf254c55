"""Import and export of the paper's released zoo layout (formal languages).

The paper's code stores a formal-language zoo as a directory of `.npy` files,
one row per snapshot, in the order the snapshots were taken (run-major):

* `parameters.npy` float32 [N, P]: the flat parameter vector in reference
  order (`weightspace.lstm.to_flat`; P = 13,766 for the 2x32 LSTM);
* `sequences.npy` int16 [N, S, L]: S token sequences sampled from the LSTM,
  BOS first (paper: S = 100, L = 42);
* `logits.npy` float16 [N, S, L - 1, V]: the LSTM's log-softmax at the input
  positions 0 .. L - 2 (V = 6 symbols);
* `tasks.npy` int [N, 4]: the task `(0, d1, d2, d3)`;
* `num_step_correct.npy` int [N, 3]: run index, training step, and the number
  of correct sequences among the `num_scored_sequences` scored (paper: 1000);
* `args.json`: the arguments of the paper's zoo-building script.

A quirk of the paper's files: for a sampled sequence without EOS, the paper's
acceptance check overwrote the first token (BOS) with EOS in place before the
sequence was saved, while the stored log-probs were computed from BOS. The
import therefore reads position 0 of every sequence as BOS.
"""

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from weightspace import files, lstm, zoo
from weightspace.tasks import formal_languages
from weightspace.tasks.formal_languages import FormalLanguages

PARAMETERS, SEQUENCES, LOGITS = "parameters.npy", "sequences.npy", "logits.npy"
TASKS, NUM_STEP_CORRECT, ARGS = "tasks.npy", "num_step_correct.npy", "args.json"
FILES = (PARAMETERS, SEQUENCES, LOGITS, TASKS, NUM_STEP_CORRECT, ARGS)

# Keys of args.json that hold the LSTM's sizes: the paper's script names
# first, then plainer names a hand-written args.json may use.
_HIDDEN_SIZE_KEYS = ("rnn_hidden_size", "hidden_size")
_NUM_LAYERS_KEYS = ("rnn_num_layers", "num_layers")
_DEFAULT_HIDDEN_SIZE, _DEFAULT_NUM_LAYERS = 32, 2
# FormalLanguages setting -> args.json key. The paper's script takes only
# `sequence_length` and `max_n` as arguments (it hard-codes the rest); the
# other keys are the ones `export_reference` adds.
_SETTING_KEYS = {
    "length": "sequence_length",
    "max_n": "max_n",
    "batch_size": "batch_size",
    "weight_decay_value": "weight_decay",
    "num_scored_sequences": "num_scored_sequences",
    "cycle_tasks": "cycle_tasks",
}
# True of every zoo this codebase builds; an imported zoo's own args.json
# values take precedence when it is exported again.
_BUILT_ZOO_ARGS = {"one_hot_input": 1, "random_seq_prob": 0.0}


class ReferenceFormatError(ValueError):
    """A directory in the reference layout is missing, corrupt or inconsistent, or a zoo cannot be exported."""


def _on_host() -> contextlib.AbstractContextManager:
    """Runs JAX ops on the CPU: converting a whole zoo's params need not fit on, or travel to, an accelerator."""
    return jax.default_device(jax.local_devices(backend="cpu")[0])


def _load_array(src: str, name: str) -> np.ndarray:
    """Opens `src/name` memory-mapped, so shapes are checked before any data is read."""
    path = os.path.join(src, name)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as error:
        raise ReferenceFormatError(f"{path} is missing; the reference layout needs {list(FILES)}.") from error
    except (ValueError, EOFError, OSError) as error:
        raise ReferenceFormatError(f"Cannot read {path} (truncated or not a .npy file?): {error}") from error


def _check_array(array: np.ndarray, path: str, kinds: str, *axes: tuple[str, int | None]) -> None:
    """Checks `array`'s dtype kind and its shape against `axes`: (what the axis counts, its size or None for any)."""
    sizes = [size for _, size in axes]
    if array.ndim != len(axes) or any(s not in (None, a) for s, a in zip(sizes, array.shape, strict=True)):
        expected = ", ".join(name if size is None else f"{size} {name}" for name, size in axes)
        raise ReferenceFormatError(f"{path} has shape {tuple(array.shape)}, expected [{expected}].")
    if array.dtype.kind not in kinds:
        kind = "a floating-point" if kinds == "f" else "an integer"
        raise ReferenceFormatError(f"{path} has dtype {array.dtype}, expected {kind} dtype.")


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


def import_reference(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Converts a zoo in the reference layout (see the module docstring) into a zoo at `dst`.

    The LSTM takes and predicts the 6 symbols (checked against `logits.npy`);
    its hidden size and depth come from args.json (`rnn_hidden_size` /
    `hidden_size`, `rnn_num_layers` / `num_layers`), else 32 and 2. Position
    0 of every sequence is read as BOS (the module docstring says why). The
    fraction correct is `num_correct / num_scored_sequences`, with
    `num_scored_sequences` from args.json, else the paper's 1000.

    Args:
      src: the directory in the reference layout.
      dst: the path of the new zoo; must not exist.

    Returns:
      The zoo's absolute path.

    Raises:
      ReferenceFormatError: naming the file and field, when a file is missing,
        truncated or unreadable, or shapes, dtypes or values disagree.
      FileExistsError: when `dst` exists.
    """
    src, dst = os.fspath(src), os.path.abspath(dst)
    if os.path.exists(dst):
        raise FileExistsError(f"Refusing to overwrite {dst}: a zoo or other file is already there.")
    path = {name: os.path.join(src, name) for name in FILES}
    args = _read_args(src)
    if args.get("num_tokens", formal_languages.NUM_LETTERS) != formal_languages.NUM_LETTERS:
        raise ReferenceFormatError(
            f"{path[ARGS]}: 'num_tokens' is {args['num_tokens']!r}, but the formal-language family has "
            f"{formal_languages.NUM_LETTERS} letters."
        )
    arrays = {name: _load_array(src, name) for name in FILES if name != ARGS}

    _check_array(arrays[PARAMETERS], path[PARAMETERS], "f", ("snapshots", None), ("parameters", None))
    num, num_params = arrays[PARAMETERS].shape
    if num == 0:
        raise ReferenceFormatError(f"{path[PARAMETERS]} holds no snapshots.")
    snapshots = (f"snapshots (as in {PARAMETERS})", num)
    _check_array(arrays[SEQUENCES], path[SEQUENCES], "iu", snapshots, ("sequences", None), ("tokens", None))
    _, num_sequences, length = arrays[SEQUENCES].shape
    _check_array(
        arrays[LOGITS],
        path[LOGITS],
        "f",
        snapshots,
        (f"sequences (as in {SEQUENCES})", num_sequences),
        (f"positions (sequence length - 1, as in {SEQUENCES})", length - 1),
        ("symbols", formal_languages.VOCAB_SIZE),
    )
    _check_array(arrays[TASKS], path[TASKS], "iu", snapshots, ("task entries", formal_languages.NUM_LETTERS))
    _check_array(arrays[NUM_STEP_CORRECT], path[NUM_STEP_CORRECT], "iu", snapshots, ("columns (run, step, correct)", 3))

    if args.get("sequence_length", length) != length:
        raise ReferenceFormatError(
            f"{path[ARGS]}: 'sequence_length' is {args['sequence_length']!r}, but {path[SEQUENCES]} holds "
            f"sequences of length {length}."
        )
    spec = lstm.LSTMSpec(
        input_size=formal_languages.VOCAB_SIZE,
        hidden_size=_int_arg(args, _HIDDEN_SIZE_KEYS, _DEFAULT_HIDDEN_SIZE, path[ARGS]),
        num_layers=_int_arg(args, _NUM_LAYERS_KEYS, _DEFAULT_NUM_LAYERS, path[ARGS]),
        output_size=formal_languages.VOCAB_SIZE,
    )
    if spec.num_params != num_params:
        raise ReferenceFormatError(
            f"{path[PARAMETERS]} holds vectors of {num_params} parameters, but {spec} (sizes from {path[ARGS]} "
            f"or the defaults) has {spec.num_params}."
        )
    settings = {field: args[key] for field, key in _SETTING_KEYS.items() if key in args}
    try:
        family = FormalLanguages(**{**settings, "length": length, "num_stored_sequences": num_sequences})
    except (TypeError, ValueError) as error:
        raise ReferenceFormatError(f"{path[ARGS]} and {path[SEQUENCES]} give invalid settings: {error}") from error

    low, high = arrays[SEQUENCES].min(), arrays[SEQUENCES].max()
    if low < 0 or high >= formal_languages.VOCAB_SIZE:
        raise ReferenceFormatError(
            f"{path[SEQUENCES]} holds tokens outside [0, {formal_languages.VOCAB_SIZE}): min {low}, max {high}."
        )
    sequences = np.array(arrays[SEQUENCES], np.int16)
    sequences[:, :, 0] = formal_languages.BOS
    try:
        task = formal_languages.check_tasks(arrays[TASKS])
    except ValueError as error:
        raise ReferenceFormatError(f"{path[TASKS]}: {error}") from error
    run, step, num_correct = np.array(arrays[NUM_STEP_CORRECT], np.int64).T
    if run.min() < 0 or step.min() < 0:
        raise ReferenceFormatError(f"{path[NUM_STEP_CORRECT]}: run indices and steps must be non-negative.")
    if num_correct.min() < 0 or num_correct.max() > family.num_scored_sequences:
        raise ReferenceFormatError(
            f"{path[NUM_STEP_CORRECT]}: numbers correct must lie in [0, {family.num_scored_sequences}] "
            f"(num_scored_sequences), got [{num_correct.min()}, {num_correct.max()}]."
        )

    with _on_host():
        params = jax.tree.map(np.asarray, lstm.from_flat(np.asarray(arrays[PARAMETERS], np.float32), spec))
    behaviour = {"sequences": sequences, "log_probs": np.array(arrays[LOGITS], np.float16)}
    metadata = {"run": run, "step": step, "task": task, "correct": num_correct / family.num_scored_sequences}
    info = {
        "family": FormalLanguages.name,
        "family_settings": dataclasses.asdict(family),
        "build_config": None,
        "snapshot_steps": sorted(set(step.tolist())),
        "source": "reference",
        "reference_args": args,
    }
    zoo.save(dst, params, behaviour, metadata, spec, info)
    return dst


def _reference_arrays(source: zoo.Zoo, family: FormalLanguages) -> dict[str, np.ndarray]:
    """The five `.npy` arrays of a formal-language zoo, checked for shape."""
    num = len(source)
    sequences, log_probs = source.sequences, source.log_probs
    expected_logits = (*sequences.shape[:2], sequences.shape[2] - 1, formal_languages.VOCAB_SIZE)
    if sequences.ndim != 3 or tuple(log_probs.shape) != expected_logits:
        raise ReferenceFormatError(
            f"The zoo's behaviour has sequences {tuple(sequences.shape)} and log_probs {tuple(log_probs.shape)}; "
            "expected [N, S, L] and [N, S, L - 1, 6]."
        )
    correct = np.asarray(source.metadata["correct"], np.float64) * family.num_scored_sequences
    num_correct = np.rint(correct).astype(np.int64)
    # The reference stores counts; a fraction that is not a count over the scored sequences cannot be written.
    if np.any(np.abs(correct - num_correct) > 1e-3):
        raise ReferenceFormatError(
            f"The zoo's 'correct' fractions are not multiples of 1/{family.num_scored_sequences} "
            "(1/num_scored_sequences), so they cannot be stored as counts."
        )
    sequences = np.array(sequences, np.int16)
    sequences[:, :, 0] = formal_languages.BOS
    with _on_host():
        flat = np.asarray(lstm.to_flat(source.params), np.float32).reshape(num, -1)
    return {
        PARAMETERS: flat,
        SEQUENCES: sequences,
        LOGITS: np.asarray(log_probs, np.float16),
        TASKS: formal_languages.check_tasks(source.metadata["task"]).astype(np.int64),
        NUM_STEP_CORRECT: np.stack([source.metadata["run"], source.metadata["step"], num_correct], 1).astype(np.int64),
    }


def _reference_args(source: zoo.Zoo, family: FormalLanguages) -> dict[str, Any]:
    """args.json: the paper script's argument names where it has them, plus the settings it hard-codes."""
    args = {**_BUILT_ZOO_ARGS, **source.info.get("reference_args", {})}
    args.update(
        num_tokens=formal_languages.NUM_LETTERS,
        sequence_length=family.length,
        max_n=family.max_n,
        num_training_runs=len(np.unique(source.metadata["run"])),
        rnn_hidden_size=source.spec.hidden_size,
        rnn_num_layers=source.spec.num_layers,
        snapshot_steps=[int(s) for s in source.info["snapshot_steps"]],
        batch_size=family.batch_size,
        weight_decay=family.weight_decay_value,
        num_scored_sequences=family.num_scored_sequences,
        num_stored_sequences=family.num_stored_sequences,
        cycle_tasks=family.cycle_tasks,
    )
    build_config = source.info.get("build_config")
    if build_config:
        args["lr_points"] = build_config["train"]["lr_points"]
    return args


def export_reference(src: str | os.PathLike | zoo.Zoo, dst: str | os.PathLike) -> str:
    """Writes a formal-language zoo in the reference layout (see the module docstring).

    Position 0 of every sequence is written as BOS: the paper's in-place
    overwrite with EOS (for sequences without EOS) is not reproduced. The
    third column of `num_step_correct.npy` counts correct sequences out of the
    zoo's `num_scored_sequences` (written to args.json); the paper's loader
    assumes 1000. The files are written into a temporary sibling directory
    that is renamed to `dst` once complete.

    Args:
      src: a zoo, or the path of one.
      dst: the directory to create; must not exist.

    Returns:
      The absolute path of the written directory.

    Raises:
      ReferenceFormatError: when the zoo is not a formal-language zoo or its
        arrays do not fit the layout.
      FileExistsError: when `dst` exists.
    """
    dst = os.path.abspath(dst)
    if os.path.exists(dst):  # before loading the zoo, which may take long
        raise FileExistsError(f"Refusing to overwrite {dst}: a directory or file is already there.")
    source = src if isinstance(src, zoo.Zoo) else zoo.load(src)
    if source.family != FormalLanguages.name:
        raise ReferenceFormatError(
            f"Only formal-language zoos have a reference layout; this zoo's family is {source.family!r}."
        )
    family = FormalLanguages(**source.info["family_settings"])
    if (source.spec.input_size, source.spec.output_size) != (formal_languages.VOCAB_SIZE,) * 2:
        raise ReferenceFormatError(
            f"A formal-language zoo's LSTM has {formal_languages.VOCAB_SIZE} inputs and outputs; got {source.spec}."
        )
    arrays = _reference_arrays(source, family)
    args = _reference_args(source, family)

    with files.staged_directory(dst) as staging:
        for name, array in arrays.items():
            np.save(os.path.join(staging, name), array)
        files.write_json(os.path.join(staging, ARGS), args)
    return dst
