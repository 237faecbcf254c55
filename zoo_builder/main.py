"""Builds a zoo of trained LSTMs.

  python -m zoo_builder.main --config=configs/formal_languages.py:quick --workdir=/tmp/zoo

Rerunning the same command on the same workdir resumes an interrupted build.
Multi-process: `--config.layout.distributed=true` on a pod or cluster JAX
knows, or `python -m zoo_builder.launch_local` for processes on one machine
(which passes the --coordinator_address, --num_processes and --process_id flags).
"""

from absl import flags
from ml_collections import config_flags

from weightspace import cli
from zoo_builder import build
from zoo_builder.configs import schema


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line: the config's schema and the workdir's owner."""
    return schema.problems(flag_values.config) + cli.directory_problems("workdir", flag_values.workdir, "zoo_build")


def main(argv):
    del argv
    cli.start_command(flags.FLAGS.cpu_devices)
    cli.join_job(flags.FLAGS, distributed=flags.FLAGS.config.layout.distributed)
    build.build(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
    config_flags.DEFINE_config_file("config", None, "Zoo config file[:preset].", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory of the build (checkpoints, zoo).", required=True)
    cli.define_cpu_devices_flag()
    cli.define_job_flags()
    flags.mark_flags_as_required(["config"])
    cli.run_command(main, check_flags, "a zoo builder")
