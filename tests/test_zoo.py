"""Zoo storage: round trip and the errors for bad directories."""

import json
import os

import jax
import numpy as np
import pytest

from weightspace import lstm, zoo

SPEC = lstm.LSTMSpec(6, 4, 2, 6)


def _write(path, num=3):
    params = jax.tree.map(
        np.asarray, jax.vmap(lstm.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), num), SPEC)
    )
    rng = np.random.default_rng(0)
    behaviour = {
        "sequences": rng.integers(0, 6, (num, 2, 5)).astype(np.int16),
        "log_probs": rng.normal(size=(num, 2, 4, 6)).astype(np.float16),
    }
    metadata = {
        "run": np.arange(num),
        "step": np.zeros(num, np.int64),
        "task": np.zeros((num, 4), np.int32),
        "correct": rng.random(num),
    }
    zoo.save(path, params, behaviour, metadata, SPEC, {"family": "formal_languages"})
    return params, behaviour, metadata


def test_round_trip(tmp_path):
    params, behaviour, metadata = _write(tmp_path / "zoo")
    loaded = zoo.load(tmp_path / "zoo")
    assert loaded.spec == SPEC and len(loaded) == 3 and loaded.family == "formal_languages"
    for name in params:
        np.testing.assert_array_equal(loaded.params[name], params[name])
    np.testing.assert_array_equal(loaded.sequences, behaviour["sequences"])
    assert loaded.log_probs.dtype == np.float16
    np.testing.assert_array_equal(loaded.log_probs, behaviour["log_probs"])
    for name, column in metadata.items():
        np.testing.assert_array_equal(loaded.metadata[name], column)
    # Metadata is plain JSON, readable without JAX.
    with open(tmp_path / "zoo" / "metadata.json") as f:
        assert json.load(f)["snapshots"]["run"] == [0, 1, 2]


def test_save_refuses_to_overwrite_and_checks_rows(tmp_path):
    _write(tmp_path / "zoo")
    with pytest.raises(FileExistsError, match="zoo"):
        _write(tmp_path / "zoo")
    params, behaviour, metadata = _write(tmp_path / "other")
    with pytest.raises(zoo.ZooError, match="sequences"):
        zoo.save(tmp_path / "bad", params, {**behaviour, "sequences": behaviour["sequences"][:2]}, metadata, SPEC, {})
    assert not os.path.exists(tmp_path / "bad")


def test_missing_or_empty_directories(tmp_path):
    with pytest.raises(zoo.ZooError, match="does not exist"):
        zoo.load(tmp_path / "nowhere")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(zoo.ZooError, match="COMPLETE"):
        zoo.load(tmp_path / "empty")


def test_unfinished_zoo_is_not_a_zoo(tmp_path):
    _write(tmp_path / "zoo")
    os.remove(tmp_path / "zoo" / "COMPLETE")
    with pytest.raises(zoo.ZooError, match="COMPLETE"):
        zoo.load(tmp_path / "zoo")


def test_corrupt_metadata(tmp_path):
    _write(tmp_path / "zoo")
    with open(tmp_path / "zoo" / "metadata.json", "r+") as f:
        f.truncate(40)
    with pytest.raises(zoo.ZooError, match=r"metadata\.json"):
        zoo.load(tmp_path / "zoo")


def test_params_that_do_not_match_the_declared_lstm(tmp_path):
    _write(tmp_path / "zoo")
    path = tmp_path / "zoo" / "metadata.json"
    document = json.loads(path.read_text())
    document["spec"]["hidden_size"] = 5
    path.write_text(json.dumps(document))
    with pytest.raises(zoo.ZooError, match="declared LSTMSpec"):
        zoo.load(tmp_path / "zoo")


def test_row_count_mismatch(tmp_path):
    _write(tmp_path / "zoo")
    path = tmp_path / "zoo" / "metadata.json"
    document = json.loads(path.read_text())
    document["num_snapshots"] = 4
    path.write_text(json.dumps(document))
    with pytest.raises(zoo.ZooError, match="4 snapshots"):
        zoo.load(tmp_path / "zoo")


def test_truncated_array_file(tmp_path):
    _write(tmp_path / "zoo")
    data_files = [
        os.path.join(root, name)
        for root, _, names in os.walk(tmp_path / "zoo" / "arrays")
        for name in names
        if "/d/" in os.path.join(root, name)
    ]
    assert data_files
    for name in data_files:
        with open(name, "r+b") as f:
            f.truncate(os.path.getsize(name) // 2)
    with pytest.raises(zoo.ZooError, match="arrays"):
        zoo.load(tmp_path / "zoo")
