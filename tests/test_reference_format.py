"""Import and export of the paper's released zoo layout, on a smoke-preset zoo."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from weightspace import lstm, zoo
from weightspace.tasks import formal_languages as fl
from zoo_builder import build, reference_format
from zoo_builder.configs import formal_languages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_RUNS, NUM_STEPS = 2, 3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A smoke zoo of 2 runs x 3 snapshots and its export in the reference layout."""
    config = formal_languages.get_config("smoke")
    config.num_runs = NUM_RUNS
    workdir = tmp_path_factory.mktemp("build")
    zoo_path = build.build(config, str(workdir))
    reference = reference_format.export_reference(zoo_path, workdir / "reference")
    return zoo.load(zoo_path), reference


@pytest.fixture
def reference_copy(built, tmp_path):
    """A writable copy of the exported reference directory, to damage."""
    return shutil.copytree(built[1], tmp_path / "reference")


def _import_error(src, tmp_path) -> str:
    with pytest.raises(reference_format.ReferenceFormatError) as info:
        reference_format.import_reference(src, tmp_path / "imported")
    assert not os.path.exists(tmp_path / "imported")
    return str(info.value)


def test_export_writes_the_reference_shapes_and_dtypes(built):
    original, reference = built
    num, params, sequences = NUM_RUNS * NUM_STEPS, 13766, original.sequences.shape[1]
    expected = {
        "parameters.npy": ((num, params), np.float32),
        "sequences.npy": ((num, sequences, 42), np.int16),
        "logits.npy": ((num, sequences, 41, 6), np.float16),
        "tasks.npy": ((num, 4), np.int64),
        "num_step_correct.npy": ((num, 3), np.int64),
    }
    assert sorted(os.listdir(reference)) == sorted([*expected, "args.json"])
    for name, (shape, dtype) in expected.items():
        array = np.load(os.path.join(reference, name))
        assert (array.shape, array.dtype) == (shape, dtype), name
    with open(os.path.join(reference, "args.json")) as f:
        args = json.load(f)
    assert args["rnn_hidden_size"] == 32 and args["rnn_num_layers"] == 2 and args["num_tokens"] == 4
    assert args["sequence_length"] == 42 and args["num_training_runs"] == NUM_RUNS
    assert args["snapshot_steps"] == [0, 10, 20] and args["num_scored_sequences"] == 32
    counts = np.load(os.path.join(reference, "num_step_correct.npy"))
    np.testing.assert_array_equal(counts[:, 2], np.rint(original.metadata["correct"] * 32))


def test_round_trip(built, tmp_path):
    original, reference = built
    imported = zoo.load(reference_format.import_reference(reference, tmp_path / "imported"))
    assert imported.spec == original.spec and len(imported) == len(original)
    for name in original.params:
        np.testing.assert_array_equal(imported.params[name], original.params[name], err_msg=name)
    for name in ("sequences", "log_probs"):
        np.testing.assert_array_equal(imported.behaviour[name], original.behaviour[name], err_msg=name)
        assert imported.behaviour[name].dtype == original.behaviour[name].dtype
    for name in ("run", "step", "task", "correct"):
        np.testing.assert_array_equal(imported.metadata[name], original.metadata[name], err_msg=name)
    assert imported.info["family_settings"] == original.info["family_settings"]
    assert imported.info["snapshot_steps"] == original.info["snapshot_steps"]
    assert imported.info["source"] == "reference" and imported.info["reference_args"]["rnn_hidden_size"] == 32
    # Exporting the imported zoo again writes the same arrays.
    again = reference_format.export_reference(imported, tmp_path / "again")
    for name in reference_format.FILES[:-1]:
        np.testing.assert_array_equal(np.load(os.path.join(again, name)), np.load(os.path.join(reference, name)))


def test_correct_fractions_round_trip_as_counts(built, tmp_path):
    original = built[0]
    correct = np.arange(len(original)) / 32  # the smoke zoo scores 32 sequences
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


def test_imported_lstms_reproduce_the_stored_log_probs(built, tmp_path):
    imported = zoo.load(reference_format.import_reference(built[1], tmp_path / "imported"))
    inputs = jax.nn.one_hot(imported.sequences[:, :, :-1], fl.VOCAB_SIZE)
    per_sequence = jax.vmap(lstm.apply, in_axes=(None, 0))
    logits, _ = jax.jit(jax.vmap(per_sequence))(imported.params, inputs)
    # float16 storage: absolute error up to ~1e-2 at |log p| ~ 20, relative 2^-11 beyond.
    np.testing.assert_allclose(jax.nn.log_softmax(logits), imported.log_probs.astype(np.float32), atol=2e-2, rtol=1e-3)


def test_import_reads_position_zero_as_bos(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "sequences.npy")
    sequences = np.load(path)
    quirky = sequences.copy()
    quirky[::2, ::3, 0] = fl.EOS  # what the paper's acceptance check did to sequences without EOS
    np.save(path, quirky)
    imported = zoo.load(reference_format.import_reference(reference_copy, tmp_path / "imported"))
    np.testing.assert_array_equal(imported.sequences, sequences)
    assert np.all(imported.sequences[:, :, 0] == fl.BOS)


def test_import_with_the_papers_own_args(reference_copy, tmp_path):
    # args.json as the paper's script writes it (`vars(args)`): no sampling settings, 1000 sequences scored.
    paper_args = {
        "seed": -1, "use_cuda": 1, "store": 1, "num_tokens": 4, "sequence_length": 42, "max_n": 10,
        "random_seq_prob": 0.0, "num_training_runs": 1000, "one_hot_input": 1, "rnn_hidden_size": 32,
        "rnn_num_layers": 2,
    }  # fmt: skip
    with open(os.path.join(reference_copy, "args.json"), "w") as f:
        json.dump(paper_args, f)
    imported = zoo.load(reference_format.import_reference(reference_copy, tmp_path / "imported"))
    assert imported.info["reference_args"] == paper_args and imported.info["build_config"] is None
    assert imported.info["family_settings"] == dataclasses.asdict(fl.FormalLanguages(num_stored_sequences=8))
    counts = np.load(os.path.join(reference_copy, "num_step_correct.npy"))[:, 2]
    np.testing.assert_array_equal(imported.metadata["correct"], counts / 1000)
    # Without args.json the LSTM sizes and settings are the paper's defaults.
    os.remove(os.path.join(reference_copy, "args.json"))
    imported = zoo.load(reference_format.import_reference(reference_copy, tmp_path / "no_args"))
    assert imported.spec == lstm.LSTMSpec(6, 32, 2, 6) and imported.info["reference_args"] == {}


def test_truncated_parameters(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "parameters.npy")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    assert "parameters.npy" in _import_error(reference_copy, tmp_path)


def test_missing_file(reference_copy, tmp_path):
    os.remove(os.path.join(reference_copy, "logits.npy"))
    assert "logits.npy is missing" in _import_error(reference_copy, tmp_path)


def test_wrong_number_of_parameters(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "parameters.npy")
    np.save(path, np.load(path)[:, :-1])
    message = _import_error(reference_copy, tmp_path)
    assert "parameters.npy" in message and "13765" in message and "13766" in message


def test_mismatched_number_of_snapshots(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "tasks.npy")
    np.save(path, np.load(path)[:-1])
    message = _import_error(reference_copy, tmp_path)
    assert "tasks.npy" in message and f"{NUM_RUNS * NUM_STEPS} snapshots (as in parameters.npy)" in message


def test_mismatched_logits(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "logits.npy")
    np.save(path, np.load(path)[:, :, :-1])
    assert "logits.npy" in _import_error(reference_copy, tmp_path)


def test_wrong_dtype(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "sequences.npy")
    np.save(path, np.load(path).astype(np.float32))
    message = _import_error(reference_copy, tmp_path)
    assert "sequences.npy" in message and "float32" in message


def test_out_of_range_task(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "tasks.npy")
    tasks = np.load(path)
    tasks[1, 2] = 3
    np.save(path, tasks)
    message = _import_error(reference_copy, tmp_path)
    assert "tasks.npy" in message and "out of range" in message


def test_args_that_contradict_the_data(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "args.json")
    with open(path) as f:
        args = json.load(f)
    with open(path, "w") as f:
        json.dump({**args, "rnn_hidden_size": 16}, f)
    message = _import_error(reference_copy, tmp_path)
    assert "parameters.npy" in message and "13766" in message and "3814" in message


def test_more_correct_than_scored(reference_copy, tmp_path):
    path = os.path.join(reference_copy, "num_step_correct.npy")
    counts = np.load(path)
    counts[0, 2] = 33  # the smoke zoo scores 32 sequences
    np.save(path, counts)
    assert "num_step_correct.npy" in _import_error(reference_copy, tmp_path)


def test_export_refuses_an_existing_directory(built, tmp_path):
    (tmp_path / "existing").mkdir()
    with pytest.raises(FileExistsError, match="existing"):
        reference_format.export_reference(built[0], tmp_path / "existing")
    assert not os.listdir(tmp_path / "existing")


def test_export_refuses_other_families(built, tmp_path):
    other = dataclasses.replace(built[0], info={**built[0].info, "family": "sequential_mnist"})
    with pytest.raises(reference_format.ReferenceFormatError, match="sequential_mnist"):
        reference_format.export_reference(other, tmp_path / "reference")
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_import_entry_point(built, tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "zoo_builder.import_reference", f"--src={built[1]}", f"--dst={tmp_path / 'zoo'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(zoo.load(tmp_path / "zoo")) == NUM_RUNS * NUM_STEPS
