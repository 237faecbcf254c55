"""The README's notebook example runs as written, on a smoke zoo and a smoke run, so an API change cannot leave
it stale."""

import os
import re

import numpy as np
import pytest

from experiments.configs import dwsnet
from experiments.run import train
from zoo_builder import build
from zoo_builder.configs import formal_languages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def notebook_example() -> str:
    """The python block under the README's "Using it from a notebook" heading."""
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme.split("## Using it from a notebook", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_notebook_example_runs(tmp_path):
    zoo_path = build.build(formal_languages.get_config("smoke"), str(tmp_path / "build"))
    config = dwsnet.get_config("smoke")
    config.zoo.path = zoo_path
    config.train.num_steps = 4
    train.train(config, str(tmp_path / "run"))
    code = notebook_example()
    # The example's paths, as a reader's machine would have them, become this test's.
    for path, ours in (("/tmp/zoo_fl_quick/zoo", zoo_path), ("/data/zoo_fl_huge/zoo", zoo_path)):
        code = code.replace(path, ours)
    code = code.replace("/tmp/dwsnet_quick", str(tmp_path / "run"))
    namespace = {"train_indices": np.arange(8), "test_indices": np.arange(8, 12)}  # "your split"
    exec(compile(code, "README.md (notebook example)", "exec"), namespace)
    assert namespace["rows"].shape == (2, 41, 6)
    assert namespace["embeddings"].shape == (8, 16) and namespace["all_embeddings"].shape == (12, 16)
    assert namespace["flat"].shape == (12, 13766)
    assert "accuracy" in namespace["task"].metrics(
        namespace["probe"].predict(namespace["all_embeddings"][8:]), namespace["task"].values[8:]
    )
