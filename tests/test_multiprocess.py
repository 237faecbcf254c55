"""Multi-process zoo building on one machine: two processes of two CPU devices each (JAX's distributed
runtime, gloo collectives) build the same zoo as one process of four devices, bit for bit, also when
a process is killed mid-build and the job is relaunched.
"""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from weightspace import zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smoke zoo trained to step 300 with a checkpoint every 50 steps, one run per device: groups of 4.
ARGS = [
    "--config=configs/formal_languages.py:smoke",
    "--config.layout.runs_per_device=1",
    "--config.train.snapshot_steps=(0,10,20,300)",
    "--config.train.checkpoint_every_steps=50",
]
LAUNCH = [sys.executable, "-m", "zoo_builder.launch_local", "--processes=2", "--devices_per_process=2", "--"]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def _assert_same_zoo(a: str, b: str) -> None:
    first, second = zoo.load(a), zoo.load(b)
    for part in ("params", "behaviour", "metadata"):
        same = jax.tree.map(
            lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), getattr(first, part), getattr(second, part)
        )
        assert all(jax.tree.leaves(same)), part


@pytest.mark.slow
def test_two_processes_build_the_one_process_zoo_also_after_a_kill(tmp_path):
    single = _run([sys.executable, "-m", "zoo_builder.main", *ARGS, "--cpu_devices=4", f"--workdir={tmp_path / 'one'}"])
    assert single.returncode == 0, single.stderr[-3000:]

    workdir = tmp_path / "two"
    job = subprocess.Popen([*LAUNCH, *ARGS, f"--workdir={workdir}"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    checkpoints = workdir / "checkpoints" / "group_00000"
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
    assert not (workdir / "zoo").exists()

    resumed = _run([*LAUNCH, *ARGS, f"--workdir={workdir}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming group 1/1 at step" in resumed.stderr
    _assert_same_zoo(str(tmp_path / "one" / "zoo"), str(workdir / "zoo"))
