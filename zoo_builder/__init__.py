"""Builds zoos of trained LSTMs: many runs at once, vmapped and sharded.

From the command line: `python -m zoo_builder.main`; from Python (how `experiments` builds a zoo it
does not find): `zoo_builder.build_zoo("formal_languages", "quick", workdir)`.
"""


def build_zoo(dataset: str, preset: str, workdir: str) -> str:
    """Builds (or resumes, or finds) the zoo of `dataset` (a registered task family) and `preset` in `workdir`.

    The config is `zoo_builder/configs/<dataset>.py:<preset>`, or for a family without a config file of
    its own, the common one with the family's default settings (`configs.common.family_config`).

    Returns:
      The path of the finished zoo (`<workdir>/zoo`).
    """
    from zoo_builder import build, configs  # heavy: loads JAX and Orbax; every zoo_builder module imports this package

    return build.build(configs.get_config(dataset, preset), workdir)
