"""Trains a weight encoder by emulation (or a supervised baseline), then evaluates it downstream.

  python -m experiments.main --config=configs/dwsnet.py:quick --workdir=/tmp/dwsnet_quick

Rerunning the same command on the same workdir resumes the run. The
evaluation (experiments/run/evaluate.py) writes evaluation.json/.md into the
workdir; --config.evaluate.after_training=false skips it. Supervised baseline:
--config.supervised.target=task (see configs/common.py).

A sweep trains runs of the config that differ only in seed (and learning rate) together, in one
vmapped step: `--seeds=0,1,2 [--learning_rates=1e-3,3e-4,1e-4]` trains member k in
`<workdir>/seed<k>` (`<workdir>/seed<k>_lr<rate>`), each exactly the workdir its single run would write,
then evaluates each.

Multi-process (data-parallel over every process's devices, `--config.train.data_parallel=true`):
`--distributed` on a pod or cluster JAX knows, or for processes on one machine
`python -m zoo_builder.launch_local --module=experiments.main -- <these flags>`.
"""

from absl import flags
from ml_collections import config_flags

from experiments.configs import schema
from weightspace import cli, ownership
from weightspace import schema as weightspace_schema


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line: the config's schema, the sweep's lists, the workdir's owner."""
    problems = schema.problems(flag_values.config)
    problems += cli.list_problems("seeds", flag_values.seeds, weightspace_schema.Int(0))
    positive = weightspace_schema.Float(0.0, open_low=True)
    problems += cli.list_problems("learning_rates", flag_values.learning_rates, positive, unique=False)
    if flag_values.learning_rates and len(flag_values.learning_rates) != len(flag_values.seeds):
        problems.append("--learning_rates needs one learning rate per seed of --seeds")
    kind = "sweep" if flag_values.seeds else "run"
    return problems + cli.directory_problems("workdir", flag_values.workdir, kind)


def main(argv):
    del argv
    cli.use_cpu_cores_as_devices(flags.FLAGS.cpu_devices)
    cli.join_job(flags.FLAGS, distributed=flags.FLAGS.distributed)
    cli.quiet_library_logs()
    from experiments.run import evaluate, train  # heavy (Orbax, the encoders): a refused command line never loads them

    config = flags.FLAGS.config
    if not config.train.data_parallel:
        cli.reuse_cpu_step_memory()  # one device: its steps run on this thread and reuse their buffers
    seeds = cli.parse_list("seeds", flags.FLAGS.seeds, int)
    learning_rates = cli.parse_list("learning_rates", flags.FLAGS.learning_rates, float)
    configs, workdirs = train.sweep_members(config, flags.FLAGS.workdir, seeds, learning_rates)
    if seeds:
        ownership.claim(flags.FLAGS.workdir, "sweep")
    train.train_sweep(configs, workdirs)
    if config.evaluate.after_training:
        for workdir in workdirs:
            evaluate.evaluate(workdir)


if __name__ == "__main__":
    config_flags.DEFINE_config_file("config", None, "Experiment config file[:preset].", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory of the run (checkpoints, metrics).", required=True)
    flags.DEFINE_list("seeds", [], "Train these seeds of the config as one sweep, each in <workdir>/seed<k>.")
    flags.DEFINE_list("learning_rates", [], "With --seeds: each member's optim.lr (one per seed).")
    cli.define_cpu_devices_flag()
    flags.DEFINE_bool("distributed", False, "Join the multi-process job JAX finds (TPU pods, SLURM, ...).")
    cli.define_job_flags()
    flags.mark_flags_as_required(["config"])
    cli.run_command(main, check_flags, "an experiment")
