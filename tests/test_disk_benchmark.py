"""The on-disk training benchmark runs both modes and reports a run its wrapper kills."""

import json
import os
import subprocess
import sys

import pytest

from zoo_builder import build
from zoo_builder.configs import formal_languages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _benchmark(zoo_path, *extra):
    command = [
        sys.executable, "-m", "experiments.disk_benchmark", "--config=configs/flat.py:smoke", f"--zoo={zoo_path}",
        "--steps=20", "--log_every=5", "--memory_cap_mb=100000", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result


@pytest.mark.slow
def test_both_modes_run_and_a_killed_run_is_named(tmp_path):
    zoo_path = build.build(formal_languages.get_config("smoke"), str(tmp_path / "zoo"))
    summary, result = _benchmark(zoo_path)
    for mode in ("in memory", "on disk"):
        assert summary[mode]["exits"] == ["ok"] and summary[mode]["steps_per_s"] > 0
        assert 0 < summary[mode]["peak_rss_mb"] < 100000
    assert summary["disk_over_memory"] > 0 and "(under the cap)" in result.stdout
    summary, result = _benchmark(zoo_path, "--wrapper=timeout -s KILL 1")
    assert summary["on disk"]["exits"] == ["killed by signal 9"] and summary["disk_over_memory"] is None
    assert "The on-disk run failed (killed by signal 9)" in result.stderr
