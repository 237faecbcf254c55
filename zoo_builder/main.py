"""Builds a zoo of trained LSTMs.

  python -m zoo_builder.main --config=configs/formal_languages.py:quick --workdir=/tmp/zoo

Rerunning the same command on the same workdir resumes an interrupted build.
Multi-process: `--config.layout.distributed=true` on a pod or cluster JAX
knows, or `python -m zoo_builder.launch_local` for processes on one machine
(which passes the --coordinator_address, --num_processes and --process_id flags).
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from weightspace import cli


def main(argv):
    del argv
    cli.use_cpu_cores_as_devices(flags.FLAGS.cpu_devices)
    cli.quiet_library_logs()
    cli.join_job(flags.FLAGS, distributed=flags.FLAGS.config.layout.distributed)
    from zoo_builder import build

    build.build(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
    config_flags.DEFINE_config_file("config", None, "Zoo config file[:preset].", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory of the build (checkpoints, zoo).", required=True)
    flags.DEFINE_integer("cpu_devices", 0, "CPU devices to expose (0: one per core).")
    cli.define_job_flags()
    flags.mark_flags_as_required(["config"])
    argv = cli.resolve_config_argument(sys.argv, os.path.dirname(__file__))
    app.run(cli.one_line_errors(main), argv=argv, flags_parser=cli.config_parser("a zoo builder"))
