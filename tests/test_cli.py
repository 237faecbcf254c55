"""Process setup of the entry points (weightspace/cli.py)."""

import json
import platform
import subprocess
import sys

import pytest

# A jitted function whose 128 MB temporary (tanh(x @ w), [8192, 4096] float32) is allocated on every call.
_PAGE_FAULTS_PER_CALL = r"""
import json, resource, sys
from weightspace import cli
took_effect = cli.reuse_cpu_step_memory() if sys.argv[1] == "reuse" else False
import jax, jax.numpy as jnp
f = jax.jit(lambda x, w: jnp.tanh(x @ w) @ w.T)
x, w = jnp.ones((8192, 64)), jnp.full((64, 4096), 1e-3)
f(x, w).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(x, w).block_until_ready()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(json.dumps({"took_effect": took_effect, "faults_per_call": faults}))
"""
_TEMPORARY_PAGES = 8192 * 4096 * 4 // 4096


def _page_faults_per_call(mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _PAGE_FAULTS_PER_CALL, mode], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_reusing_step_memory_stops_page_faults_on_every_call():
    default = _page_faults_per_call("default")
    if default["faults_per_call"] < _TEMPORARY_PAGES / 2:
        pytest.skip(f"this JAX and glibc already reuse the temporary ({default['faults_per_call']:.0f} faults/call)")
    reused = _page_faults_per_call("reuse")
    assert reused["took_effect"]
    assert reused["faults_per_call"] < _TEMPORARY_PAGES / 4, (default, reused)
