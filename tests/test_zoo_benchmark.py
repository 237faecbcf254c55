"""The zoo-building benchmark (zoo_builder.benchmark) end to end on one small layout: its results file and the
markdown rendered from it."""

import os
import subprocess
import sys

import pytest

from experiments import report
from weightspace import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_zoo_benchmark_writes_its_results_file(tmp_path):
    command = [
        sys.executable, "-m", "zoo_builder.benchmark", "--zoos=formal_languages", "--devices=1",
        "--runs_per_device=1,2", "--steps_per_call=2", "--seconds=0", f"--outdir={tmp_path}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    written = files.read_json(tmp_path / "zoo_benchmark.json")
    assert [(row["devices"], row["group"]) for row in written["rows"]] == [(1, 1), (1, 2)]
    assert all(row["model_steps_per_s"] > 0 and row["batch_share"] > 0 for row in written["rows"])
    rendered = report.zoo_benchmark_markdown(written)
    assert report.rerender_directory(str(tmp_path)) and (tmp_path / "zoo_benchmark.md").read_text() == rendered
    assert "| formal_languages | 1 x 2 | 2 |" in rendered
