"""Running a command's command line in this process, up to where its `main` would start.

Every command validates its flags and config as it parses them (`cli.parse_flags_or_exit`), before it
writes anything. `refusal(module, *args)` runs `python -m module args` here, with the command's `main`
replaced by a stop, so a hostile case costs milliseconds instead of a new process: it returns the exit
status and stderr of a refused command line, or `ACCEPTED` when validation let it through.
"""

import contextlib
import functools
import hashlib
import io
import os
import pathlib
import runpy
import sys
import warnings
from unittest import mock

from absl import app, flags  # noqa: F401 (app defines its flags first: they are the baseline kept)
from absl import logging as absl_logging  # noqa: F401

from weightspace import cli

ACCEPTED = "accepted"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _MainReachedError(Exception):
    """Validation let the command line through: its `main` would run now."""


def refusal(module: str, *args: str) -> tuple[int | str, str]:
    """(exit status, stderr) of `python -m module args` refused by its validation, or (ACCEPTED, stderr)."""
    baseline = set(flags.FLAGS)
    real_run = cli.run_command

    def stop_before_main(main, check=None, config_kind=None):
        @functools.wraps(main)
        def reached(argv):
            raise _MainReachedError

        real_run(reached, check, config_kind)

    stderr = io.StringIO()
    patches = (
        mock.patch.object(cli, "run_command", stop_before_main),
        mock.patch.object(sys, "argv", [module, *args]),
        contextlib.redirect_stderr(stderr),
        _cwd(REPO),
    )
    try:
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            stack.enter_context(warnings.catch_warnings())
            # runpy warns that the command's module was imported before (by the tests): it runs anew all the same.
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0, stderr.getvalue()
    except SystemExit as exit:
        return exit.code, stderr.getvalue()
    except _MainReachedError:
        return ACCEPTED, stderr.getvalue()
    finally:
        for name in set(flags.FLAGS) - baseline:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()


@contextlib.contextmanager
def _cwd(path: str):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def tree(path) -> dict[str, tuple]:
    """Every file and directory under `path` with its size and modification time (directories: None)."""
    path = pathlib.Path(path)
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
        for p in sorted(path.rglob("*"))
        if not p.name.startswith(".lock")
    }


def digests(path) -> dict[str, str]:
    """SHA-256 of every file under `path` but workdir locks, by relative path."""
    path = pathlib.Path(path)
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith(".lock")
    }


def assert_one_line(status, stderr: str) -> str:
    """Asserts a refusal: exit status 2, no traceback, and one `Error (<type>): ...` line last; returns it."""
    assert status == 2, (status, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error (") and "): " in last, last
    return last
