"""Zoo storage: round trip and the errors for bad directories."""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from unittest import mock

import jax
import numpy as np
import pytest

from experiments import upgrade
from experiments.configs import flat
from experiments.run import workdirs
from weightspace import checkpointing, files, lstm, zoo

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
    path.write_text(json.dumps(zoo.sealed(document)))  # as a faulty writer would have written it
    with pytest.raises(zoo.ZooError, match="declared LSTMSpec"):
        zoo.load(tmp_path / "zoo")


def test_row_count_mismatch(tmp_path):
    _write(tmp_path / "zoo")
    path = tmp_path / "zoo" / "metadata.json"
    document = json.loads(path.read_text())
    document["num_snapshots"] = 4
    path.write_text(json.dumps(zoo.sealed(document)))
    with pytest.raises(zoo.ZooError, match="4 snapshots"):
        zoo.load(tmp_path / "zoo")


def test_an_edited_column_is_refused(tmp_path):
    _write(tmp_path / "zoo")
    path = tmp_path / "zoo" / "metadata.json"
    document = json.loads(path.read_text())
    document["snapshots"]["step"][0] += 1
    path.write_text(json.dumps(document, indent=1))
    with pytest.raises(zoo.ZooError, match="does not match its checksum"):
        zoo.load(tmp_path / "zoo")


@pytest.mark.parametrize(
    "version, removed, message",
    [(3, "sha256", "lost its checksum"), (2, "arrays", "lost its manifest"), (7, None, "format version 7")],
)
def test_a_document_that_lost_what_its_version_promises_is_refused(version, removed, message, tmp_path):
    _write(tmp_path / "zoo")
    path = tmp_path / "zoo" / "metadata.json"
    document = json.loads(path.read_text())
    document["version"] = version
    document.pop(removed, None)
    path.write_text(json.dumps(document if removed == "sha256" else zoo.sealed(document)))
    with pytest.raises(zoo.ZooError, match=message):
        zoo.load(tmp_path / "zoo")


def test_a_version_2_zoo_loads_with_a_warning_that_its_columns_are_unchecked(tmp_path):
    _write(tmp_path / "zoo")
    path = tmp_path / "zoo" / "metadata.json"
    document = json.loads(path.read_text())
    del document["sha256"]
    document["version"] = 2
    path.write_text(json.dumps(document))
    with mock.patch.object(zoo.logging, "warning") as warning:
        assert len(zoo.load(tmp_path / "zoo")) == 3
    assert "columns cannot be verified" in warning.call_args[0][0]


def _data_files(path):
    """The files holding a zoo's arrays (`npy/`), largest first."""
    names = [os.path.join(root, name) for root, _, names in os.walk(path / "npy") for name in names]
    return sorted(names, key=os.path.getsize, reverse=True)


@pytest.mark.parametrize("on_disk", [False, True])
@pytest.mark.parametrize("size", ["half", "empty"])
def test_truncated_array_files(size, on_disk, tmp_path):
    _write(tmp_path / "zoo")
    for name in _data_files(tmp_path / "zoo"):
        with open(name, "r+b") as f:
            f.truncate(os.path.getsize(name) // 2 if size == "half" else 0)
    with pytest.raises(zoo.ZooError, match=r"Zoo at .*\.npy"):
        zoo.load(tmp_path / "zoo", on_disk=on_disk)


def test_a_missing_array_file_is_named(tmp_path):
    _write(tmp_path / "zoo")
    os.remove(tmp_path / "zoo" / "npy" / "behaviour" / "log_probs.npy")
    with pytest.raises(zoo.ZooError, match=r"are not those in metadata\.json's manifest"):
        zoo.load(tmp_path / "zoo")


@pytest.mark.slow
def test_flipped_bytes_are_refused(tmp_path):
    _write(tmp_path / "zoo", num=200)
    largest = _data_files(tmp_path / "zoo")[0]
    with open(largest, "r+b") as f:
        f.seek(os.path.getsize(largest) // 2)
        data = f.read(400)
        f.seek(os.path.getsize(largest) // 2)
        f.write(bytes(b ^ 0x5A for b in data))
    with pytest.raises(zoo.ZooError, match=r"Zoo at|Cannot read"):
        zoo.load(tmp_path / "zoo")


def test_arrays_that_differ_from_the_manifest_are_refused(tmp_path):
    """Well-formed arrays with other values (a damaged copy that still parses) fail the checksum."""
    params, _, _ = _write(tmp_path / "zoo")
    np.save(tmp_path / "zoo" / "npy" / "params" / "weight_out.npy", params["weight_out"] + 1e-6)
    with pytest.raises(zoo.ZooError, match=r"'params/weight_out' does not match metadata.json \(sha256"):
        zoo.load(tmp_path / "zoo")
    assert len(zoo.load(tmp_path / "zoo", verify=False)) == 3  # the trusted fast path skips only the hashes


def test_non_finite_params_are_refused_at_save_and_load(tmp_path, monkeypatch):
    params, behaviour, metadata = _write(tmp_path / "good")
    params = {**params, "weight_hh_l1": params["weight_hh_l1"].copy()}
    params["weight_hh_l1"][2, 0, 0] = np.nan
    message = r"snapshots 2 have NaN or infinite values \(in params/weight_hh_l1\)"
    with pytest.raises(zoo.ZooError, match=message):
        zoo.save(tmp_path / "bad", params, behaviour, metadata, SPEC, {})
    assert not os.path.exists(tmp_path / "bad")
    # A zoo written without the check (an older writer) is refused on load, naming the snapshot.
    monkeypatch.setattr(zoo, "check_finite", lambda *args, **kwargs: None)
    zoo.save(tmp_path / "bad", params, behaviour, metadata, SPEC, {})
    monkeypatch.undo()
    for on_disk in (False, True):  # the file is checked a chunk at a time in both cases
        with pytest.raises(zoo.ZooError, match=message):
            zoo.load(tmp_path / "bad", on_disk=on_disk)


def test_a_zoo_without_a_manifest_loads_with_a_warning(tmp_path):
    _write(tmp_path / "zoo")
    path = tmp_path / "zoo" / "metadata.json"
    document = json.loads(path.read_text())
    del document["arrays"], document["sha256"]
    document["version"] = 1
    path.write_text(json.dumps(document))
    with mock.patch.object(zoo.logging, "warning") as warning:
        assert len(zoo.load(tmp_path / "zoo")) == 3
    assert "no manifest" in warning.call_args[0][0]


def test_orphaned_partial_directories_are_removed_by_the_next_save(tmp_path):
    orphan = tmp_path / ".zoo.partial-abc123"
    orphan.mkdir()
    _write(tmp_path / "zoo")
    assert sorted(os.listdir(tmp_path)) == ["zoo"]


def test_a_zoo_on_disk_reads_the_same_rows(tmp_path):
    params, behaviour, _ = _write(tmp_path / "zoo", num=7)
    in_memory, on_disk = zoo.load(tmp_path / "zoo"), zoo.load(tmp_path / "zoo", on_disk=True)
    assert isinstance(on_disk.log_probs, np.memmap) and not isinstance(in_memory.log_probs, np.memmap)
    snapshots, sequences = np.array([6, 0, 1, 2, 2, 5]), np.array([1, 0, 1, 0, 1, 1])  # runs and repeats
    for name in params:
        rows = zoo.take_rows(on_disk.params[name], snapshots)
        assert type(rows) is np.ndarray
        np.testing.assert_array_equal(rows, params[name][snapshots])
        np.testing.assert_array_equal(zoo.take_rows(in_memory.params[name], snapshots), params[name][snapshots])
    for name in behaviour:
        rows = zoo.take_rows(on_disk.behaviour[name], snapshots, sequences)
        np.testing.assert_array_equal(rows, behaviour[name][snapshots, sequences])


def test_rows_overwritten_with_nan_after_loading_are_refused_as_they_are_read(tmp_path):
    params, _, _ = _write(tmp_path / "zoo", num=5)
    on_disk = zoo.load(tmp_path / "zoo", on_disk=True)
    file = tmp_path / "zoo" / "npy" / "params" / "weight_hh_l1.npy"
    row_bytes = params["weight_hh_l1"][0].nbytes
    with open(file, "r+b") as f:  # snapshot 3's first value becomes NaN
        f.seek(os.path.getsize(file) - 2 * row_bytes)
        f.write(np.array([np.nan], params["weight_hh_l1"].dtype).tobytes())
    np.testing.assert_array_equal(zoo.take_rows(on_disk.params["weight_hh_l1"], np.array([0, 4])),
                                  params["weight_hh_l1"][[0, 4]])  # fmt: skip
    with pytest.raises(zoo.ZooError, match=r"weight_hh_l1\.npy holds NaN or infinite values in rows \[3\]"):
        zoo.take_rows(on_disk.params["weight_hh_l1"], np.array([1, 3]))


def test_loading_without_the_checksums_says_so(tmp_path):
    _write(tmp_path / "zoo")
    with mock.patch.object(zoo.logging, "warning") as warning:
        zoo.load(tmp_path / "zoo", verify=False)
    assert "without checking its arrays' checksums" in warning.call_args[0][0]


def _write_orbax(path, num=3, manifest=True):
    """A zoo as written before `npy/`: its arrays one Orbax checkpoint in `arrays/`."""
    params, behaviour, _ = _write(path, num)
    shutil.rmtree(path / "npy")
    checkpointing.save_pytree(path / "arrays", {"params": params, "behaviour": behaviour})
    if not manifest:  # format version 1
        document = json.loads((path / "metadata.json").read_text())
        del document["arrays"], document["sha256"]
        document["version"] = 1
        (path / "metadata.json").write_text(json.dumps(document))
    return params, behaviour


@pytest.mark.parametrize("manifest", [True, False])
def test_an_orbax_zoo_is_refused_naming_the_upgrade_and_upgrades_in_place(manifest, tmp_path):
    params, behaviour = _write_orbax(tmp_path / "zoo", manifest=manifest)
    metadata = (tmp_path / "zoo" / "metadata.json").read_text()
    for on_disk in (False, True):
        with pytest.raises(zoo.ZooError, match=r"older format .* python -m experiments.upgrade --path="):
            zoo.load(tmp_path / "zoo", on_disk=on_disk)
    with pytest.raises(zoo.ZooError, match="older format"):
        zoo.verify(tmp_path / "zoo")
    assert zoo.upgrade(tmp_path / "zoo")
    assert _listing(tmp_path / "zoo") == ["COMPLETE", "metadata.json", "npy"]
    assert (tmp_path / "zoo" / "metadata.json").read_text() == metadata  # runs that recorded the zoo still resume
    upgraded = zoo.load(tmp_path / "zoo", on_disk=True)
    for name in params:
        np.testing.assert_array_equal(upgraded.params[name], params[name])
    np.testing.assert_array_equal(upgraded.log_probs, behaviour["log_probs"])
    assert not zoo.upgrade(tmp_path / "zoo")


def test_the_upgrade_command_finds_a_zoo_under_a_directory(tmp_path):
    params, _ = _write_orbax(tmp_path / "outdir" / "zoos" / "zoo")
    assert upgrade.upgrade(str(tmp_path / "outdir")) == [f"{tmp_path / 'outdir' / 'zoos' / 'zoo'}: arrays moved "
                                                         "from an Orbax checkpoint to npy/"]  # fmt: skip
    np.testing.assert_array_equal(zoo.load(tmp_path / "outdir" / "zoos" / "zoo", on_disk=True).params["weight_hh_l0"],
                                  params["weight_hh_l0"])  # fmt: skip
    assert upgrade.upgrade(str(tmp_path / "outdir")) == []


def test_an_upgrade_killed_after_the_rename_is_finished_by_the_next(tmp_path):
    _write_orbax(tmp_path / "zoo")
    with mock.patch.object(zoo.shutil, "rmtree", side_effect=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        zoo.upgrade(tmp_path / "zoo")
    assert len(zoo.load(tmp_path / "zoo", on_disk=True)) == 3  # npy/ is complete and preferred
    assert zoo.upgrade(tmp_path / "zoo")  # finishes: arrays/ goes once npy/ is checked whole
    assert _listing(tmp_path / "zoo") == ["COMPLETE", "metadata.json", "npy"]
    assert not zoo.upgrade(tmp_path / "zoo")


def _listing(path):
    """The zoo directory's entries, without the lock file an upgrade holds."""
    return sorted(name for name in os.listdir(path) if name != ".lock")


def _tree_digest(path):
    return {
        os.path.relpath(os.path.join(root, name), path): hashlib.sha256(
            open(os.path.join(root, name), "rb").read()
        ).hexdigest()
        for root, _, names in os.walk(path)
        for name in names
    }


@pytest.mark.parametrize("manifest", [True, False])
@pytest.mark.parametrize("stray", ["empty", "partial"])
def test_an_upgrade_never_removes_the_arrays_beside_a_stray_npy(manifest, stray, tmp_path):
    _write_orbax(tmp_path / "zoo", manifest=manifest)
    (tmp_path / "zoo" / "npy").mkdir()
    if stray == "partial":  # an npy/ with one of the files only
        _write(tmp_path / "other", 3)
        shutil.copytree(tmp_path / "other" / "npy" / "params", tmp_path / "zoo" / "npy" / "params")
    before = _tree_digest(tmp_path / "zoo" / "arrays")
    with pytest.raises(zoo.ZooError, match=r"not a complete copy.*Nothing was removed"):
        zoo.upgrade(tmp_path / "zoo")
    assert _tree_digest(tmp_path / "zoo" / "arrays") == before
    shutil.rmtree(tmp_path / "zoo" / "npy")  # what the message says to do
    assert zoo.upgrade(tmp_path / "zoo") and len(zoo.load(tmp_path / "zoo", on_disk=True)) == 3


def test_a_second_upgrade_at_the_same_time_is_refused(tmp_path):
    _write_orbax(tmp_path / "zoo")
    with files.workdir_lock(tmp_path / "zoo", "zoo upgrade"), pytest.raises(zoo.ZooError, match="Another zoo upgrade"):
        zoo.upgrade(tmp_path / "zoo")
    assert _listing(tmp_path / "zoo") == ["COMPLETE", "arrays", "metadata.json"]


def _block(tree, rows):
    return jax.tree.map(lambda x: x[rows], tree)


def test_a_zoo_written_in_blocks_is_the_zoo_saved_at_once(tmp_path):
    params, behaviour, metadata = _write(tmp_path / "whole", num=7)
    with zoo.writer(tmp_path / "blocks", 7, SPEC, {"family": "formal_languages"}) as add:
        for rows in (slice(0, 3), slice(3, 5), slice(5, 7)):
            add(_block(params, rows), _block(behaviour, rows), _block(metadata, rows))
    for name in _data_files(tmp_path / "whole"):
        copy = tmp_path / "blocks" / os.path.relpath(name, tmp_path / "whole")
        assert copy.read_bytes() == Path(name).read_bytes()
    same = [json.loads((tmp_path / z / "metadata.json").read_text()) for z in ("whole", "blocks")]
    assert same[0] == same[1]  # the manifest's hashes included


def test_a_bad_block_leaves_nothing_and_names_the_zoos_snapshot(tmp_path):
    params, behaviour, metadata = _write(tmp_path / "whole", num=6)
    bad = {**params, "weight_out": params["weight_out"].copy()}
    bad["weight_out"][4, 0, 0] = np.inf
    message = r"snapshots 4 have NaN or infinite values \(in params/weight_out\)"
    with pytest.raises(zoo.ZooError, match=message), zoo.writer(tmp_path / "nan", 6, SPEC, {}) as add:
        for rows in (slice(0, 3), slice(3, 6)):
            add(_block(bad, rows), _block(behaviour, rows), _block(metadata, rows))
    first = (_block(params, slice(0, 3)), _block(behaviour, slice(0, 3)), _block(metadata, slice(0, 3)))
    with pytest.raises(zoo.ZooError, match="Only 3 of the 6"), zoo.writer(tmp_path / "short", 6, SPEC, {}) as add:
        add(*first)
    longer = {**behaviour, "sequences": np.concatenate([behaviour["sequences"]] * 2, axis=2)}
    message = r"'behaviour/sequences' of this block is int16 \[3, 2, 10\]"
    with pytest.raises(zoo.ZooError, match=message), zoo.writer(tmp_path / "shapes", 6, SPEC, {}) as add:
        add(*first)
        add(_block(params, slice(3, 6)), _block(longer, slice(3, 6)), _block(metadata, slice(3, 6)))
    assert sorted(os.listdir(tmp_path)) == ["whole"]


def _flip_a_byte(file, keep_mtime=False):
    """Flips the last byte of `file` (an array's data, past the `.npy` header), in place; with `keep_mtime`, sets its
    mtime back, as a copy that keeps times would. Waits first for the file times to move on from the zoo's own
    write (they advance by a clock tick of a few milliseconds), as they would outside a test."""
    time.sleep(0.05)
    stat = os.stat(file)
    content = bytearray(Path(file).read_bytes())
    content[-1] ^= 0xFF
    Path(file).write_bytes(bytes(content))
    if keep_mtime:
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))


_FLIPPED = r"Zoo at .*: the stored array 'params/weight_hh_l1' does not match metadata\.json \(sha256 .*Re-copy"


@pytest.mark.parametrize("recorded", [False, True])
def test_silent_1_a_flipped_byte_in_a_finished_zoo_is_refused_on_reuse(recorded, tmp_path):
    """Refused whether or not an earlier verification recorded the file, even with its mtime set back; nothing is
    written."""
    _write(tmp_path / "zoo")
    if recorded:
        zoo.verify(tmp_path / "zoo")
        assert (tmp_path / "zoo" / "verified.json").exists()
    _flip_a_byte(tmp_path / "zoo" / "npy" / "params" / "weight_hh_l1.npy", keep_mtime=recorded)
    before = _tree_digest(tmp_path)
    with pytest.raises(zoo.ZooError, match=_FLIPPED) as refused:
        zoo.verify(tmp_path / "zoo")
    assert "\n" not in str(refused.value)
    assert _tree_digest(tmp_path) == before


def _hashed(path):
    """The arrays of the zoo at `path` that a `verify` reads (hashes), in order."""
    with mock.patch.object(zoo, "_read_checked", wraps=zoo._read_checked) as read:
        zoo.verify(path)
    return [call.args[2] for call in read.call_args_list]


def test_silent_1_an_intact_zoo_is_hashed_once_then_only_what_changed(tmp_path):
    _write(tmp_path / "zoo")
    names = sorted(json.loads((tmp_path / "zoo" / "metadata.json").read_text())["arrays"])
    assert sorted(_hashed(tmp_path / "zoo")) == names
    record = (tmp_path / "zoo" / "verified.json").read_bytes()
    assert sorted(json.loads(record)) == names
    assert _hashed(tmp_path / "zoo") == []  # a second reuse hashes nothing, and rewrites nothing
    assert (tmp_path / "zoo" / "verified.json").read_bytes() == record
    time.sleep(0.05)  # the file times move on by a clock tick
    os.utime(tmp_path / "zoo" / "npy" / "behaviour" / "sequences.npy")  # touched: hashed again, alone
    assert _hashed(tmp_path / "zoo") == ["behaviour/sequences"]
    # A copy (record included, times kept) is other files: hashed in full once.
    shutil.copytree(tmp_path / "zoo", tmp_path / "copy")
    assert sorted(_hashed(tmp_path / "copy")) == names
    # A record that does not read back is no record: everything is hashed again and the record rewritten.
    (tmp_path / "copy" / "verified.json").write_text("{ cut short")
    assert sorted(_hashed(tmp_path / "copy")) == names and _hashed(tmp_path / "copy") == []


def test_silent_1_the_verification_record_leaves_the_zoo_a_zoo(tmp_path):
    """Loading (in memory and on disk), describing and the upgrade command ignore it."""
    params, _, _ = _write(tmp_path / "zoos" / "zoo")
    zoo.verify(tmp_path / "zoos" / "zoo")
    assert _listing(tmp_path / "zoos" / "zoo") == ["COMPLETE", "metadata.json", "npy", "verified.json"]
    assert zoo.is_complete(tmp_path / "zoos" / "zoo")
    for on_disk in (False, True):
        np.testing.assert_array_equal(zoo.load(tmp_path / "zoos" / "zoo", on_disk=on_disk).params["weight_out"],
                                      params["weight_out"])  # fmt: skip
    assert len(zoo.describe(tmp_path / "zoos" / "zoo")) == 3
    assert not zoo.upgrade(tmp_path / "zoos" / "zoo") and upgrade.upgrade(str(tmp_path / "zoos")) == []


@pytest.mark.parametrize("where", ["zoo.path", "cache"])
def test_silent_1_ensure_zoo_refuses_a_finished_zoo_with_a_flipped_byte(where, tmp_path, monkeypatch):
    """The zoo given by `zoo.path`, or found in the zoo cache, is checked before it is reused; a corrupt one is
    refused, never rebuilt over."""
    config = flat.get_config("smoke")
    if where == "zoo.path":
        path = config.zoo.path = str(tmp_path / "zoo")
    else:
        monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(tmp_path / "cache"))
        path = str(tmp_path / "cache" / "formal_languages_smoke" / "zoo")
    _write(Path(path))
    assert workdirs.ensure_zoo(config) == path
    _flip_a_byte(os.path.join(path, "npy", "params", "weight_hh_l1.npy"))
    before = _tree_digest(tmp_path)
    with pytest.raises(zoo.ZooError, match=_FLIPPED):
        workdirs.ensure_zoo(config)
    assert _tree_digest(tmp_path) == before


def _both_ways(path):
    """Each array of the zoo at `path` in memory and on disk, with the indices that `take_rows` takes over it."""
    in_memory, on_disk = zoo.load(path), zoo.load(path, on_disk=True)
    for part in ("params", "behaviour"):
        for name, array in getattr(in_memory, part).items():
            yield array, getattr(on_disk, part)[name], 2 if part == "behaviour" else 1


@pytest.mark.parametrize(
    "index, given",
    [
        (np.array([True, False, True]), r"bool \[3\]"),  # NumPy: a mask in memory, rows 1, 0, 1 on disk
        (np.array([[0, 1], [2, 0]]), r"int64 \[2, 2\] from 0 to 2"),  # in memory [2, 2, ...], on disk flattened
        (np.array([0.0, 1.0]), r"float64 \[2\] from 0\.0 to 1\.0"),
        (np.array(1), r"int64 \[\]"),
    ],
)
def test_silent_9_take_rows_refuses_booleans_2d_and_float_indices_alike_in_memory_and_on_disk(index, given, tmp_path):
    _write(tmp_path / "zoo")
    for in_memory, on_disk, axes in _both_ways(tmp_path / "zoo"):
        indices = (index,) * axes
        messages = []
        for array in (in_memory, on_disk):
            with pytest.raises(zoo.ZooError, match=rf"take_rows reads an array .* given {axes}: {given}") as refused:
                zoo.take_rows(array, *indices)
            messages.append(str(refused.value))
        assert messages[0] == messages[1]


@pytest.mark.parametrize(
    "index, given",
    [
        (np.array([0, -1]), r"int64 \[2\] from -1 to 0"),  # in memory the last row, on disk a raw ValueError
        (np.array([2, 3]), r"int64 \[2\] from 2 to 3"),  # 3 is one past the last snapshot
    ],
)
def test_silent_10_take_rows_refuses_indices_outside_the_axis_alike_in_memory_and_on_disk(index, given, tmp_path):
    _write(tmp_path / "zoo")
    for in_memory, on_disk, axes in _both_ways(tmp_path / "zoo"):
        messages = []
        for array in (in_memory, on_disk):
            with pytest.raises(zoo.ZooError, match=rf"of its axis\); it was given {axes}: {given}") as refused:
                zoo.take_rows(array, *(index,) * axes)
            messages.append(str(refused.value))
        assert messages[0] == messages[1]
    on_disk = zoo.load(tmp_path / "zoo", on_disk=True).sequences  # index arrays of different lengths
    with pytest.raises(zoo.ZooError, match=r"given 2: int64 \[2\] from 0 to 1; int64 \[1\] from 0 to 0\."):
        zoo.take_rows(on_disk, np.array([0, 1]), np.array([0]))


def test_silent_9_10_valid_indices_read_the_same_rows_in_memory_and_on_disk(tmp_path):
    _write(tmp_path / "zoo")
    snapshots, sequences = np.array([2, 0, 0, 1], np.int32), np.array([1, 0, 1, 1], np.uint16)
    for in_memory, on_disk, axes in _both_ways(tmp_path / "zoo"):
        indices = (snapshots, sequences)[:axes]
        rows = [zoo.take_rows(array, *indices) for array in (in_memory, on_disk)]
        assert type(rows[1]) is np.ndarray and rows[0].shape == (4, *in_memory.shape[axes:])
        np.testing.assert_array_equal(rows[0], rows[1])
        np.testing.assert_array_equal(rows[0], in_memory[indices])
        empty = [zoo.take_rows(array, *(np.array([], np.int64),) * axes) for array in (in_memory, on_disk)]
        assert empty[0].shape == empty[1].shape == (0, *in_memory.shape[axes:])
