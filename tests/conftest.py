"""Fixtures shared across test modules."""

import gc
import os
import tempfile

import jax
import pytest

from zoo_builder import build
from zoo_builder.configs import formal_languages

# Compiled programs shared through JAX's disk cache by every process of a test run (the pytest process and each
# command a test starts, which inherits the variables): the suite compiles the same small programs in many
# modules and processes. The size limit turns on the cache's file lock, so processes write it safely at once.
_CACHE = {
    "jax_compilation_cache_dir": os.path.join(tempfile.gettempdir(), f"weightspace-tests-jax-{os.getuid()}"),
    "jax_compilation_cache_max_size": 4 << 30,
    "jax_persistent_cache_min_compile_time_secs": 0.2,
}
for _name, _default in _CACHE.items():
    _value = type(_default)(os.environ.setdefault(_name.upper(), str(_default)))
    jax.config.update(_name, _value)


@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory) -> str:
    """The path of the formal-languages smoke zoo, built once per session: tests read it, and copy it first to
    change anything."""
    return build.build(formal_languages.get_config("smoke"), str(tmp_path_factory.mktemp("smoke_zoo")))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Frees every compiled XLA program after each test module. Each program on the CPU holds its own memory
    mappings, and one process running the whole suite would otherwise pass the kernel's limit on them
    (vm.max_map_count, 65,530 by default), where the next compilation aborts the process."""
    yield
    jax.clear_caches()
    gc.collect()
