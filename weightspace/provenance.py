"""Where a results file was computed, and by which command, as every results file records it."""

import os
import platform
import shlex
import sys

import jax


def machine() -> str:
    """This machine and JAX's devices: "x86_64 Linux, 2 CPU cores, JAX 0.10.2 on 2 cpu device(s)"."""
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
        f"JAX {jax.__version__} on {len(jax.devices())} {jax.default_backend()} device(s)"
    )


def _placeholder(arg: str) -> str:
    """`--flag=/a/path` as `--flag=FLAG`: a results file names what a path was for, not where it was."""
    flag, equals, value = arg.partition("=")
    is_path = os.sep in value and (os.path.isabs(value) or value.startswith(("~", ".")))
    if flag.startswith("--") and equals and is_path and not flag.startswith("--config"):
        return f"{flag}={flag[2:].upper()}"
    return shlex.quote(arg)


def command(argv: list[str] | None = None) -> str:
    """The command line of this process as a results file records it: `python -m <module> <flags>`, each path
    a flag names replaced by the flag's name in capitals (`--outdir=OUTDIR`)."""
    module = sys.modules["__main__"].__spec__.name.removesuffix(".__main__")  # a package runs as its __main__
    return " ".join(["python -m", module, *map(_placeholder, sys.argv[1:] if argv is None else argv)])
