"""Helpers for the command-line entry points (they take argv; nothing reads flags)."""

import ctypes
import functools
import os
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax

from weightspace import errors


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


def one_line_errors(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """`main` (an absl main) reporting the user's errors as one line on stderr and exit status 2.

    The user's errors are the project's own (`errors.UserError`) and the OS's (`OSError`: a workdir
    that is a file, a read-only directory, a missing file); anything else is a bug and keeps its
    traceback. `WEIGHTSPACE_TRACEBACK=1` shows the traceback of every error.
    """

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> Any:
        try:
            return main(argv)
        except (errors.UserError, OSError) as error:
            if os.environ.get("WEIGHTSPACE_TRACEBACK"):
                raise
            message = " ".join(str(error).split()) or type(error).__name__
            sys.stderr.write(f"Error ({type(error).__name__}): {message}\n")
            sys.exit(2)

    return wrapped


def use_cpu_cores_as_devices(count: int = 0) -> None:
    """Exposes `count` CPU devices (0: one per core) so work can be sharded over cores.

    Must run before JAX initialises its backends; has no effect on which
    backend is the default (a GPU or TPU still is).
    """
    jax.config.update("jax_num_cpu_devices", count or os.cpu_count() or 1)


def define_job_flags() -> None:
    """Defines the flags that place a process in a multi-process job (`zoo_builder.launch_local` passes them)."""
    from absl import flags

    flags.DEFINE_string("coordinator_address", "", "host:port of process 0 of a multi-process job (launch_local).")
    flags.DEFINE_integer("num_processes", 1, "Processes of the job (with --coordinator_address).")
    flags.DEFINE_integer("process_id", 0, "This process's index in the job (with --coordinator_address).")


def define_plan_flags(what: str, config_required: bool = True) -> None:
    """Defines the flags of a plan (`zoo_builder.plan`, `experiments.plan`): its config, devices and assumptions."""
    from absl import flags
    from ml_collections import config_flags

    from weightspace import planning

    config_flags.DEFINE_config_file("config", None, f"{what} config file[:preset].", lock_config=True)
    flags.DEFINE_integer("devices", 1, "Devices of the planned job.", lower_bound=1)
    flags.DEFINE_string("device_kind", "cpu", f"cpu (this machine, measured) or one of {', '.join(planning.DEVICES)}.")
    flags.DEFINE_float("fraction", planning.DEFAULT_FRACTION, "Fraction of the peak the planned matmuls reach.")
    if config_required:
        flags.mark_flags_as_required(["config"])


def join_job(flag_values, distributed: bool = False) -> None:
    """Joins the multi-process job named by the `define_job_flags` flags, or with `distributed` the one JAX finds.

    Without a coordinator, JAX finds the job itself (TPU pods, SLURM and the other clusters it knows).
    With one (e.g. the local processes of `zoo_builder.launch_local`), this process is `process_id` of
    `num_processes`, and CPU devices exchange data over gloo, JAX's CPU collectives. Neither: a
    one-process run. Must run before JAX initialises its backends.
    """
    if flag_values.coordinator_address:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(flag_values.coordinator_address, flag_values.num_processes, flag_values.process_id)
    elif distributed:
        jax.distributed.initialize()


# glibc's mallopt options (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def reuse_cpu_step_memory() -> bool:
    """Runs CPU computations on the calling thread and keeps their freed memory for reuse.

    XLA's CPU runtime allocates each execution's temporary buffer afresh (130
    MB for a paper-size probing-encoder train step). By default it does so on
    a worker thread, whose glibc arena holds at most 64 MB: larger blocks are
    mmapped and unmapped again when freed, so every step page-faults its
    whole buffer anew (33,000 faults per step). Without asynchronous dispatch
    the computation runs on the calling thread, whose main heap can hold any
    block; with mmap and trimming off, glibc keeps the block there for the
    next step (a handful of faults per step): paper-size probing-encoder
    steps ran 1.15-1.5x faster on a 2-core CPU. The process keeps its peak
    memory instead of returning it to the OS.

    For one device: with several, running on the calling thread gives up
    overlapping their work (the two-device zoo builder ran 5-18 % slower).
    Returns whether glibc took the settings (False on other C libraries,
    where only the dispatch changes).
    """
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1


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


# The top-level keys that tell each kind of config apart, and where its files are.
CONFIG_KINDS = {
    "a zoo builder": (("num_runs", "task", "lstm", "layout"), "zoo_builder/configs/"),
    "an experiment": (("encoder", "emulator", "zoo", "evaluate"), "experiments/configs/"),
}


def parse_flags_or_exit(argv: Sequence[str], config_kind: str | None = None) -> list[str]:
    """Parses absl flags (pass as `app.run(..., flags_parser=...)`); returns the remaining argv.

    Exits with one line (status 2, as `one_line_errors`) for a bad `--config.a.b=...` override (with
    the valid keys at that level: ml_collections raises a bare AttributeError for an unknown key), a
    `--config` file that does not load (not Python, or broken), or one of another kind than
    `config_kind` (e.g. a zoo config given to the trainer).
    """
    from absl import flags

    path = next((arg[len("--config=") :] for arg in argv if arg.startswith("--config=")), None)
    try:
        rest = flags.FLAGS(argv)
    except (AttributeError, KeyError, ValueError, TypeError, flags.Error) as error:
        if "get_config" not in str(error):
            _refuse_command_line(_describe_override_error(argv, flags.FLAGS, error))
        _refuse_command_line(_not_a_config_file(path, error))
    except Exception as error:  # raised by the config file as it loads (SyntaxError, NameError, ...)
        if path is None:
            raise
        _refuse_command_line(_not_a_config_file(path, error))
    if config_kind is not None and flags.FLAGS.config is not None:
        keys, where = CONFIG_KINDS[config_kind]
        missing = [key for key in keys if key not in flags.FLAGS.config]
        if missing:
            listed = ", ".join(missing)
            _refuse_command_line(f"--config is not {config_kind} config (it has no {listed}): those are in {where}.")
    return rest


def config_parser(config_kind: str) -> Callable[[Sequence[str]], list[str]]:
    """`parse_flags_or_exit` for an entry point whose --config must be of `config_kind` (a key of CONFIG_KINDS)."""
    return functools.partial(parse_flags_or_exit, config_kind=config_kind)


def _not_a_config_file(path: str, error: Exception) -> str:
    return (
        f"--config={path} does not load as a config file ({type(error).__name__}: {' '.join(str(error).split())}); "
        "a config is a Python file defining get_config(preset=None)."
    )


def _refuse_command_line(message: str) -> None:
    sys.stderr.write(f"Error (ConfigError): {message}\n")
    sys.exit(2)


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


def parse_list(flag: str, values: list[str], kind: type) -> list:
    """A comma-separated flag's values as `kind` (int, float), or a `ConfigError` naming the flag and value."""
    try:
        return [kind(value) for value in values]
    except ValueError:
        raise errors.ConfigError(
            f"--{flag}={','.join(values)} is not a list of {kind.__name__}s (e.g. --{flag}=0,1,2)."
        ) from None
