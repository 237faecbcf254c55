"""The zoo builder end to end on the smoke preset: contents, resume, devices, bad input."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import numpy as np
import pytest

from weightspace import lstm, multihost, tasks, zoo
from zoo_builder import build, train
from zoo_builder.configs import formal_languages, sequential_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Smoke preset with 6 runs and a few more steps, so an interrupted build has something left to do.
OVERRIDES = ["--config.num_runs=6", "--config.train.snapshot_steps=(0,10,20,30)"]


def _config():
    config = formal_languages.get_config("smoke")
    config.num_runs = 6
    config.train.snapshot_steps = (0, 10, 20, 30)
    return config


def _command(workdir, cpu_devices, *extra):
    return [
        sys.executable, "-m", "zoo_builder.main", "--config=configs/formal_languages.py:smoke",
        f"--workdir={workdir}", f"--cpu_devices={cpu_devices}", *OVERRIDES, *extra,
    ]  # fmt: skip


def _env():
    return {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(workdir, cpu_devices, *extra):
    return subprocess.run(
        _command(workdir, cpu_devices, *extra), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )


def _assert_same_zoo(a, b):
    assert len(a) == len(b)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    for name in a.behaviour:
        np.testing.assert_array_equal(a.behaviour[name], b.behaviour[name], err_msg=name)
    for name in a.metadata:
        np.testing.assert_array_equal(a.metadata[name], b.metadata[name], err_msg=name)


@pytest.fixture(scope="module")
def reference_zoo(tmp_path_factory):
    """An uninterrupted build on two devices, through the command line."""
    workdir = tmp_path_factory.mktemp("reference")
    result = _run(workdir, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    return zoo.load(workdir / "zoo"), workdir


@pytest.mark.slow
def test_zoo_contents(reference_zoo):
    loaded, workdir = reference_zoo
    config = _config()
    assert len(loaded) == 6 * 4
    np.testing.assert_array_equal(loaded.metadata["run"], np.repeat(np.arange(6), 4))
    np.testing.assert_array_equal(loaded.metadata["step"], np.tile([0, 10, 20, 30], 6))
    assert loaded.sequences.shape == (24, 8, 42) and loaded.log_probs.shape == (24, 8, 41, 6)
    assert loaded.metadata["task"].shape == (24, 4) and loaded.metadata["correct"].shape == (24,)
    family = tasks.make("formal_languages", config.task.settings)
    expected_tasks = family.sample_tasks(config.seed, np.arange(6))["task"]
    np.testing.assert_array_equal(loaded.metadata["task"][::4], expected_tasks)
    # Step-0 snapshots are the PyTorch-style init from each run's own key.
    keys = train.run_keys(config.seed, np.arange(6))
    for run in range(6):
        init = lstm.init(jax.random.fold_in(keys[run], 0), loaded.spec)
        for name in init:
            np.testing.assert_array_equal(loaded.params[name][4 * run], init[name])
    # Training lowers each run's loss on fresh batches of its task.
    for run in range(6):
        task = {"task": loaded.metadata["task"][4 * run]}
        batch = family.train_batch(jax.random.key(123), task)
        first, last = (jax.tree.map(lambda x, i=i: x[i], loaded.params) for i in (4 * run, 4 * run + 3))
        assert family.loss(last, batch) < 0.8 * family.loss(first, batch)
    summary = json.loads((workdir / "zoo.json").read_text())
    assert summary["num_snapshots"] == 24 and summary["num_distinct_tasks"] == 6
    assert summary["trained_share"] == 1.0  # built in one go: its wall time is the whole build's
    assert set(summary["mean_metrics_per_step"]["correct"]) == {"0", "10", "20", "30"}
    assert not os.path.exists(workdir / "parts") and not os.path.exists(workdir / "checkpoints")


@pytest.mark.slow
def test_eight_devices_build_the_same_zoo(reference_zoo, tmp_path):
    result = _run(tmp_path, 8)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 8 cpu device(s)" in result.stderr
    _assert_same_zoo(zoo.load(tmp_path / "zoo"), reference_zoo[0])


@pytest.mark.slow
def test_one_device_builds_the_same_zoo_up_to_rounding(reference_zoo, tmp_path):
    """XLA compiles a single-device program through another pipeline: rounding differs, nothing else."""
    result = _run(tmp_path, 1)
    assert result.returncode == 0, result.stderr[-3000:]
    one, reference = zoo.load(tmp_path / "zoo"), reference_zoo[0]
    for name in reference.params:
        np.testing.assert_allclose(one.params[name], reference.params[name], atol=1e-5, err_msg=name)
    for name in ("run", "step", "task"):
        np.testing.assert_array_equal(one.metadata[name], reference.metadata[name])


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_zoo(reference_zoo, tmp_path):
    process = subprocess.Popen(
        _command(tmp_path, 2, "--config.train.checkpoint_every_steps=5"),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it as soon as the second group has a checkpoint: mid-build, mid-group.
    deadline = time.time() + 240
    while not os.path.isdir(tmp_path / "checkpoints" / "group_00001" / "10") and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not zoo.is_complete(tmp_path / "zoo"), "the build finished before it could be killed"
    result = _run(tmp_path, 2, "--config.train.checkpoint_every_steps=5")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_at = int(re.search(r"Resuming group 2/3 at step (\d+)", result.stderr).group(1))
    _assert_same_zoo(zoo.load(tmp_path / "zoo"), reference_zoo[0])
    # Its wall time is the resuming process's, which trained the second group from its checkpoint and the third.
    summary = json.loads((tmp_path / "zoo.json").read_text())
    assert summary["trained_share"] == pytest.approx((30 - resumed_at + 30) / (3 * 30))


@pytest.mark.slow
def test_finished_build_is_not_redone(reference_zoo):
    _, workdir = reference_zoo
    assert build.build(_config(), str(workdir)) == str(workdir / "zoo")


def _contents(workdir):
    return {
        os.path.relpath(os.path.join(root, name), workdir): os.path.getmtime(os.path.join(root, name))
        for root, _, names in os.walk(workdir)
        for name in names
        if name != ".lock"
    }


def _digests(workdir):
    """SHA-256 of every file under `workdir` but its lock."""
    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(workdir).rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.slow
def test_silent_1_a_flipped_byte_in_a_finished_zoo_is_refused_on_reuse(reference_zoo, tmp_path):
    """A rerun on a finished build checks its zoo: an intact one is complete (hashed once, then only looked at);
    one with a flipped byte is refused in one line naming the array, also through the command line (exit 2),
    and nothing is changed."""
    _, reference = reference_zoo
    workdir = tmp_path / "build"
    shutil.copytree(reference, workdir)
    for hashes in (True, False):  # the copy's files are hashed once, then recorded (`zoo.verify`)
        with (
            mock.patch.object(build.logging, "info") as info,
            mock.patch.object(zoo, "_read_checked", wraps=zoo._read_checked) as read,
        ):
            assert build.build(_config(), str(workdir)) == str(workdir / "zoo")
        assert any("is complete; nothing to do" in call.args[0] for call in info.call_args_list)
        assert bool(read.call_count) == hashes
    npy = workdir / "zoo" / "npy"
    file = max(npy.rglob("*.npy"), key=lambda p: p.stat().st_size)
    name = str(file.relative_to(npy).with_suffix(""))
    time.sleep(0.05)  # the file times move on by a clock tick from the verification's, as outside a test
    content = bytearray(file.read_bytes())
    content[-1] ^= 0xFF
    file.write_bytes(bytes(content))
    before = _digests(workdir)
    refused = rf"Zoo at {re.escape(str(workdir / 'zoo'))}: the stored array '{name}' does not match metadata\.json"
    with pytest.raises(zoo.ZooError, match=refused):
        build.build(_config(), str(workdir))
    assert _digests(workdir) == before
    result = _run(workdir, 2)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"Error \(ZooError\): {refused} .*Re-copy or rebuild the zoo\.", last), last
    assert _digests(workdir) == before


@pytest.mark.parametrize("preset", ["other_seed", "other_runs", "mnist"])
@pytest.mark.slow
def test_a_finished_workdir_refuses_another_config(preset, reference_zoo):
    _, workdir = reference_zoo
    config = _config()
    if preset == "other_seed":
        config.seed = 7
    elif preset == "other_runs":
        config.num_runs = 8
    else:
        config = sequential_mnist.get_config("smoke")
    before = _contents(workdir)
    changed = r"(seed: 0 -> 7|num_runs: 6 -> 8|task\.name: 'formal_languages' -> 'sequential_mnist')"
    with pytest.raises(build.BuildError, match=rf"holds a build with another config; it differs in .*{changed}"):
        build.build(config, str(workdir))
    assert _contents(workdir) == before


def test_a_resume_on_another_device_count_is_refused(tmp_path):
    """A build started on 2 devices and resumed on this test's 1 would not be bit-identical: refused."""
    workdir = tmp_path / "build"
    workdir.mkdir()
    build.check_config(_config(), str(workdir))
    (workdir / "layout.json").write_text(json.dumps({"group_size": 2, "num_devices": 2, "backend": "cpu"}))
    before = _contents(workdir)
    message = r"started on 2 cpu devices .* Resume on 2 cpu devices \(on CPU: --cpu_devices=2\)"
    with pytest.raises(build.BuildError, match=message):
        build.build(_config(), str(workdir))
    assert _contents(workdir) == before


@pytest.mark.slow
def test_a_kill_after_the_zoo_is_in_place_is_finished_by_the_next_run(reference_zoo, tmp_path):
    """Killed between renaming the zoo into place and writing zoo.json: the rerun writes it and cleans up."""
    _, reference = reference_zoo
    workdir = tmp_path / "build"
    shutil.copytree(reference, workdir)
    summary = json.loads((workdir / "zoo.json").read_text())
    (workdir / "zoo.json").unlink()
    (workdir / "parts" / "group_00000" / "step_00000010").mkdir(parents=True)
    (workdir / ".zoo.partial-x1y2z3").mkdir()
    build.build(_config(), str(workdir))
    rewritten = json.loads((workdir / "zoo.json").read_text())
    del summary["wall_time_s"], summary["trained_share"]  # the interrupted build's time is lost with it
    assert rewritten == {**summary, "zoo": str(workdir / "zoo")}
    assert sorted(os.listdir(workdir)) == [
        ".lock",
        "build_config.json",
        "layout.json",
        "owner.json",
        "tensorboard",
        "zoo",
        "zoo.json",
    ]


@pytest.mark.slow
def test_diverged_runs_stop_the_build_naming_them(tmp_path):
    config = _config()
    config.train.lr_points = ((0, 1e30),)
    with pytest.raises(build.BuildError, match=r"Runs \[0\] diverged .* by step 10"):
        build.build(config, str(tmp_path))
    assert not zoo.is_complete(tmp_path / "zoo")


def test_second_builder_on_a_busy_workdir(tmp_path):
    busy = rf"Another zoo builder \(pid {os.getpid()}\) is writing {re.escape(str(tmp_path))}"
    lock = multihost.workdir_lock(str(tmp_path), "zoo builder", build.BuildError)
    with lock, pytest.raises(build.BuildError, match=busy):
        build.build(_config(), str(tmp_path))
    assert not os.path.exists(tmp_path / "build_config.json")


@pytest.mark.parametrize(
    ("key", "value"), [("num_runs", 0), ("train.steps_per_call", 0), ("train.checkpoint_every_steps", -1)]
)
def test_bad_values_are_refused_before_anything_is_written(key, value, tmp_path):
    config = _config()
    config.update_from_flattened_dict({key: value})
    with pytest.raises(build.BuildError, match=rf"{key}={value} must be an integer >= 1"):
        build.build(config, str(tmp_path / "build"))
    assert not os.path.exists(tmp_path / "build")


def test_an_unknown_family_is_refused_before_anything_is_written(tmp_path):
    config = _config()
    config.task.name = "parity"
    with pytest.raises(
        build.BuildError, match=r"task.name='parity' must be one of \['combination_lock', 'formal_languages', "
    ):
        build.build(config, str(tmp_path / "build"))
    assert not os.path.exists(tmp_path / "build")


def test_an_empty_workdir_is_refused():
    with pytest.raises(build.BuildError, match="the workdir is empty"):
        build.build(_config(), "")


def test_changed_config_on_resume_is_refused(tmp_path):
    config = _config()
    build.check_config(config, str(tmp_path))
    config.train.steps_per_call = 2  # execution settings may change
    build.check_config(config, str(tmp_path))
    config.seed = 1
    config.train.lr_points = ((0, 0.1),)
    with pytest.raises(build.BuildError, match=r"differs in seed: 0 -> 1; train\.lr_points: .* -> \[\[0, 0\.1\]\]\."):
        build.check_config(config, str(tmp_path))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.snapshot_steps", (0, 20, 10), "train.snapshot_steps=.* must be increasing"),
        ("train.snapshot_steps", (), "train.snapshot_steps=.* at least one"),
        ("lstm.hidden_size", 0, "lstm.hidden_size=0 must be an integer >= 1"),
        ("lstm.num_layers", -1, "lstm.num_layers=-1 must be an integer >= 1"),
        ("seed", -1, "seed=-1 must be an integer >= 0"),
        ("train.lr_points", ((0, float("nan")),), r"train.lr_points=.* must be \(step, learning rate > 0\) pairs"),
        ("train.lr_points", ((0, -0.01),), r"learning rate > 0"),
        ("task.settings.batch_size", 0, "formal_languages settings: batch_size=0 must be at least 1"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written_and_then_accepted(key, value, message, tmp_path):
    config = _config()
    good = config[key]
    config.update_from_flattened_dict({key: value})
    with pytest.raises(build.BuildError, match=message):
        build.build(config, str(tmp_path / "build"))
    assert not os.path.exists(tmp_path / "build")
    config.update_from_flattened_dict({key: good})
    build.validate(config, str(tmp_path / "build"))  # the corrected command is not "another config"


def test_unknown_config_key_fails_clearly(tmp_path):
    result = _run(tmp_path, 1, "--config.train.snapshot_stepz=(0,1)")
    assert result.returncode != 0
    assert "snapshot_stepz" in result.stderr
    assert not os.path.exists(tmp_path / "zoo")
