"""TensorBoard event files: what TensorBoard shows of a run equals its metrics file, across resumes."""

import glob
import os
import shutil
import struct
import time

import numpy as np
import pytest
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from experiments.configs import flat
from experiments.run import layout, train
from weightspace import files, metrics, multihost, tensorboard
from zoo_builder import build
from zoo_builder.configs import formal_languages

# The trainer's tag of each metrics column (`recording.tensorboard_scalars`), written out to catch a change.
TAGS = {
    "train_loss": "loss/train",
    "eval_loss": "loss/eval",
    "ood_loss": "loss/ood",
    "eval_boundary_loss": "loss/eval_boundary",
    "ood_boundary_loss": "loss/ood_boundary",
    "grad_norm": "train/grad_norm",
    "steps_per_s": "train/steps_per_s",
}


def _events(path: str) -> list[event_pb2.Event]:
    """The events of one file, its TFRecord framing checked: length, CRC of length, data, CRC of data."""
    with open(path, "rb") as f:
        data = f.read()
    events, at = [], 0
    while at < len(data):
        header = data[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[at + 8 : at + 12])
        record = data[at + 12 : at + 12 + length]
        (record_crc,) = struct.unpack("<I", data[at + 12 + length : at + 16 + length])
        assert header_crc == masked_crc32c(header) and record_crc == masked_crc32c(record), path
        events.append(event_pb2.Event.FromString(record))
        at += 16 + length
    return events


def _all_events(logdir) -> list[event_pb2.Event]:
    """Every event in `logdir`, file after file in the order TensorBoard reads them (by name)."""
    paths = sorted(glob.glob(os.path.join(logdir, "*tfevents*")))
    assert paths, f"no event files in {logdir}"
    return [event for path in paths for event in _events(path)]


def _shown(logdir) -> dict[str, list[tuple[int, float]]]:
    """The scalars TensorBoard shows, {tag: [(step, value)]}: a SessionLog.START at step S (a writer's
    purge step) discards the events read before it at steps >= S."""
    shown: dict[str, list[tuple[int, float]]] = {}
    for event in _all_events(logdir):
        if event.session_log.status == event_pb2.SessionLog.START:
            shown = {tag: [(s, v) for s, v in points if s < event.step] for tag, points in shown.items()}
        for value in event.summary.value:
            shown.setdefault(value.tag, []).append((event.step, value.simple_value))
    return {tag: points for tag, points in shown.items() if points}


def _from_metrics(workdir) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard should show of a run: its metrics file's columns, as float32 like the events."""
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in metrics.read(layout.run_file(workdir, layout.METRICS)):
        for name, value in row.items():
            if name not in ("step", "time"):
                expected.setdefault(TAGS[name], []).append((row["step"], float(np.float32(value))))
    return expected


@pytest.fixture(scope="module")
def smoke_build(tmp_path_factory):
    """The workdir of a smoke zoo build."""
    workdir = tmp_path_factory.mktemp("build")
    build.build(formal_languages.get_config("smoke"), str(workdir))
    return workdir


def _config(smoke_build, num_steps):
    config = flat.get_config("smoke")
    config.zoo.path = str(smoke_build / "zoo")
    config.train.update(num_steps=num_steps, log_every_steps=1, checkpoint_every_steps=4)
    return config


def test_a_writer_from_a_resumed_step_replaces_the_later_steps(tmp_path):
    with tensorboard.EventWriter(tmp_path) as first:
        for step in range(1, 6):
            first.scalars(step, {"x": step})
    with tensorboard.EventWriter(tmp_path, resumed_step=2) as resumed:
        for step in (3, 4):
            resumed.scalars(step, {"x": 10 * step})
    assert _shown(tmp_path) == {"x": [(1, 1), (2, 2), (3, 30), (4, 40)]}


def test_scalars_reach_the_file_within_seconds(tmp_path):
    """While the writer is open, as a run killed later leaves it."""
    with tensorboard.EventWriter(tmp_path) as events:
        events.scalars(1, {"x": 1.0})
        deadline = time.time() + 10
        while not _shown(tmp_path) and time.time() < deadline:
            time.sleep(0.1)
        assert _shown(tmp_path) == {"x": [(1, 1.0)]}


def test_only_process_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(multihost, "is_primary", lambda: False)
    with tensorboard.EventWriter(tmp_path / "events") as events:
        events.scalars(1, {"x": 1.0})
    assert not os.path.exists(tmp_path / "events")


@pytest.mark.slow
def test_a_run_shows_its_metrics_each_step_once_across_resumes(smoke_build, tmp_path):
    """Trained to step 4, continued to 8, then, as if killed after logging step 8 but before checkpointing
    it, replayed from step 4: TensorBoard shows the metrics file each time, each step once."""
    logdir = tmp_path / tensorboard.DIRECTORY
    train.train(_config(smoke_build, num_steps=4), str(tmp_path))
    shown = _shown(logdir)
    assert shown == _from_metrics(tmp_path) and set(shown) == set(TAGS.values())
    assert [step for step, _ in shown["loss/train"]] == [1, 2, 3, 4]
    train.train(_config(smoke_build, num_steps=8), str(tmp_path))
    assert _shown(logdir) == _from_metrics(tmp_path)
    shutil.rmtree(tmp_path / "checkpoints" / "latest" / "8")
    train.train(_config(smoke_build, num_steps=8), str(tmp_path))
    written = [
        event.step for event in _all_events(logdir) for value in event.summary.value if value.tag == "loss/train"
    ]
    assert written == [1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8]  # the replayed steps are in the files twice
    shown = _shown(logdir)
    assert shown == _from_metrics(tmp_path)
    assert [step for step, _ in shown["loss/train"]] == list(range(1, 9))
    assert [step for step, _ in shown["loss/eval"]] == [4, 8]


def test_a_build_shows_its_loss_and_rate(smoke_build):
    config = formal_languages.get_config("smoke")
    last_step = config.train.snapshot_steps[-1]
    num_groups = -(-config.num_runs // files.read_json(smoke_build / "layout.json")["group_size"])
    shown = _shown(smoke_build / tensorboard.DIRECTORY)
    assert set(shown) == {"build/mean_loss", "build/model_steps_per_s"}
    steps = [step for step, _ in shown["build/mean_loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == num_groups * last_step
    assert {(g + 1) * last_step for g in range(num_groups)} <= set(steps)  # every group logs its last step
    assert all(np.isfinite(value) and value > 0 for points in shown.values() for _, value in points)
