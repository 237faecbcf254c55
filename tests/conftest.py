"""Fixtures shared across test modules."""

import pytest

from zoo_builder import build
from zoo_builder.configs import formal_languages


@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory) -> str:
    """The path of the formal-languages smoke zoo, built once per session: tests read it, and copy it first to
    change anything."""
    return build.build(formal_languages.get_config("smoke"), str(tmp_path_factory.mktemp("smoke_zoo")))
