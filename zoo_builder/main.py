"""Builds a zoo of trained LSTMs.

  python -m zoo_builder.main --config=configs/formal_languages.py:quick --workdir=/tmp/zoo

Rerunning the same command on the same workdir resumes an interrupted build.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from weightspace import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Zoo config file[:preset].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the build (checkpoints, zoo).", required=True)
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "CPU devices to expose (0: one per core).")


def main(argv):
    del argv
    import jax

    cli.use_cpu_cores_as_devices(_CPU_DEVICES.value)
    cli.quiet_library_logs()
    if _CONFIG.value.layout.distributed:
        jax.distributed.initialize()
    from zoo_builder import build

    build.build(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    argv = cli.resolve_config_argument(sys.argv, os.path.dirname(__file__))
    app.run(main, argv=argv, flags_parser=cli.parse_flags_or_exit)
