"""The hostile cases of "nothing silent" (bad input gets one clear line, and nothing is lost), by number, tried
through the entry points.

Each refusal is one line on stderr, `Error (<type>): <cause and fix>`, with exit status 2 and no file
changed (every file's SHA-256 before and after). The cases handled rather than refused check what was
kept. Cases checked closer to the code live beside it: 4 (tables reuse only runs of the asked variant)
in test_tables, 5 (evaluation redone when `evaluate.*` changes) in test_evaluate, 6 (processes started
with other configs) in test_multiprocess, 9 (rows overwritten after loading) in test_zoo, and the
builder's value checks of 7 and 10 one by one in test_build.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from experiments.configs import flat
from experiments.run import train
from tests.command_line import digests
from weightspace import checkpointing, zoo
from zoo_builder import build
from zoo_builder.configs import formal_languages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ("experiments.main", "--config=configs/flat.py:smoke")
BUILD = ("zoo_builder.main", "--config=configs/formal_languages.py:smoke")


def _entry_point(module, *args):
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTSPACE_TRACEBACK"}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True, text=True, env=env, timeout=600
    )


def _refused(tmp_path, command, error, message):
    """Runs `command` (module, args...); asserts one line naming `error` and matching `message`, nothing changed."""
    before = digests(tmp_path)
    result = _entry_point(*command)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert re.fullmatch(rf"Error \({error}\): .*{message}.*", lines[-1]), lines[-1]
    assert digests(tmp_path) == before


@pytest.fixture(scope="module")
def smoke_run(smoke_zoo, tmp_path_factory):
    """A finished smoke run of 4 steps, checkpointed every 2."""
    workdir = tmp_path_factory.mktemp("run")
    config = flat.get_config("smoke")
    config.zoo.path = smoke_zoo
    config.train.num_steps, config.train.checkpoint_every_steps, config.eval.every_steps = 4, 2, 2
    train.train(config, str(workdir))
    return workdir


def _resume_command(workdir, num_steps):
    """experiments.main resuming the smoke run copied to `workdir` (its own zoo, its cadence)."""
    config = json.loads((workdir / "config.json").read_text())
    return [
        *TRAIN, f"--workdir={workdir}", f"--config.zoo.path={config['zoo']['path']}",
        f"--config.train.num_steps={num_steps}", "--config.train.checkpoint_every_steps=2",
        "--config.eval.every_steps=2",
    ]  # fmt: skip


def _copy_zoo(smoke_zoo, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(smoke_zoo, copy)
    return copy


def test_1_an_upgrade_beside_a_stray_npy_is_refused_and_the_arrays_survive(smoke_zoo, tmp_path):
    """An Orbax-stored zoo with an empty (stray) npy/: nothing deleted; without the stray, it upgrades and loads."""
    path = _copy_zoo(smoke_zoo, tmp_path)
    loaded = zoo.load(path)
    shutil.rmtree(path / "npy")
    checkpointing.save_pytree(path / "arrays", {"params": loaded.params, "behaviour": loaded.behaviour})
    (path / "npy").mkdir()
    _refused(tmp_path, ["experiments.upgrade", f"--path={path}"], "ZooError", "is not a complete copy of them")
    shutil.rmtree(path / "npy")
    assert zoo.upgrade(path)
    again = zoo.load(path)
    np.testing.assert_array_equal(again.log_probs, loaded.log_probs)


@pytest.mark.parametrize("edit", ["column", "family", "manifest"])
def test_2_an_edited_metadata_json_is_refused_before_training(edit, smoke_zoo, tmp_path):
    path = _copy_zoo(smoke_zoo, tmp_path)
    document = json.loads((path / "metadata.json").read_text())
    if edit == "column":
        document["snapshots"]["step"][0] += 1  # another step for one snapshot's label
        message = "does not match its checksum"
    elif edit == "family":
        document["family"] = "sequential_mnist"
        message = "does not match its checksum"
    else:
        del document["arrays"]  # the manifest of a version-3 zoo
        message = "has lost its manifest"
    (path / "metadata.json").write_text(json.dumps(document))
    _refused(tmp_path, [*TRAIN, f"--workdir={tmp_path / 'run'}", f"--config.zoo.path={path}"], "ZooError", message)


@pytest.mark.slow
def test_3_a_flipped_byte_in_the_latest_checkpoint_resumes_from_the_previous_one(smoke_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(smoke_run, workdir)
    data = [p for p in (workdir / "checkpoints" / "latest" / "4").rglob("*") if p.is_file() and p.parent.name == "d"]
    file = max(data, key=lambda p: p.stat().st_size)
    content = bytearray(file.read_bytes())
    content[len(content) // 2] ^= 0xFF
    file.write_bytes(bytes(content))
    result = _entry_point(*_resume_command(workdir, 4))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Checkpoint step 4 in" in result.stderr and "is damaged" in result.stderr
    assert "Resuming from step 2" in result.stderr
    assert [p.name.split("-")[0] for p in (workdir / "checkpoints" / "latest.damaged").iterdir()] == ["4"]
    manager = checkpointing.CheckpointManager(workdir / "checkpoints" / "latest", process_local=True)
    assert manager.latest_step() == 4 and checkpointing._damage(str(workdir / "checkpoints" / "latest" / "4")) is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--config.task.settings.batch_size=0", "batch_size=0 must be at least 1"),  # 7
        ("--config.train.lr_points=((0,-0.01),)", r"learning rate > 0"),  # 7
        ("--config.train.snapshot_steps=(10,5)", "train.snapshot_steps=.* must be increasing"),  # 10
        ("--config.lstm.hidden_size=0", "lstm.hidden_size=0 must be an integer >= 1"),  # 10
    ],
)
def test_7_10_bad_builder_values_are_refused_before_anything_is_written(override, message, tmp_path):
    _refused(tmp_path, [*BUILD, f"--workdir={tmp_path / 'build'}", override], "ConfigError", message)


def test_8_a_build_resumed_on_another_device_count_is_refused(smoke_zoo, tmp_path):
    workdir = tmp_path / "build"
    workdir.mkdir()
    build.check_config(formal_languages.get_config("smoke"), str(workdir))
    (workdir / "layout.json").write_text(json.dumps({"group_size": 2, "num_devices": 2, "backend": "cpu"}))
    _refused(tmp_path, [*BUILD, f"--workdir={workdir}", "--cpu_devices=1"], "BuildError", "--cpu_devices=2")


@pytest.mark.slow
def test_8_a_run_resumed_on_other_devices_is_refused(smoke_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(smoke_run, workdir)
    assert json.loads((workdir / "devices.json").read_text()) == {"num_devices": 1, "backend": "cpu"}
    (workdir / "devices.json").write_text(json.dumps({"num_devices": 2, "backend": "cpu"}))  # as if started on 2
    _refused(tmp_path, _resume_command(workdir, 6), "TrainingError", r"started on 2 cpu devices .*--cpu_devices=2")


def test_11_a_workdir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    _refused(tmp_path, [*BUILD, f"--workdir={tmp_path / 'a_file' / 'zoo'}"], "NotADirectoryError", "a_file")


def test_11_a_finished_zoo_whose_complete_file_was_deleted_is_not_rebuilt(smoke_zoo, tmp_path):
    workdir = tmp_path / "build"
    shutil.copytree(os.path.dirname(smoke_zoo), workdir)
    (workdir / "zoo" / "COMPLETE").unlink()
    _refused(tmp_path, [*BUILD, f"--workdir={workdir}"], "BuildError", "is not a complete zoo .* move it away")


def test_11_evaluating_a_run_killed_before_its_first_checkpoint(smoke_run, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    for name in ("config.json", "zoo.json"):
        shutil.copy(smoke_run / name, workdir / name)
    (workdir / "checkpoints").mkdir()
    message = "No 'best' checkpoint in .* the run stopped before it saved one"
    _refused(tmp_path, ["experiments.run.evaluate", f"--workdir={workdir}"], "TrainingError", message)


@pytest.mark.parametrize(
    ("module", "config", "message"),
    [
        ("experiments.main", "zoo_builder/configs/formal_languages.py:smoke", "is not an experiment config"),
        ("zoo_builder.main", "experiments/configs/flat.py:smoke", "is not a zoo builder config"),
        ("experiments.main", "{tmp}/notes.txt", r"does not load as a config file \(SyntaxError"),
        ("experiments.main", "{tmp}/config.json", r"does not load as a config file \(AttributeError: .*get_config"),
        ("experiments.main", "{tmp}/broken.py", r"does not load as a config file \(SyntaxError"),
    ],
)
def test_11_a_config_of_the_other_entry_point_or_not_python_is_refused(module, config, message, tmp_path):
    (tmp_path / "notes.txt").write_text("learning rate three\n")
    (tmp_path / "config.json").write_text('{"train": {"num_steps": 3}}\n')
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    command = [module, f"--config={config.format(tmp=tmp_path)}", f"--workdir={tmp_path / 'out'}"]
    _refused(tmp_path, command, "ConfigError", message)
