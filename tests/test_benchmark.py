"""The benchmarks' shared measurements (weightspace.benchmarking): FLOP counting and windowed rates; the encoder
training benchmark (experiments.benchmarks.encoder) end to end on the smoke preset."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from experiments import report
from weightspace import benchmarking, files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_matmul_flops_counts_every_scan_step():
    """A scanned matmul counts once per step, beside a plain one: agreement with a hand count."""
    steps, batch, width = 7, 3, 5

    def f(h, w, xs):
        def body(h, x):
            return jnp.tanh(h @ w + x), None

        h, _ = jax.lax.scan(body, h, xs)
        return h @ w.T

    args = (jnp.ones((batch, width)), jnp.ones((width, width)), jnp.ones((steps, batch, width)))
    expected = (steps + 1) * 2 * batch * width * width
    assert benchmarking.matmul_flops(jax.make_jaxpr(f)(*args).jaxpr) == expected
    # Forward and backward: the gradient adds two matmuls per matmul.
    grad = jax.make_jaxpr(jax.grad(lambda *a: f(*a).sum(), argnums=1))(*args)
    assert benchmarking.matmul_flops(grad.jaxpr) == 3 * expected


def test_rate_summary_is_the_median_with_the_window_range():
    summary = benchmarking.rate_summary([4.0, 1.0, 5.0, 2.0, 3.0])
    assert summary == {"steps_per_s": 3.0, "steps_per_s_range": [1.0, 5.0]}


def test_every_window_takes_at_least_one_step():
    calls = []
    rates = benchmarking.window_rates(lambda: calls.append(1), seconds=0.0)
    assert len(calls) == len(rates) == benchmarking.WINDOWS
    assert all(rate > 0 for rate in rates)


def test_a_scaled_rate_summary_under_its_own_name():
    summary = benchmarking.rate_summary([1.0, 2.0, 3.0], scale=10, key="model_steps_per_s")
    assert summary == {"model_steps_per_s": 20.0, "model_steps_per_s_range": [10.0, 30.0]}


def _encoder_benchmark(*flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "experiments.benchmarks.encoder", "--preset=smoke", "--seconds=0", *flags]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_encoder_benchmark_measures_a_run_and_a_sweep_and_writes_its_results_file(tmp_path):
    """One encoder as a single run and as a 2-member sweep: the results file holds both, its members split
    over the devices as in training, and the markdown beside it is what `report` renders from it."""
    result = _encoder_benchmark("--encoders=flat", "--members=1,2", f"--outdir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    written = files.read_json(tmp_path / "encoder_benchmark.json")
    assert [(row["encoder"], row["members"]) for row in written["rows"]] == [("flat", 1), ("flat", 2)]
    assert [row["member_devices"] for row in written["rows"]] == [1, min(2, os.cpu_count())]
    assert all(row["steps_per_s"] > 0 and row["gflop_per_step"] > 0 for row in written["rows"])
    # The sweep's step holds both members' matmuls.
    assert written["rows"][1]["gflop_per_step"] >= 1.9 * written["rows"][0]["gflop_per_step"]
    rendered = report.encoder_benchmark_markdown(written)
    assert (tmp_path / "encoder_benchmark.md").read_text() == rendered
    assert "| flat | 2 (" in rendered and "member-steps/s" in rendered


def test_encoder_benchmark_refuses_a_step_without_members():
    result = _encoder_benchmark("--encoders=flat", "--members=0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "Error (ConfigError): --members=0: 0 must each be an integer >= 1."
