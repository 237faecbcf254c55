"""Checkpoints carry checksums: a damaged step is set aside and the previous good one is used."""

import os
from unittest import mock

import jax.numpy as jnp
import numpy as np
import pytest

from weightspace import checkpointing


def _state(step):
    return {"weights": jnp.full((64,), float(step)), "step": jnp.int32(step)}


def _save_steps(directory, steps=(1, 2, 3)):
    manager = checkpointing.CheckpointManager(directory)
    for step in steps:
        manager.save(step, _state(step))
    manager.close()


def _flip_a_byte(step_directory):
    """Flips a byte in the middle of the largest array data file (TensorStore's `d/`) of a step."""
    data = [os.path.join(r, n) for r, _, names in os.walk(step_directory) for n in names if os.path.basename(r) == "d"]
    file = max(data, key=os.path.getsize)
    with open(file, "r+b") as f:
        f.seek(os.path.getsize(file) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def _restore_latest(manager):
    step = manager.latest_step()
    return step, manager.restore(step, checkpointing.abstract_of(_state(0)))


def test_every_kept_step_has_checksums_that_match(tmp_path):
    _save_steps(tmp_path / "latest")
    assert sorted(os.listdir(tmp_path / "latest")) == ["2", "3"]  # the latest two are kept, for a fallback
    for step in ("2", "3"):
        assert os.path.exists(tmp_path / "latest" / step / checkpointing.CHECKSUMS)
        assert checkpointing._damage(str(tmp_path / "latest" / step)) is None
    step, state = _restore_latest(checkpointing.CheckpointManager(tmp_path / "latest"))
    assert step == 3 and int(state["step"]) == 3


@pytest.mark.parametrize("damage", ["flipped byte", "checksums removed"])
def test_a_damaged_latest_step_is_set_aside_and_the_previous_one_restored(damage, tmp_path):
    _save_steps(tmp_path / "latest")
    if damage == "flipped byte":
        _flip_a_byte(tmp_path / "latest" / "3")
    else:
        os.remove(tmp_path / "latest" / "3" / checkpointing.CHECKSUMS)
    with mock.patch.object(checkpointing.logging, "warning") as warning:
        manager = checkpointing.CheckpointManager(tmp_path / "latest")
    assert "Checkpoint step 3" in warning.call_args_list[0][0][0] % warning.call_args_list[0][0][1:]
    step, state = _restore_latest(manager)
    assert step == 2 and int(state["step"]) == 2
    np.testing.assert_array_equal(state["weights"], np.full(64, 2.0))
    # Nothing is deleted: the damaged step is moved beside the directory, and saving step 3 again works.
    assert [name.split("-")[0] for name in os.listdir(tmp_path / "latest.damaged")] == ["3"]
    manager.save(3, _state(3))
    manager.close()
    assert checkpointing.CheckpointManager(tmp_path / "latest").latest_step() == 3


def test_a_reader_skips_a_damaged_step_without_moving_it(tmp_path):
    _save_steps(tmp_path / "latest")
    _flip_a_byte(tmp_path / "latest" / "3")
    reader = checkpointing.CheckpointManager(tmp_path / "latest", process_local=True)
    assert reader.latest_step() == 2
    assert sorted(os.listdir(tmp_path / "latest")) == ["2", "3"]


def test_checkpoints_written_before_checksums_are_used_unchecked_with_a_warning(tmp_path):
    _save_steps(tmp_path / "latest")
    for step in ("2", "3"):
        os.remove(tmp_path / "latest" / step / checkpointing.CHECKSUMS)
    with mock.patch.object(checkpointing.logging, "warning") as warning:
        assert checkpointing.CheckpointManager(tmp_path / "latest", process_local=True).latest_step() == 3
    assert "no checksums" in warning.call_args[0][0]


def test_the_temporary_directory_of_a_save_cut_short_is_removed_by_the_next_writer_only(tmp_path):
    _save_steps(tmp_path / "latest")
    (tmp_path / "latest" / "4.orbax-checkpoint-tmp-1234").mkdir()
    assert checkpointing.CheckpointManager(tmp_path / "latest", process_local=True).latest_step() == 3
    assert (tmp_path / "latest" / "4.orbax-checkpoint-tmp-1234").exists()
    assert checkpointing.CheckpointManager(tmp_path / "latest").latest_step() == 3
    assert sorted(os.listdir(tmp_path / "latest")) == ["2", "3"]
