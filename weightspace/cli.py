"""Helpers for the command-line entry points (they take argv; nothing reads flags)."""

import ctypes
import os
import platform
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


# glibc's mallopt options (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def reuse_freed_host_memory() -> bool:
    """Makes glibc keep freed host memory for reuse, so XLA's CPU steps stop page-faulting their buffers.

    XLA's CPU runtime allocates each execution's temporary buffer afresh from
    its worker threads (130 MB for a paper-size probing-encoder train step).
    glibc serves those threads from per-thread arenas whose heaps hold at most
    64 MB, so it maps larger blocks with mmap and unmaps them when freed:
    every step then page-faults its whole buffer again (33,000 faults per
    step). With one arena, no mmap and no trimming, the block is reused (about
    1,400 faults per step). The process keeps its peak memory instead of
    returning it to the OS.

    Must run before JAX initialises its backends (the runtime's threads keep
    the arena they started with). Returns whether the settings took effect:
    False on other C libraries, or when called too late (with a warning).
    """
    from absl import logging
    from jax._src import xla_bridge

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if xla_bridge.backends_are_initialized():
        logging.warning("reuse_freed_host_memory() has no effect once JAX has initialised its backends.")
        return False
    libc = ctypes.CDLL(None)
    settings = {_M_ARENA_MAX: 1, _M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}
    return all(libc.mallopt(option, value) == 1 for option, value in settings.items())


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


def parse_flags_or_exit(argv: Sequence[str]) -> list[str]:
    """Parses absl flags (pass as `app.run(..., flags_parser=...)`); returns the remaining argv.

    A bad `--config.a.b=...` override exits with the valid keys at that level
    (ml_collections raises a bare AttributeError for an unknown key).
    """
    import sys

    from absl import flags

    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError, ValueError, TypeError, flags.Error) as error:
        sys.exit(f"Error in the command line: {_describe_override_error(argv, flags.FLAGS, error)}")


def _load_config_argument(argv: Sequence[str]):
    """The config named by `--config=path[:preset]` in `argv` (None if there is none)."""
    import importlib.util

    for arg in argv:
        if arg.startswith("--config="):
            path, _, preset = arg[len("--config=") :].partition(":")
            spec = importlib.util.spec_from_file_location("_config_for_error", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.get_config(preset or None)
    return None


def _describe_override_error(argv: Sequence[str], flag_values, error: Exception) -> str:
    """Names the first unknown key of a `--config.*` override and lists the valid keys beside it."""
    config = flag_values["config"].value if "config" in flag_values else None
    try:
        config = config if config is not None else _load_config_argument(argv)
    except Exception:  # the config file itself is broken: the original error says more
        return str(error)
    for arg in argv:
        if not arg.startswith("--config.") or config is None:
            continue
        node, path = config, arg[len("--config.") :].split("=", 1)[0].split(".")
        for depth, key in enumerate(path):
            if not hasattr(node, "keys") or key not in node:
                where = "config" + "".join(f".{k}" for k in path[:depth])
                valid = sorted(node.keys()) if hasattr(node, "keys") else []
                return f"{where} has no key {key!r} (from {arg!r}); valid keys: {valid}."
            node = node[key]
    return str(error)
