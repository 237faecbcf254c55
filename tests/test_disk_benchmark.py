"""The on-disk training benchmark runs both modes, writes its results file and reports a run its wrapper kills."""

import os
import subprocess
import sys

import pytest

from experiments import report
from weightspace import files, zoo
from zoo_builder import build
from zoo_builder.configs import formal_languages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _benchmark(zoo_path, outdir, *extra):
    command = [
        sys.executable, "-m", "experiments.benchmarks.disk", "--config=configs/flat.py:smoke", f"--zoo={zoo_path}",
        "--steps=20", "--log_every=5", "--memory_cap_mb=100000", f"--outdir={outdir}", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = files.read_json(outdir / "disk_benchmark.json")
    rendered = report.disk_benchmark_markdown(summary)
    assert (outdir / "disk_benchmark.md").read_text() == rendered and rendered in result.stdout
    return summary, rendered, result


@pytest.mark.slow
def test_both_modes_run_and_a_killed_run_is_named(tmp_path):
    zoo_path = build.build(formal_languages.get_config("smoke"), str(tmp_path / "zoo"))
    summary, rendered, _ = _benchmark(zoo_path, tmp_path / "both")
    assert summary["zoo"] == f"formal_languages, {zoo.read_metadata(zoo_path)['num_snapshots']} snapshots"
    for mode in ("in memory", "on disk"):
        assert summary[mode]["exits"] == ["ok"] and summary[mode]["steps_per_s"] > 0
        assert 0 < summary[mode]["peak_rss_mb"] < 100000
    assert summary["disk_over_memory"] > 0 and "(under the cap)" in rendered
    summary, rendered, result = _benchmark(zoo_path, tmp_path / "killed", "--wrapper=timeout -s KILL 1")
    assert summary["on disk"]["exits"] == ["killed by signal 9"] and summary["disk_over_memory"] is None
    assert "The on-disk run failed (killed by signal 9)" in result.stderr
    assert "No ratio: a run did not finish." in rendered
