"""Fixtures shared across test modules."""

import gc

import jax
import pytest

from zoo_builder import build
from zoo_builder.configs import formal_languages


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
