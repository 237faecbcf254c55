"""Helpers for the command-line entry points (they take argv; nothing reads flags)."""

import ctypes
import functools
import importlib
import importlib.util
import logging
import os
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from weightspace import errors, ownership, planning, schema, zoo


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


def run_command(main: Callable[[list[str]], Any], check: "FlagCheck | None" = None, config_kind: str | None = None):
    """Runs an absl `main` as every command here runs: a relative `--config` resolved against the command's
    package, the flags parsed and checked before anything is written (`parse_flags_or_exit`: the config's kind
    and schema, `check`), and errors reported as one line (`one_line_errors`)."""

    module = sys.modules[main.__module__]  # the command, run as __main__
    top = importlib.import_module(module.__spec__.name.split(".")[0])  # experiments or zoo_builder: holds configs/
    argv = resolve_config_argument(sys.argv, os.path.dirname(os.path.abspath(top.__file__)))
    parser = functools.partial(parse_flags_or_exit, config_kind=config_kind, check=check)
    app.run(one_line_errors(main), argv=argv, flags_parser=parser)


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
            ownership.discard_created()
            if os.environ.get("WEIGHTSPACE_TRACEBACK"):
                raise
            message = " ".join(str(error).split()) or type(error).__name__
            sys.stderr.write(f"Error ({type(error).__name__}): {message}\n")
            sys.exit(2)
        except BaseException:
            ownership.discard_created()
            raise

    return wrapped


def use_cpu_cores_as_devices(count: int = 0) -> None:
    """Exposes `count` CPU devices (0: one per core) so work can be sharded over cores.

    Must run before JAX initialises its backends; has no effect on which
    backend is the default (a GPU or TPU still is).
    """
    jax.config.update("jax_num_cpu_devices", count or os.cpu_count() or 1)


def start_command(cpu_devices: int) -> None:
    """What a command's main does first: `cpu_devices` CPU devices (`use_cpu_cores_as_devices`; 0: one per
    core) and a console of our own progress lines (`quiet_library_logs`)."""
    use_cpu_cores_as_devices(cpu_devices)
    quiet_library_logs()


def define_cpu_devices_flag() -> None:
    """Defines --cpu_devices, the CPU devices a command exposes (`use_cpu_cores_as_devices`; 0: one per core)."""

    flags.DEFINE_integer("cpu_devices", 0, "CPU devices to expose (0: one per core).", lower_bound=0)


def define_job_flags() -> None:
    """Defines the flags that place a process in a multi-process job (`zoo_builder.launch_local` passes them)."""

    flags.DEFINE_string("coordinator_address", "", "host:port of process 0 of a multi-process job (launch_local).")
    flags.DEFINE_integer("num_processes", 1, "Processes of the job (with --coordinator_address).")
    flags.DEFINE_integer("process_id", 0, "This process's index in the job (with --coordinator_address).")


def define_plan_flags(what: str, config_required: bool = True) -> None:
    """Defines the flags of a plan (`zoo_builder.plan`, `experiments.benchmarks.plan`): config, devices, assumptions."""

    config_flags.DEFINE_config_file("config", None, f"{what} config file[:preset].", lock_config=True)
    flags.DEFINE_integer("devices", 1, "Devices of the planned job.", lower_bound=1)
    flags.DEFINE_string("device_kind", "cpu", f"cpu (this machine, measured) or one of {', '.join(planning.DEVICES)}.")
    flags.DEFINE_float("fraction", planning.DEFAULT_FRACTION, "Fraction of the peak the planned matmuls reach.")
    if config_required:
        flags.mark_flags_as_required(["config"])


def plan_flag_problems(flag_values) -> list[str]:
    """What is wrong with the flags of `define_plan_flags`: the device kind and the fraction of its peak."""

    problems = []
    if flag_values.device_kind != "cpu" and flag_values.device_kind not in planning.DEVICES:
        problems.append(f"--device_kind={flag_values.device_kind} must be cpu or one of {sorted(planning.DEVICES)}")
    if not schema.Float(0.0, 1.0, open_low=True).fits(flag_values.fraction):
        problems.append(f"--fraction={flag_values.fraction} must be a number in (0, 1]")
    return problems


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

    absl_logging.get_absl_handler().addFilter(_DropLibraryInfo(prefixes))
    logging.getLogger().addFilter(_DropLibraryInfo(prefixes))


# The top-level keys that tell each kind of config apart, and where its files are.
CONFIG_KINDS = {
    "a zoo builder": (("num_runs", "task", "lstm", "layout"), "zoo_builder/configs/"),
    "an experiment": (("encoder", "emulator", "zoo", "evaluate"), "experiments/configs/"),
}


# Checks of a command's parsed flags: every problem as one line (none: fine).
FlagCheck = Callable[[Any], list[str]]


def parse_flags_or_exit(
    argv: Sequence[str], config_kind: str | None = None, check: FlagCheck | None = None
) -> list[str]:
    """Parses absl flags (pass as `app.run(..., flags_parser=...)`); returns the remaining argv.

    The one place a command's flags and config are validated, before it writes anything or takes a lock.
    Exits with one line (status 2, as `one_line_errors`) for a bad `--config.a.b=...` override (with
    the valid keys at that level: ml_collections raises a bare AttributeError for an unknown key), a
    `--config` file that is missing or does not load, an unknown preset or variant in its argument (the
    config file's own message, naming the known ones), a config of another kind than `config_kind` (e.g.
    a zoo config given to the trainer), and every problem `check` finds in the parsed flags (the config's
    schema, the flags' ranges and names).
    """

    own = argv[: argv.index("--")] if "--" in argv else argv  # after "--": another command's (launch_local)
    path = next((arg[len("--config=") :] for arg in own if arg.startswith("--config=")), None)
    if path is not None and not os.path.isfile(path.partition(":")[0]):
        _refuse_command_line(f"--config={path}: there is no such file (a config is a .py file of {_config_dirs()}).")
    try:
        rest = flags.FLAGS(argv)
    except (AttributeError, KeyError, ValueError, TypeError, flags.Error) as error:
        if "get_config" not in str(error) and "parsing config file" not in str(error.__context__ or ""):
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
    problems = check(flags.FLAGS) if check is not None else []
    if problems:
        _refuse_command_line("; ".join(problem.rstrip(".") for problem in problems) + ".")
    return rest


def _config_dirs() -> str:
    return " or ".join(where for _, where in CONFIG_KINDS.values())


def _last_error_line(error: BaseException) -> str:
    """The innermost exception's own line ("ValueError: ..."), out of a traceback a library flattened into text."""
    texts = [str(error.__context__ or ""), str(error)]
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        for line in reversed(lines):
            name, colon, message = line.partition(": ")
            if colon and name.isidentifier() and (name.endswith(("Error", "Exception")) or name == "KeyError"):
                return f"{name}: {message}"
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _not_a_config_file(path: str, error: BaseException) -> str:
    line = _last_error_line(error)
    if line.startswith(("ValueError: ", "KeyError: ")):  # get_config refused its argument (preset, variant, name)
        return f"--config={path}: {line.partition(': ')[2]}"
    what = "a config is a .py file defining get_config(arg=None)"
    return f"--config={path} does not load as a config file ({line}); {what}."


def _refuse_command_line(message: str) -> None:
    """Exits as `one_line_errors` does for a `ConfigError` (raising it with `WEIGHTSPACE_TRACEBACK=1`)."""
    message = " ".join(message.split())
    if os.environ.get("WEIGHTSPACE_TRACEBACK"):
        raise errors.ConfigError(message)
    sys.stderr.write(f"Error (ConfigError): {message}\n")
    sys.exit(2)


def _load_config_argument(argv: Sequence[str]):
    """The config named by `--config=path[:preset]` in `argv` (None if there is none)."""

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
    problems = list_problems(flag, values, schema.Rule("int" if kind is int else "float"))
    if problems:
        raise errors.ConfigError(problems[0] + ".")
    return [kind(value) for value in values]


def list_problems(
    flag: str, values: Sequence[str], rule: schema.Rule, unique: bool = True, nonempty: bool = False
) -> list[str]:
    """What is wrong with a comma-separated flag's values against `rule` (each one), `unique` (none repeated)
    and `nonempty`."""
    kind = {"int": int, "float": float}.get(rule.kind, str)
    shown = f"--{flag}={','.join(values)}"
    if nonempty and not values:
        return [f"--{flag} is empty: give at least one value, each {rule.describe()}"]
    try:
        parsed = [kind(value) for value in values]
    except ValueError:
        return [f"{shown} must be a comma-separated list, each {rule.describe()}"]
    bad = [value for value, p in zip(values, parsed, strict=True) if not rule.fits(p)]
    if bad:
        return [f"{shown}: {', '.join(bad)} must each be {rule.describe()}"]
    if unique and len(set(parsed)) != len(parsed):
        return [f"{shown} names a value twice; name each once"]
    return []


def path_problems(flag: str, path: str | None, want: str) -> list[str]:
    """What keeps `--flag=path` from being what a command reads or makes: `want` "zoo" (a complete zoo),
    "directory" (an existing one) or "new" (nothing there yet); none: fine."""

    if not path:
        return [f"--{flag} is empty: give a path"]
    fits = {"zoo": zoo.is_complete, "directory": os.path.isdir, "new": lambda p: not os.path.exists(p)}[want]
    if fits(path):
        return []
    said = {"zoo": "is not a complete zoo (the directory holding metadata.json and COMPLETE)",
            "directory": "is not a directory", "new": "is already there: give a path that does not exist"}  # fmt: skip
    return [f"--{flag}={path} {said[want]}"]


def directory_problems(flag: str, path: str | None, kind: str, existing: bool = False) -> list[str]:
    """What keeps a command of `kind` (`ownership.KINDS`) from writing the directory of `--flag`, or with
    `existing` from reading it as one of that kind (`ownership.require`); none: fine."""
    if not path:
        return [f"--{flag} is empty: give a directory"]
    try:
        (ownership.require if existing else ownership.check)(path, kind)
    except errors.UserError as error:
        return [" ".join(str(error).split()).rstrip(".")]
    return []


def workdir_list_problems(flag_values) -> list[str]:
    """A flag check (`run_command`'s `check`) for commands that read trained runs: every path of the list flag
    --workdir must be a training run."""
    return [problem for path in flag_values.workdir for problem in directory_problems("workdir", path, "run", True)]
