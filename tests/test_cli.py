"""Process setup of the entry points (weightspace/cli.py)."""

import json
import platform
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
def test_reusing_step_memory_stops_page_faults_on_every_call():
    _, default = _page_faults_per_call("default")
    if min(default) < _TEMPORARY_PAGES / 2:
        pytest.skip(f"this JAX and glibc already reuse the temporary (page faults per call: {default})")
    took_effect, reused = _page_faults_per_call("reuse")
    assert took_effect
    assert min(reused) < _TEMPORARY_PAGES / 4, (default, reused)
