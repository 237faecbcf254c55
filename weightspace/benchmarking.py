"""What the benchmarks (`zoo_builder.benchmark`, `experiments.benchmarks`: encoder, disk, sweep) share.

Each measurement runs in a fresh worker process (the CPU device count and the
allocator settings are fixed at start-up) that prints one JSON line; rates
are the median of consecutive windows, shown with the slowest and fastest,
so that a busy spell on a shared machine moves the figure less; the PyTorch
baselines run in the same invocation, in an interpreter that has torch.
"""

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax
from jax.extend import core

# Consecutive measuring windows per rate; the reported rate is their median.
WINDOWS = 5


def window_rates(step: Callable[[], object], seconds: float, windows: int = WINDOWS) -> list[float]:
    """Calls of `step` per second in `windows` consecutive windows of `seconds / windows` (at least one call each).

    `step` must block until its work is done.
    """
    rates = []
    for _ in range(windows):
        calls, start = 0, time.perf_counter()
        while calls < 1 or time.perf_counter() - start < seconds / windows:
            step()
            calls += 1
        rates.append(calls / (time.perf_counter() - start))
    return rates


def rate_summary(rates: list[float], scale: float = 1.0, key: str = "steps_per_s") -> dict:
    """The median of per-window `rates` times `scale` as `key`, and the slowest and fastest as `key`_range."""
    return {
        key: round(statistics.median(rates) * scale, 3),
        f"{key}_range": [round(min(rates) * scale, 3), round(max(rates) * scale, 3)],
    }


def window_range(summary: dict, key: str = "steps_per_s") -> str:
    """The slowest and fastest window of a `rate_summary`, as 'min-max'."""
    low, high = summary[f"{key}_range"]
    return f"{low:.3g}-{high:.3g}"


def peak_rss_mb() -> float:
    """This process's peak resident memory."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measured_process(command: list[str], log_path: str, cwd: str | None = None) -> dict:
    """Runs `command` (its stderr to `log_path`, its stdout dropped): {"exit": status (negative: killed by
    that signal), "wall_s", "peak_rss_mb": the process's own peak resident memory (`wait4`'s ru_maxrss)}."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def run_json(command: list[str]) -> dict | None:
    """The JSON object on the last stdout line of `command` (None, with its stderr shown, if it fails)."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        print(f"{' '.join(command[:4])} ... failed:\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_python(python: str | None) -> str | None:
    """The interpreter for PyTorch baselines (`python`, default this one), or None when it lacks torch."""
    python = python or sys.executable
    if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode:
        print(f"torch is not importable by {python}: no PyTorch baseline (pass --torch_python).", file=sys.stderr)
        return None
    return python


def matmul_flops(jaxpr) -> float:
    """FLOPs of the matmuls (`dot_general`) in a jaxpr, with every `scan` body counted once per step.

    Elementwise work is left out: the count is what a matmul-bound step
    costs. A `while` loop's body (unknown trip count) is counted once; the
    train steps have none. (XLA's own cost analysis counts a loop body once,
    which undercounts scanned LSTMs by their step counts.)
    """
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contracting)
        steps = eqn.params["length"] if eqn.primitive.name == "scan" else 1
        total += steps * sum(matmul_flops(sub) for sub in core.jaxprs_in_params(eqn.params))
    return total


def matmul_rate(seconds: float = 3.0) -> float:
    """The default device's float32 matmul rate in FLOP/s: the practical peak for ceilings and CPU plans.

    Square matmuls at the default precision, as in the train steps: 2048 wide on CPUs, 8192 on
    accelerators (smaller ones leave them idle). The fastest of the measuring windows: a busy spell
    would lower the rate, and a ceiling from a lowered rate would flatter the step measured against it.
    """
    size = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.random.normal(jax.random.key(0), (size, size))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    return max(window_rates(lambda: f(a).block_until_ready(), seconds)) * 2 * size**3
