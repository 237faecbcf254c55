"""Builds zoos of trained LSTMs: many runs at once, vmapped and sharded.

From the command line: `python -m zoo_builder.main`; from Python (how `experiments` builds a zoo it
does not find): `zoo_builder.build_zoo("formal_languages", "quick", workdir)`.
"""


def build_zoo(dataset: str, preset: str, workdir: str) -> str:
    """Builds (or resumes, or finds) the zoo of `zoo_builder/configs/<dataset>.py:<preset>` in `workdir`.

    Returns:
      The path of the finished zoo (`<workdir>/zoo`).
    """
    import importlib

    from zoo_builder import build

    config = importlib.import_module(f"zoo_builder.configs.{dataset}").get_config(preset)
    return build.build(config, workdir)
