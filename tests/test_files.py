"""Workdir locks, JSON helpers and metrics files (weightspace.files, weightspace.metrics)."""

import os
import re
import signal
import subprocess
import sys

import pytest

from weightspace import files, metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Holds the lock of the workdir given as argv[1], says so, then waits to be killed.
_HOLDER = """
import sys, time
from weightspace import files
with files.workdir_lock(sys.argv[1], "test holder"):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold_in_another_process(workdir):
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(workdir)], cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": REPO},
    )  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_holder_is_refused_at_once_naming_the_workdir_and_pid(tmp_path):
    with files.workdir_lock(tmp_path, "training run"):
        assert (tmp_path / files.LOCK_FILE).read_text() == f"{os.getpid()}\n"
        busy = rf"Another training run \(pid {os.getpid()}\) is writing {re.escape(str(tmp_path))}"
        with pytest.raises(files.WorkdirBusyError, match=busy), files.workdir_lock(tmp_path, "training run"):
            pass
        # The caller's own error class.
        with pytest.raises(KeyError, match=busy), files.workdir_lock(tmp_path, "training run", error=KeyError):
            pass


def test_the_lock_is_released_on_an_exception(tmp_path):
    with pytest.raises(ZeroDivisionError), files.workdir_lock(tmp_path, "training run"):
        raise ZeroDivisionError
    with files.workdir_lock(tmp_path, "training run"):
        pass


def test_a_lock_of_another_process_refuses_and_is_taken_over_once_it_is_killed(tmp_path):
    holder = _hold_in_another_process(tmp_path)
    try:
        busy = rf"\(pid {holder.pid}\) is writing {re.escape(str(tmp_path))}"
        with pytest.raises(files.WorkdirBusyError, match=busy), files.workdir_lock(tmp_path, "training run"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / files.LOCK_FILE).read_text() == f"{holder.pid}\n"  # stale: its holder is dead
    with files.workdir_lock(tmp_path, "training run"):
        assert (tmp_path / files.LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_flatten_gives_dotted_paths():
    assert files.flatten({"a": 1, "b": {"c": [1, 2], "d": {"e": None}}}) == {"a": 1, "b.c": [1, 2], "b.d.e": None}


def test_metrics_files_survive_a_kill_mid_line_and_a_resume_drops_what_it_replays(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for step in (5, 10, 15):
        metrics.append(path, {"step": step, "loss": 1.0 / step})
    with open(path, "a") as f:
        f.write('{"step": 2')  # killed while writing
    assert [r["step"] for r in metrics.read(path)] == [5, 10, 15]
    metrics.drop_after(path, 10)
    assert path.read_text().splitlines() == ['{"step": 5, "loss": 0.2}', '{"step": 10, "loss": 0.1}']
    path.write_text('{"step": 5}\nnot json\n{"step": 10}\n')
    with pytest.raises(metrics.MetricsError, match="line 2 is not JSON"):
        metrics.read(path)
    assert metrics.read(tmp_path / "missing.jsonl") == []
