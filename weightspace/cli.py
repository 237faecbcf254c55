"""Helpers for the command-line entry points (they take argv; nothing reads flags)."""

import os
from collections.abc import Sequence

import jax


def resolve_config_argument(argv: Sequence[str], package_dir: str) -> list[str]:
    """Lets `--config=configs/x.py[:preset]` name a file relative to `package_dir`.

    A path that does not exist from the current directory is looked up under
    the entry point's package, so `python -m experiments.main
    --config=configs/dwsnet.py` works from the repository root.
    """
    resolved = []
    for arg in argv:
        if arg.startswith("--config="):
            path, sep, preset = arg[len("--config=") :].partition(":")
            candidate = os.path.join(package_dir, path)
            if not os.path.exists(path) and os.path.exists(candidate):
                arg = f"--config={candidate}{sep}{preset}"
        resolved.append(arg)
    return resolved


def use_cpu_cores_as_devices(count: int = 0) -> None:
    """Exposes `count` CPU devices (0: one per core) so work can be sharded over cores.

    Must run before JAX initialises its backends; has no effect on which
    backend is the default (a GPU or TPU still is).
    """
    jax.config.update("jax_num_cpu_devices", count or os.cpu_count() or 1)


class _DropLibraryInfo:
    """Logging filter that hides INFO-level chatter of libraries (Orbax logs every file it writes)."""

    def __init__(self, prefixes: Sequence[str]):
        self.prefixes = tuple(prefixes)

    def filter(self, record) -> bool:
        return record.levelno > 20 or not any(p in record.pathname for p in self.prefixes)


def quiet_library_logs(prefixes: Sequence[str] = ("orbax", "etils", "jax/_src")) -> None:
    """Keeps the console to our own progress lines and any library warnings."""
    import logging

    from absl import logging as absl_logging

    absl_logging.get_absl_handler().addFilter(_DropLibraryInfo(prefixes))
    logging.getLogger().addFilter(_DropLibraryInfo(prefixes))
