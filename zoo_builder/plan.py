"""Plans a zoo build: per-device memory and FLOPs of its step, and its wall time on N devices of a kind.

  python -m zoo_builder.plan --config=configs/formal_languages.py:paper --devices=8 --device_kind=h100

Nothing is trained: the builder's own per-device programs (`train.compile_fns`) are compiled for
the runs one device trains at once, on abstract inputs (`weightspace.planning` says what is counted
and what is assumed). The per-device program of a build depends only on its runs per device, so a
single CPU device compiles it for any device count. The estimate leaves out compilation and the
final assembly of the zoo.
"""

import functools

import jax
import ml_collections
import numpy as np
from absl import flags

from weightspace import cli, lstm, planning, sharding, tasks, zoo
from zoo_builder import build, train
from zoo_builder.configs import schema


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


def _one_device_program(config: ml_collections.ConfigDict, runs: int):
    """The builder's jitted train / snapshot functions on one CPU device and their abstract inputs for `runs` runs."""
    family = tasks.make(config.task.name, config.task.settings)
    spec = lstm.LSTMSpec(family.input_size, config.lstm.hidden_size, config.lstm.num_layers, family.output_size)
    mesh = sharding.mesh("models", jax.local_devices(backend="cpu")[:1])
    schedule = train.learning_rate_schedule(config.train.lr_points)
    init_fn, train_fn, snapshot_fn = train.compile_fns(family, schedule, mesh)
    ids = np.arange(runs, dtype=np.uint32)
    keys = jax.eval_shape(functools.partial(train.run_keys, config.seed), ids)
    task = family.sample_tasks(config.seed, ids)
    data = _abstract(family.data()[0])
    state = jax.eval_shape(init_fn, spec, keys, task)
    return family, spec, train_fn, snapshot_fn, (state, keys, task, data)


def estimate(config: ml_collections.ConfigDict, devices: int, on: planning.Device, fraction: float) -> dict:
    """What a build of `config` on `devices` devices like `on` costs: its programs' costs per device, the
    runs each device trains at once, the seconds of training and of snapshots (`train_s`, `snapshot_s`) and
    in all (`wall_s`), the matmul FLOPs of the whole build over every device (`flops`), the kernels of one
    training step (`kernels_per_step`; a call runs `calls` steps) and the memory per device (`memory_bytes`)."""
    backend = "cpu" if on.name == "cpu" else "accelerator"
    per_device = build.runs_per_device(config, backend, devices)
    groups = -(-config.num_runs // (devices * per_device))
    steps = build.check_snapshot_steps(config.train.snapshot_steps)
    calls = min(config.train.steps_per_call, steps[-1])
    family, spec, train_fn, snapshot_fn, (state, keys, task, data) = _one_device_program(config, per_device)
    step = np.int32(0)
    train_cost = planning.step_cost(
        jax.jit(lambda state, keys, task, data, step: train_fn(state, keys, task, data, step, calls)),
        state, keys, task, data, step,
    )  # fmt: skip
    snapshot_cost = planning.step_cost(snapshot_fn, state["params"], keys, task, data, step)
    train_calls, snapshots = groups * steps[-1] / calls, groups * len(steps)  # on each device
    train_s = train_calls * planning.seconds(train_cost, 1, on, fraction)
    snapshot_s = snapshots * planning.seconds(snapshot_cost, 1, on, fraction)
    return dict(
        family=family, spec=spec, per_device=per_device, groups=groups, steps=steps, calls=calls,
        train_cost=train_cost, snapshot_cost=snapshot_cost, train_s=train_s, snapshot_s=snapshot_s,
        wall_s=train_s + snapshot_s,
        flops=devices * (train_calls * train_cost.flops + snapshots * snapshot_cost.flops),
        kernels_per_step=round(train_cost.kernels / calls),
        memory_bytes=max(train_cost.memory_bytes, snapshot_cost.memory_bytes),
    )  # fmt: skip


def plan(config: ml_collections.ConfigDict, devices: int, on: planning.Device, fraction: float) -> str:
    """The plan of building `config`'s zoo on `devices` devices like `on`, as text."""
    e = estimate(config, devices, on, fraction)
    per_device, steps, train_s, snapshot_s = e["per_device"], e["steps"], e["train_s"], e["snapshot_s"]
    rows = [
        ("devices", f"{devices} x {on.name}"),
        ("runs per device", f"{per_device} (groups of {devices * per_device} runs; {e['groups']} groups)"),
        ("model-steps", f"{config.num_runs * steps[-1]:,} ({config.num_runs} runs x {steps[-1]} steps)"),
        ("per step per device", f"{planning.work(e['train_cost'], calls=e['calls'])} ({per_device} runs x 1 step)"),
        ("per snapshot per device", f"{planning.work(e['snapshot_cost'])} ({len(steps)} snapshots per run)"),
        ("memory per device", planning.memory_note(e["memory_bytes"], on)),
        ("estimated wall time", f"{planning.duration(e['wall_s'])} (training {planning.duration(train_s)}, "
                                f"snapshots {planning.duration(snapshot_s)})"),
    ]  # fmt: skip
    title = f"Zoo build plan: {e['family'].name}, {config.num_runs} runs of {e['spec']}"
    return planning.report(title, rows, on, fraction)


def abstract_zoo(config: ml_collections.ConfigDict) -> zoo.Zoo:
    """The zoo `config` would build, as shapes: what plans need without the zoo at hand.

    Its arrays are `jax.ShapeDtypeStruct`s [N, ...] of the builder's own params and snapshots; its
    metadata holds each snapshot's run, step and task as the build draws them, and the metric columns
    as zeros (they only decide which tasks a run's split holds out, not how many).
    """
    family, spec, _, snapshot_fn, (state, keys, task, data) = _one_device_program(config, 1)
    behaviour, metrics = jax.eval_shape(snapshot_fn, state["params"], keys, task, data, np.int32(0))
    steps = build.check_snapshot_steps(config.train.snapshot_steps)
    num = config.num_runs * len(steps)

    def stacked(x):
        return jax.ShapeDtypeStruct((num, *x.shape[1:]), x.dtype)

    runs = np.arange(config.num_runs)
    metadata = {
        "run": np.repeat(runs, len(steps)),
        "step": np.tile(np.asarray(steps), config.num_runs),
        **{name: np.repeat(v, len(steps), axis=0) for name, v in family.sample_tasks(config.seed, runs).items()},
        **{name: np.zeros(num, x.dtype) for name, x in metrics.items()},
    }
    info = {
        "family": family.name,
        "family_settings": config.task.settings.to_dict(),
        "build_config": config.to_dict(),
        "snapshot_steps": list(steps),
    }
    params = jax.tree.map(stacked, state["params"])
    return zoo.Zoo(params, jax.tree.map(stacked, behaviour), metadata, spec, info)


def main(argv):
    del argv
    jax.config.update("jax_platforms", "cpu")  # plans compile on CPU whatever the machine has
    cli.quiet_library_logs()
    on = planning.device(flags.FLAGS.device_kind, flags.FLAGS.devices)
    print(plan(flags.FLAGS.config, flags.FLAGS.devices, on, flags.FLAGS.fraction))


if __name__ == "__main__":
    cli.define_plan_flags("Zoo")
    cli.run_command(
        main,
        lambda flag_values: cli.plan_flag_problems(flag_values) + schema.problems(flag_values.config),
        "a zoo builder",
    )
