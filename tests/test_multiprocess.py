"""Multi-process jobs on one machine (JAX's distributed runtime, gloo collectives): two processes of two
CPU devices each build the same zoo as one process of four devices, bit for bit, and two processes of
one device train an encoder as one process of two devices does, also when a process is killed and the
job is relaunched; a process that does not share the workdir is named.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from weightspace import zoo
from zoo_builder import launch_local

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smoke zoo trained to step 300 with a checkpoint every 50 steps, one run per device: groups of 4.
ARGS = [
    "--config=configs/formal_languages.py:smoke",
    "--config.layout.runs_per_device=1",
    "--config.train.snapshot_steps=(0,10,20,300)",
    "--config.train.checkpoint_every_steps=50",
]


def _launch(module: str, devices_per_process: int) -> list[str]:
    return [
        sys.executable, "-m", "zoo_builder.launch_local", f"--module={module}", "--processes=2",
        f"--devices_per_process={devices_per_process}", "--",
    ]  # fmt: skip


LAUNCH = _launch("zoo_builder.main", 2)


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def _assert_same_zoo(a: str, b: str) -> None:
    first, second = zoo.load(a), zoo.load(b)
    for part in ("params", "behaviour", "metadata"):
        same = jax.tree.map(
            lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), getattr(first, part), getattr(second, part)
        )
        assert all(jax.tree.leaves(same)), part


def _kill_process_1_after_the_first_checkpoint(command: list[str], workdir, checkpoints) -> str:
    """Starts the 2-process job `command`, SIGKILLs its process 1 once `checkpoints` holds a checkpoint, and
    returns the job's stderr after checking that it failed naming process 1."""
    job = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())):
        assert job.poll() is None and time.time() < deadline, "the job ended before its first checkpoint"
        time.sleep(0.2)
    worker = subprocess.run(
        ["pgrep", "-f", "--", f"--workdir={workdir} .*--process_id=1"], capture_output=True, text=True
    )
    os.kill(int(worker.stdout.split()[0]), signal.SIGKILL)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode != 0 and "process 1 exited with code -9; stopping the others" in stderr
    return stderr


@pytest.mark.slow
def test_two_processes_build_the_one_process_zoo_also_after_a_kill(tmp_path):
    single = _run([sys.executable, "-m", "zoo_builder.main", *ARGS, "--cpu_devices=4", f"--workdir={tmp_path / 'one'}"])
    assert single.returncode == 0, single.stderr[-3000:]

    workdir = tmp_path / "two"
    _kill_process_1_after_the_first_checkpoint(
        [*LAUNCH, *ARGS, f"--workdir={workdir}"], workdir, workdir / "checkpoints" / "group_00000"
    )
    assert not (workdir / "zoo").exists()

    resumed = _run([*LAUNCH, *ARGS, f"--workdir={workdir}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming group 1/1 at step" in resumed.stderr
    _assert_same_zoo(str(tmp_path / "one" / "zoo"), str(workdir / "zoo"))


def _metrics(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_train_as_one_also_after_a_kill(tmp_path):
    zoo_dir = tmp_path / "zoo"
    built = _run([sys.executable, "-m", "zoo_builder.main", *ARGS[:1], "--cpu_devices=1", f"--workdir={zoo_dir}"])
    assert built.returncode == 0, built.stderr[-3000:]
    args = [
        "--config=configs/noninteractive.py:smoke", f"--config.zoo.path={zoo_dir / 'zoo'}",
        "--config.train.data_parallel=true", "--config.train.num_steps=60",
    ]  # fmt: skip
    single = _run([
        sys.executable, "-m", "experiments.main", *args, "--cpu_devices=2", f"--workdir={tmp_path / 'one'}",
        "--config.evaluate.after_training=false",
    ])  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]

    workdir = tmp_path / "two"
    command = [*_launch("experiments.main", 1), *args, f"--workdir={workdir}"]
    _kill_process_1_after_the_first_checkpoint(command, workdir, workdir / "checkpoints" / "latest")
    assert not (workdir / "evaluation.json").exists()
    # The relaunch reads the zoo from its files (each process reads every batch and places its half).
    resumed = _run([*command, "--config.train.zoo_on_disk=true"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from step" in resumed.stderr

    # The same global batch split over the same two devices: the losses agree to float rounding.
    one, two = _metrics(tmp_path / "one"), _metrics(workdir)
    assert [row["step"] for row in one] == [row["step"] for row in two]
    for key in ("train_loss", "grad_norm", "eval_loss", "ood_loss"):
        np.testing.assert_allclose([r.get(key, 0) for r in two], [r.get(key, 0) for r in one], rtol=1e-5)
    # Process 0 wrote the evaluation of the best checkpoint once training ended.
    evaluation = json.loads((workdir / "evaluation.json").read_text())
    assert evaluation["loss"]["eval"] == pytest.approx(min(row["eval_loss"] for row in one if "eval_loss" in row))


def test_a_process_that_does_not_see_the_workdir_is_named(tmp_path):
    """Two processes of one job given different workdirs (as on hosts without a shared filesystem)."""
    port = launch_local.free_port()
    common = [
        sys.executable, "-m", "zoo_builder.main", *ARGS[:1], "--cpu_devices=1",
        f"--coordinator_address=localhost:{port}", "--num_processes=2",
    ]  # fmt: skip
    own = [[f"--workdir={tmp_path / f'host{index}'}", f"--process_id={index}"] for index in range(2)]
    jobs = [subprocess.Popen([*common, *args], cwd=REPO, stderr=subprocess.PIPE, text=True) for args in own]
    for job in jobs:
        _, stderr = job.communicate(timeout=300)
        assert job.returncode != 0
        assert "Processes [1] of this 2-process job do not see" in stderr and "must share the workdir" in stderr
    assert not (tmp_path / "host0" / "build_config.json").exists()


def test_processes_started_with_different_configs_are_refused_before_anything_is_written(tmp_path):
    """Process 1 given --config.seed=7, process 0 the default: both refuse, naming process 1."""
    port = launch_local.free_port()
    common = [
        sys.executable, "-m", "zoo_builder.main", *ARGS[:1], "--cpu_devices=1", f"--workdir={tmp_path / 'zoo'}",
        f"--coordinator_address=localhost:{port}", "--num_processes=2",
    ]  # fmt: skip
    own = [["--process_id=0"], ["--process_id=1", "--config.seed=7"]]
    jobs = [subprocess.Popen([*common, *args], cwd=REPO, stderr=subprocess.PIPE, text=True) for args in own]
    for job in jobs:
        _, stderr = job.communicate(timeout=300)
        assert job.returncode == 2
        assert "Error (BuildError): Processes [1] of this 2-process job were started with another config" in stderr
        assert "Traceback" not in stderr
    assert not (tmp_path / "zoo" / "build_config.json").exists()
