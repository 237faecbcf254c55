"""Process setup of the entry points (weightspace/cli.py)."""

import json
import os
import pathlib
import platform
import re
import subprocess
import sys

import pytest

# A jitted function whose 128 MB temporary (tanh(x @ w), [8192, 4096] float32) is allocated on every call.
# With reuse, a call of this function can still fault the whole temporary in anew when the block freed by
# the call before has been split by a smaller allocation (up to five calls of twelve did, in runs or now and
# then; a paper-size train step stops faulting after its third step). So the test asks for some calls that
# do not fault, which without reuse never happens.
_PAGE_FAULTS_PER_CALL = r"""
import json, resource, sys
from weightspace import cli
took_effect = cli.reuse_cpu_step_memory() if sys.argv[1] == "reuse" else False
import jax, jax.numpy as jnp
f = jax.jit(lambda x, w: jnp.tanh(x @ w) @ w.T)
x, w = jnp.ones((8192, 64)), jnp.full((64, 4096), 1e-3)
f(x, w).block_until_ready()
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x, w).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"took_effect": took_effect, "faults": faults}))
"""
_TEMPORARY_PAGES = 8192 * 4096 * 4 // 4096


def _page_faults_per_call(mode: str) -> tuple[bool, list[int]]:
    result = subprocess.run(
        [sys.executable, "-c", _PAGE_FAULTS_PER_CALL, mode], capture_output=True, text=True, check=True
    )
    row = json.loads(result.stdout.strip().splitlines()[-1])
    return row["took_effect"], row["faults"]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
@pytest.mark.slow
def test_reusing_step_memory_stops_page_faults_on_every_call():
    _, default = _page_faults_per_call("default")
    if min(default) < _TEMPORARY_PAGES / 2:
        pytest.skip(f"this JAX and glibc already reuse the temporary (page faults per call: {default})")
    took_effect, reused = _page_faults_per_call("reuse")
    assert took_effect
    assert min(reused) < _TEMPORARY_PAGES / 4, (default, reused)


def _entry_point(module, *args, traceback=False, cwd=None):
    env = (
        {**os.environ, "WEIGHTSPACE_TRACEBACK": "1"}
        if traceback
        else {k: v for k, v in os.environ.items() if k != "WEIGHTSPACE_TRACEBACK"}
    )
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=cwd)


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*"))


# Each case starts a Python process (5-18 s): the first runs in the fast tier, the others with the slow tests.
@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        (
            "experiments.main",
            ["--config=configs/flat.py:smoke", "--workdir={tmp}/run", "--config.train.num_steps=0"],
            r"Error \(ConfigError\): train\.num_steps=0 must be an integer >= 1\.",
        ),
        pytest.param(
            "experiments.main",
            ["--config=configs/flat.py:smoke", "--workdir={tmp}/run", "--config.emulator.hidden_size=0"],
            r"Error \(ConfigError\): emulator\.hidden_size=0 must be an integer >= 1\.",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "experiments.main",
            ["--config=configs/flat.py:smoke", "--workdir={tmp}/a_file"],
            r"Error \(ConfigError\): .*a_file is a file, not a directory: give a directory for a training run",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "experiments.benchmarks.plan",
            ["--devices=1"],
            r"Error \(ConfigError\): Give --config=FILE\[:preset\] \(one run",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "experiments.upgrade",
            ["--path={tmp}/no_zoo"],
            r"Error \(ConfigError\): --path=.*no_zoo is not a directory",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "zoo_builder.main",
            ["--config=configs/formal_languages.py:smoke", "--workdir={tmp}/a_file"],
            r"Error \(ConfigError\): .*a_file is a file, not a directory: give a directory for a zoo build",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_the_user_s_errors_are_one_line_and_change_nothing(module, args, message, tmp_path):
    (tmp_path / "a_file").write_text("not a workdir")
    before = _tree(tmp_path)
    result = _entry_point(module, *(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and re.fullmatch(message + ".*", lines[-1]), lines[-3:]
    assert _tree(tmp_path) == before
    shown = _entry_point(module, *(a.format(tmp=tmp_path) for a in args), traceback=True)
    assert shown.returncode != 0 and "Traceback" in shown.stderr
