"""Plans an encoder training run: per-device memory and FLOPs of its step, and its wall time on N devices.

  python -m experiments.benchmarks.plan --config=configs/dwsnet.py:paper --devices=8 --device_kind=h100
  python -m experiments.benchmarks.plan --config=configs/dwsnet.py:paper --devices=8 --device_kind=h100 --members=24
  python -m experiments.benchmarks.plan --check=TABLES_DIR --outdir=DIR    # the plan against what those runs took here

Nothing is trained: the run's own jitted train step and evaluation batch (`train.Trainer`,
`batches.batch_sums`) are compiled for N CPU devices standing in for the planned ones,
data-parallel when N > 1, on abstract inputs (`weightspace.planning` says what is counted and what
is assumed). With `--members`, the plan is of a sweep of that many seeds trained together
(`experiments.main --seeds`), the members split over the devices, beside the same runs one after another.
The zoo's shapes come from the zoo itself when it is built, else from its builder
config (`zoo_builder.plan.abstract_zoo`). With `--config.train.zoo_on_disk=true` the step takes its
batch's rows and the zoo is not in device memory; reading the rows on the host is not counted. The
estimate covers the training loop with its periodic evaluations; it leaves out compilation and the
downstream evaluation after training.
"""

import dataclasses
import os
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from absl import flags, logging

from experiments import report
from experiments.configs import common as config_common
from experiments.configs import schema as config_schema
from experiments.run import batches, layout, train, workdirs
from weightspace import (
    cli,
    dataset,
    encoders,
    errors,
    files,
    metrics,
    planning,
    provenance,
    schema,
    sharding,
    tasks,
    zoo,
)
from zoo_builder import configs as zoo_configs
from zoo_builder import plan as zoo_plan


def _zoo(config: ml_collections.ConfigDict):
    """The run's zoo with its arrays as shapes: described from the built zoo, or from its builder config."""
    path = workdirs.zoo_path(config)
    if zoo.is_complete(path):
        return zoo.describe(path)
    return zoo_plan.abstract_zoo(zoo_configs.get_config(config.zoo.dataset, config.zoo.preset))


def _costs(configs: list[ml_collections.ConfigDict], the_zoo) -> tuple:
    """(trainer, train step's cost, evaluation batch's cost) of training `configs` as one sweep (one config:
    a single run), compiled on abstract inputs placed as the trainer places them."""
    trainer = train.Trainer(configs, the_zoo)
    run, replicated, members = trainer.run, sharding.replicated(trainer.mesh), len(configs)

    def placed(tree, on=replicated):
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=on), tree)

    def rows(size, leading=()):  # a batch's rows (`dataset.take`), for each member
        indices = np.zeros((*leading, size), np.int32)
        return placed(jax.eval_shape(lambda a: dataset.take(a, indices, indices), arrays))

    by_member = sharding.split(trainer.mesh, name="members")
    state = placed(trainer.initial_state, by_member)  # [M, ...]
    member = placed((trainer.keys, trainer.learning_rates), by_member)
    arrays = placed(trainer.objective.device_arrays(dataset.zoo_arrays(the_zoo)))
    if trainer.on_disk:
        batch_rows = rows(trainer.config.train.batch_size, (members,))
        train_cost = planning.step_cost(trainer.train_step, state, *member, batch_rows)
    else:
        indices = placed(np.zeros(len(run.train_snapshots), np.int32))
        train_cost = planning.step_cost(trainer.train_step, state, *member, arrays, indices)
    batch = trainer.config.eval.batch_size
    eval_cost = planning.step_cost(
        jax.jit(lambda *args: batches.batch_sums(run.objective, trainer.graphdef, trainer.mesh, *args)),
        state, rows(batch), placed(np.zeros(batch, bool)),
    )  # fmt: skip
    return trainer, train_cost, eval_cost


def _eval_batches(trainer) -> int:
    """Evaluation batches a run or sweep computes in all: every held-out split at every periodic evaluation."""
    config = trainer.config
    per_evaluation = sum(-(-len(trainer.run.split[name]) // config.eval.batch_size) for name in dataset.HELD_OUT)
    return -(-config.train.num_steps // config.eval.every_steps) * per_evaluation


def _wall_seconds(trainer, train_cost, eval_cost, on: planning.Device, fraction: float) -> tuple[float, float]:
    """(training, periodic evaluations) seconds of a run or sweep whose step costs these, its FLOPs shared by
    the devices of its mesh."""
    devices = trainer.mesh.devices.size
    train_s = trainer.config.train.num_steps * planning.seconds(train_cost, devices, on, fraction)
    return train_s, _eval_batches(trainer) * planning.seconds(eval_cost, devices, on, fraction)


def plan(config: ml_collections.ConfigDict, on: planning.Device, fraction: float, members: int = 1) -> str:
    """The plan of training `config` on every (CPU) device of this process, standing for devices like `on`:
    a single run (data-parallel over the devices), or with `members` > 1 a sweep of that many seeds
    (`train.train_sweep`; members split over the devices) beside the same runs one after another."""
    devices = jax.device_count()
    config = ml_collections.ConfigDict(config.to_dict())
    config.train.data_parallel = devices > 1 and members == 1
    the_zoo = _zoo(config)
    configs, _ = train.sweep_members(config, "", [config.seed + k for k in range(members)] if members > 1 else [])
    trainer, train_cost, eval_cost = _costs(configs, the_zoo)
    run, num_steps, batch = trainer.run, config.train.num_steps, config.eval.batch_size
    train_s, eval_s = _wall_seconds(trainer, train_cost, eval_cost, on, fraction)
    eval_batches = sum(-(-len(run.split[name]) // batch) for name in dataset.HELD_OUT)
    sizes = "/".join(str(len(run.split[name])) for name in dataset.SPLITS)
    used = trainer.mesh.devices.size
    if members == 1:
        placement = ("devices", f"{devices} x {on.name}" + (" (data-parallel)" if devices > 1 else ""))
        batch_row = ("batch per device", f"{config.train.batch_size / devices:g} of {config.train.batch_size}")
    else:
        idle = f"; {devices - used} idle: give a number of members that {devices} divides" if used < devices else ""
        per_device = f"{members // used} member{'s' if members // used > 1 else ''}"
        placement = ("devices", f"{devices} x {on.name}, {per_device} on each of {used}{idle}")
        batch_row = ("batch per member", f"{config.train.batch_size}")
    rows = [
        placement,
        ("zoo", f"{len(the_zoo)} snapshots (train/eval/OOD {sizes})"),
        batch_row,
        ("per step per device", planning.work(train_cost, used)),
        ("memory per device", planning.memory_note(max(train_cost.memory_bytes, eval_cost.memory_bytes), on)),
        ("steps", f"{num_steps:,}, evaluated {-(-num_steps // config.eval.every_steps)} times ({eval_batches} "
                  f"batches of {batch} each)"),
        ("estimated wall time", f"{planning.duration(train_s + eval_s)} (training {planning.duration(train_s)}, "
                                f"evaluations {planning.duration(eval_s)})"),
    ]  # fmt: skip
    if members > 1:  # the same runs one after another, each data-parallel over every device (--sweep=false)
        config.train.data_parallel = devices > 1
        single = _wall_seconds(*_costs([config], the_zoo), on, fraction)
        rows.append((
            "without the sweep",
            f"{planning.duration(members * sum(single))} ({members} runs one after another, each "
            f"{planning.duration(sum(single))}{' data-parallel' if devices > 1 else ''}): the sweep takes "
            f"{(train_s + eval_s) / (members * sum(single)):.2f} of it",
        ))  # fmt: skip
    kind = f"a sweep of {members} seeds" if members > 1 else "one run"
    title = f"Training plan: {config.encoder.name} on {the_zoo.family}, {trainer.objective.name} objective, {kind}"
    return planning.report(title, rows, on, fraction)


# The row of a table plan that is a dataset's zoo build (built once, whatever the seeds).
ZOO_ROW = "zoo"


def table_plan(
    preset: str, datasets: Sequence[str], names: Sequence[str], seeds: int, on: planning.Device, fraction: float
) -> dict:
    """The plan of `experiments.analyses.tables --preset=PRESET --seeds=SEEDS` for `datasets` (the encoders `names`
    by emulation) on every (CPU) device of this process, standing for devices like `on`: each dataset's zoo
    build (`ZOO_ROW`, its runs split over the devices), then each encoder's seeds as one sweep (the
    default), and one run after another (`--sweep=false`, each run data-parallel)."""
    devices, rows = jax.device_count(), []
    zoo_preset, _ = config_common.parse_arg(preset)  # the variants change the runs, not the zoo
    for family in datasets:
        zoo_config = zoo_configs.get_config(family, zoo_preset)
        build = zoo_plan.estimate(zoo_config, devices, on, fraction)
        rows.append(dict(
            dataset=family, encoder=ZOO_ROW, runs=zoo_config.num_runs, steps=build["steps"][-1],
            run_s=build["wall_s"], run_kernels=build["kernels_per_step"], memory_mib=build["memory_bytes"] / 2**20,
        ))  # fmt: skip
        logging.info("Planned the %s zoo: %s", family, rows[-1])
        for encoder in names:
            config = config_common.experiment(encoder, preset, family, 0)
            the_zoo = _zoo(config)
            config.train.data_parallel = devices > 1
            single = _costs([config], the_zoo)
            config.train.data_parallel = False
            sweep = _costs(train.sweep_members(config, "", list(range(seeds)))[0], the_zoo)
            row = dict(dataset=family, encoder=encoder, snapshots=len(the_zoo), steps=config.train.num_steps)
            row.update(
                run_s=sum(_wall_seconds(*single, on, fraction)),
                sweep_s=sum(_wall_seconds(*sweep, on, fraction)),
                sweep_devices=int(sweep[0].mesh.devices.size),
                sweep_kernels=sweep[1].kernels,
                run_kernels=single[1].kernels,
                sweep_memory_mib=max(sweep[1].memory_bytes, sweep[2].memory_bytes) / 2**20,
            )
            rows.append(row)
            logging.info("Planned %s on %s: %s", encoder, family, row)
    return dict(
        preset=preset, seeds=seeds, devices=devices, device=dataclasses.asdict(on), fraction=fraction, rows=rows
    )


def _loop_seconds(workdir: str, num_steps: int) -> float:
    """How long a run's training loop took, from its `metrics.jsonl`: the time between its first and last
    logged steps (the first takes the compilation), scaled to all `num_steps` steps."""
    timed = [row for row in metrics.read(layout.run_file(workdir, layout.METRICS)) if "time" in row]
    if len(timed) < 2:
        raise errors.ConfigError(f"{workdir}: its metrics.jsonl has fewer than two timed steps; finish the run first.")
    first, last = timed[0], timed[-1]
    return (last["time"] - first["time"]) * num_steps / (last["step"] - first["step"])


def _build_seconds(summary: dict, built: str) -> float:
    """A zoo's build time from its `zoo.json`: the last process's wall time over the share of the build it
    trained (the same rate over the groups earlier processes trained)."""
    if summary.get("trained_share", 0) <= 0:
        raise errors.ConfigError(
            f"{built}/zoo.json does not time any training of the zoo (its last process trained none of it, or "
            "it was written before `trained_share`); build the zoo again to check its plan."
        )
    return summary["wall_time_s"] / summary["trained_share"]


def check(outdir: str, fraction: float) -> dict:
    """The plan against what a tables directory's runs took on this CPU: for each dataset, its zoo's build
    (`wall_time_s` of the zoo's `zoo.json`, on the devices of its `layout.json`, scaled to the whole build
    by its `trained_share` where the last process resumed it) and each encoder's seed-0
    emulation run (the training loop's time in `metrics.jsonl`), planned at `fraction` of this machine's
    measured matmul rate, with the fraction of that rate each job's matmuls reached."""
    if not os.path.isdir(layout.tables_datasets(outdir)):
        raise errors.ConfigError(f"{outdir} is not a tables output directory (it has no runs/); give --check=DIR.")
    rate, kernel_s = planning.measure_cpu()
    rows = []
    for family in sorted(os.listdir(layout.tables_datasets(outdir))):
        runs = [(name, layout.table_run(outdir, family, ("emulation", name), 0)) for name in encoders.NAMES]
        runs = [(name, path) for name, path in runs if os.path.exists(layout.run_file(path, layout.METRICS))]
        if not runs:
            continue
        zoo_path = workdirs.run_zoo_path(runs[0][1])
        built = os.path.dirname(zoo_path)
        devices = files.read_json(os.path.join(built, "layout.json"))["num_devices"]
        build_config = ml_collections.ConfigDict(files.read_json(os.path.join(built, "build_config.json")))
        zoo_cost = zoo_plan.estimate(build_config, devices, planning.cpu_device(rate, kernel_s, devices), fraction)
        measured = _build_seconds(files.read_json(os.path.join(built, "zoo.json")), built)
        rows.append(dict(
            dataset=family, job="zoo", devices=devices, predicted_s=zoo_cost["wall_s"], measured_s=measured,
            reached=zoo_cost["flops"] / measured / rate,
        ))  # fmt: skip
        the_zoo = zoo.describe(zoo_path)
        for name, path in runs:
            config = workdirs.read_config(path)
            trainer, train_cost, eval_cost = _costs([config], the_zoo)
            devices = int(trainer.mesh.devices.size)
            on = planning.cpu_device(rate, kernel_s, devices)
            train_s, eval_s = _wall_seconds(trainer, train_cost, eval_cost, on, fraction)
            flops = config.train.num_steps * train_cost.flops + _eval_batches(trainer) * eval_cost.flops
            measured = _loop_seconds(path, config.train.num_steps)
            rows.append(dict(
                dataset=family, job=name, devices=devices, predicted_s=train_s + eval_s, measured_s=measured,
                reached=flops / measured / rate,
            ))  # fmt: skip
            logging.info("Checked %s: %s", path, rows[-1])
    if not rows:
        raise errors.ConfigError(f"{outdir} holds no finished seed-0 emulation run to check the plan against.")
    return dict(tables=outdir, fraction=fraction, cpu_gflops=rate / 1e9, kernel_us=kernel_s * 1e6, rows=rows)


def _publish(result: dict, name: str, start: float) -> None:
    """Adds the command, machine and wall time (since `start`) to `result` and writes it as `name`, with its
    markdown, into --outdir (`report.publish`)."""
    command = provenance.command()
    result.update(command=command, machine=provenance.machine(), wall_s=time.time() - start)
    report.publish(result, name, flags.FLAGS.outdir)


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line: the plan's device and fraction, the tables' preset and names, the
    directory to check, and the config's schema."""
    problems = cli.plan_flag_problems(flag_values)
    if flag_values.tables is not None:
        problems += config_common.arg_problems("tables", flag_values.tables)
    families = schema.Choice(*tasks.FAMILIES)
    problems += cli.list_problems("datasets", flag_values.datasets, families, nonempty=True)
    problems += cli.list_problems("encoders", flag_values.encoders, schema.Choice(*encoders.NAMES), nonempty=True)
    if flag_values.check is not None:
        problems += cli.directory_problems("check", flag_values.check, "tables", existing=True)
    if flag_values.config is not None:
        problems += config_schema.problems(flag_values.config)
    return problems


def main(argv):
    del argv
    start = time.time()
    jax.config.update("jax_platforms", "cpu")  # plans compile on CPU whatever the machine has
    cli.quiet_library_logs()
    cli.use_cpu_cores_as_devices(flags.FLAGS.devices)
    if flags.FLAGS.check:
        _publish(check(flags.FLAGS.check, flags.FLAGS.fraction), "plan_check.json", start)
        return
    on = planning.device(flags.FLAGS.device_kind, flags.FLAGS.devices)
    if not flags.FLAGS.tables:
        if flags.FLAGS.config is None:
            raise errors.ConfigError("Give --config=FILE[:preset] (one run or sweep), or --tables=PRESET.")
        print(plan(flags.FLAGS.config, on, flags.FLAGS.fraction, flags.FLAGS.members))
        return
    result = table_plan(
        flags.FLAGS.tables, flags.FLAGS.datasets, flags.FLAGS.encoders, flags.FLAGS.members, on, flags.FLAGS.fraction
    )
    _publish(result, "table_plan.json", start)


if __name__ == "__main__":
    cli.define_plan_flags("Experiment", config_required=False)
    flags.DEFINE_integer("members", 1, "Seeds trained together as one sweep (experiments.main --seeds).", lower_bound=1)
    flags.DEFINE_string(
        "tables", None, "Plan experiments.analyses.tables at this preset (--members seeds) instead of --config."
    )
    flags.DEFINE_list("datasets", ["formal_languages", "sequential_mnist"], "With --tables: the datasets planned.")
    flags.DEFINE_list("encoders", list(encoders.NAMES), "With --tables: the encoders planned.")
    flags.DEFINE_string(
        "check", None, "A tables output directory: plan its zoos and seed-0 runs on this CPU against what they took."
    )
    flags.DEFINE_string(
        "outdir", ".", "With --tables or --check: where table_plan.json or plan_check.json (and .md) are written."
    )
    cli.run_command(main, check_flags, "an experiment")
