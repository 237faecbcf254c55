"""Plans an encoder training run: per-device memory and FLOPs of its step, and its wall time on N devices.

  python -m experiments.plan --config=configs/dwsnet.py:paper --devices=8 --device_kind=h100

Nothing is trained: the run's own jitted train step and evaluation batch (`train.Trainer`,
`batches.batch_sums`) are compiled for N CPU devices standing in for the planned ones,
data-parallel when N > 1, on abstract inputs (`weightspace.planning` says what is counted and what
is assumed). The zoo's shapes come from the zoo itself when it is built, else from its builder
config (`zoo_builder.plan.abstract_zoo`). With `--config.train.zoo_on_disk=true` the step takes its
batch's rows and the zoo is not in device memory; reading the rows on the host is not counted. The
estimate covers the training loop with its periodic evaluations; it leaves out compilation and the
downstream evaluation after training.
"""

import os
import sys

import jax
import ml_collections
import numpy as np
from absl import app, flags

from weightspace import cli, planning


def _zoo(config: ml_collections.ConfigDict):
    """The run's zoo with its arrays as shapes: described from the built zoo, or from its builder config."""
    from experiments import workdirs
    from weightspace import zoo
    from zoo_builder import configs
    from zoo_builder import plan as zoo_plan

    path = workdirs.zoo_path(config)
    if zoo.is_complete(path):
        return zoo.describe(path)
    return zoo_plan.abstract_zoo(configs.get_config(config.zoo.dataset, config.zoo.preset))


def plan(config: ml_collections.ConfigDict, on: planning.Device, fraction: float) -> str:
    """The plan of training `config` on every (CPU) device of this process, standing for devices like `on`."""
    from experiments import batches, train
    from weightspace import dataset, sharding

    devices = jax.device_count()
    config = ml_collections.ConfigDict(config.to_dict())
    config.train.data_parallel = devices > 1
    the_zoo = _zoo(config)
    trainer = train.Trainer([config], the_zoo)
    run, replicated = trainer.run, sharding.replicated(trainer.mesh)

    def placed(tree):
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=replicated), tree)

    def rows(size, members=()):  # a batch's rows (`dataset.take`), for each member
        indices = np.zeros((*members, size), np.int32)
        return placed(jax.eval_shape(lambda a: dataset.take(a, indices, indices), arrays))

    state = placed(trainer.initial_state)  # one member [1, ...]
    member = placed((trainer.keys, trainer.learning_rates))
    arrays = placed(trainer.objective.device_arrays(dataset.zoo_arrays(the_zoo)))
    if trainer.on_disk:
        train_cost = planning.step_cost(trainer.train_step, state, *member, rows(config.train.batch_size, (1,)))
    else:
        indices = placed(np.zeros(len(run.train_snapshots), np.int32))
        train_cost = planning.step_cost(trainer.train_step, state, *member, arrays, indices)
    batch = config.eval.batch_size
    eval_batches = sum(-(-len(run.split[name]) // batch) for name in dataset.HELD_OUT)
    eval_cost = planning.step_cost(
        jax.jit(lambda *args: batches.batch_sums(run.objective, trainer.graphdef, trainer.mesh, *args)),
        state, rows(batch), placed(np.zeros(batch, bool)),
    )  # fmt: skip
    num_steps = config.train.num_steps
    evaluations = -(-num_steps // config.eval.every_steps)
    train_s = num_steps * planning.seconds(train_cost, devices, on, fraction)
    eval_s = evaluations * eval_batches * planning.seconds(eval_cost, devices, on, fraction)
    sizes = "/".join(str(len(run.split[name])) for name in dataset.SPLITS)
    rows = [
        ("devices", f"{devices} x {on.name}" + (" (data-parallel)" if devices > 1 else "")),
        ("zoo", f"{len(the_zoo)} snapshots (train/eval/OOD {sizes})"),
        ("batch per device", f"{config.train.batch_size / devices:g} of {config.train.batch_size}"),
        ("per step per device", planning.work(train_cost, devices)),
        ("memory per device", planning.memory_note(max(train_cost.memory_bytes, eval_cost.memory_bytes), on)),
        ("steps", f"{num_steps:,}, evaluated {evaluations} times ({eval_batches} batches of {batch} each)"),
        ("estimated wall time", f"{planning.duration(train_s + eval_s)} (training {planning.duration(train_s)}, "
                                f"evaluations {planning.duration(eval_s)})"),
    ]  # fmt: skip
    title = f"Training plan: {config.encoder.name} on {the_zoo.family}, {trainer.objective.name} objective"
    return planning.report(title, rows, on, fraction)


def main(argv):
    del argv
    jax.config.update("jax_platforms", "cpu")  # plans compile on CPU whatever the machine has
    cli.quiet_library_logs()
    cli.use_cpu_cores_as_devices(flags.FLAGS.devices)
    on = planning.device(flags.FLAGS.device_kind, flags.FLAGS.devices)
    print(plan(flags.FLAGS.config, on, flags.FLAGS.fraction))


if __name__ == "__main__":
    cli.define_plan_flags("Experiment")
    argv = cli.resolve_config_argument(sys.argv, os.path.dirname(__file__))
    app.run(cli.one_line_errors(main), argv=argv, flags_parser=cli.config_parser("an experiment"))
