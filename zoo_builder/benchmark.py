"""Zoo-building throughput: model-steps per second for several layouts.

  python -m zoo_builder.benchmark --outdir=DIR
  python -m zoo_builder.benchmark --zoos=sequential_mnist --devices=1,2 --runs_per_device=1,2,8 --steps_per_call=50

Each zoo and layout (devices x runs per device x steps per call) runs in its
own process (the CPU device count is fixed at start-up) and reports compile
time, steady-state model-steps/s of the real training step (the median of
consecutive windows, `weightspace.benchmarking`; formal languages:
batch 32 x 42 tokens; sequential MNIST: batch 32 x 50 tiles, rotated on
device; AdamW), the share of the step spent making batches, and the process's
peak memory. With `torch` importable
(or `--torch_python` naming an interpreter that has it), a plain PyTorch loop
training one model at a time is measured in the same run as the baseline. With `--outdir` the figures go
to DIR/zoo_benchmark.json and the zoo_benchmark.md rendered from it (`experiments.report`); without it they
are printed.
"""

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging

from weightspace import benchmarking, cli, files, lstm, provenance, schema, sharding, tasks
from weightspace.types import PyTree
from zoo_builder import configs, train

_TORCH_BASELINE = r"""
import json, sys, time
import numpy as np, torch
threads = int(sys.argv[1])
if threads: torch.set_num_threads(threads)
rng = np.random.default_rng(0)
def batch(task=(0, -1, 1, 2), n=32, length=42):
    seqs = np.full((n, length), 5); seqs[:, 0] = 4
    for b in range(n):
        k = rng.integers(max(0, -min(task)), 10)
        s = np.concatenate([np.full(k + d, j) for j, d in enumerate(task)])[: length - 1]
        seqs[b, 1 : 1 + len(s)] = s
    return torch.from_numpy(seqs)
lstm, linear = torch.nn.LSTM(6, 32, 2, batch_first=True), torch.nn.Linear(32, 6)
opt = torch.optim.AdamW([*lstm.parameters(), *linear.parameters()], lr=0.01, weight_decay=1e-4)
data = [batch() for _ in range(20)]
def steps(n):
    for i in range(n):
        seq = data[i % len(data)]
        out, _ = lstm(torch.nn.functional.one_hot(seq[:, :-1], 6).float())
        loss = torch.nn.functional.cross_entropy(linear(out).reshape(-1, 6), seq[:, 1:].reshape(-1))
        opt.zero_grad(); loss.backward(); opt.step()
steps(50)
rates = []
for _ in range(3):
    t = time.perf_counter(); steps(300); rates.append(300 / (time.perf_counter() - t))
print(json.dumps({"threads": torch.get_num_threads(), "model_steps_per_s": float(np.median(rates))}))
"""


def _rate(fn, args: tuple, model_steps_per_call: int, seconds: float) -> tuple[float, dict]:
    """(seconds of the first call, i.e. compile + run; steady-state model-steps/s, `benchmarking.rate_summary`).

    `fn` returns (state, output); the state is fed back (it may be donated).
    """
    start = time.perf_counter()
    state, output = fn(*args)
    jax.block_until_ready(output)
    first = time.perf_counter() - start
    # A second call may compile again: its state now lives on the devices with the output's sharding.
    state, output = fn(state, *args[1:])
    jax.block_until_ready(output)

    def call():
        nonlocal state
        state, output = fn(state, *args[1:])
        jax.block_until_ready(output)

    rates = benchmarking.window_rates(call, seconds)
    return first, benchmarking.rate_summary(rates, model_steps_per_call, "model_steps_per_s")


@dataclasses.dataclass(frozen=True)
class _Workload:
    """The zoo builder's training step for one zoo and layout, and its inputs, placed as the builder places them."""

    family: tasks.TaskFamily
    mesh: jax.sharding.Mesh
    # Runs trained at once: devices x runs per device.
    runs: int
    # `train.compile_fns`'s training step.
    train_fn: Callable
    # The runs' training state, [runs, ...] per leaf, split over the devices.
    state: PyTree
    # [runs] the runs' keys.
    keys: jax.Array
    # The runs' tasks, [runs, ...] per entry.
    task: tasks.Task
    # The family's data, replicated on every device.
    data: PyTree


def _workload(zoo_name: str, devices: int, runs_per_device: int) -> _Workload:
    """The training step of `zoo_name`'s "paper" config on the first `devices` devices, and its inputs.

    The runs are those of a build's first group (seed 0, run ids 0 .. runs - 1).
    """
    config = configs.get_config(zoo_name, "paper")
    family = tasks.make(config.task.name, config.task.settings)
    spec = lstm.LSTMSpec(family.input_size, config.lstm.hidden_size, config.lstm.num_layers, family.output_size)
    mesh = sharding.mesh("models", jax.devices()[:devices])
    init, train_fn, _ = train.compile_fns(family, train.learning_rate_schedule(config.train.lr_points), mesh)
    runs = mesh.size * runs_per_device  # an accelerator host may have fewer devices than asked for
    runs_sharding = sharding.split(mesh)
    ids = jax.device_put(np.arange(runs, dtype=np.uint32), runs_sharding)
    keys = jax.jit(lambda i: train.run_keys(0, i), out_shardings=runs_sharding)(ids)
    task = {k: jax.device_put(v, runs_sharding) for k, v in family.sample_tasks(0, np.arange(runs)).items()}
    data = jax.device_put(family.data()[0], sharding.replicated(mesh))
    state = init(spec, keys, task)
    return _Workload(family, mesh, runs, train_fn, state, keys, task, data)


def _batches_fn(family: tasks.TaskFamily, mesh: jax.sharding.Mesh, steps_per_call: int) -> Callable:
    """Jitted (total, keys, task, data) -> (total, total): makes every run's batches of `steps_per_call` steps
    and adds their sum to `total`, so the batch making alone can be timed like the training step (`_rate`)."""
    steps = jnp.arange(steps_per_call)

    def device_batches(keys, task, data):
        def one(key, task):  # the batches of `steps_per_call` steps, reduced so nothing is optimised away
            batches = jax.vmap(lambda s: family.train_batch(jax.random.fold_in(key, s), task, data))(steps)
            return sum(jnp.sum(x) for x in jax.tree.leaves(batches))

        return jnp.sum(jax.vmap(one)(keys, task))[None]

    # The same per-device layout as the training step.
    runs_spec = jax.P("models")
    device_batches = jax.shard_map(
        device_batches, mesh=mesh, in_specs=(runs_spec, runs_spec, jax.P()), out_specs=runs_spec, check_vma=False
    )

    @jax.jit
    def batches_call(total, keys, task, data):
        total = total + jnp.sum(device_batches(keys, task, data))
        return total, total

    return batches_call


def _measure(zoo_name: str, devices: int, runs_per_device: int, steps_per_call: int, seconds: float) -> dict:
    """Runs in a fresh process: compile time and steady-state throughput of one zoo and layout.

    Also times the batch making alone (formal-language strings; MNIST
    rotation and tiling) over the same steps and runs, to show where the time goes.
    """
    jax.config.update("jax_num_cpu_devices", devices)  # only the CPU backend reads it
    work = _workload(zoo_name, devices, runs_per_device)
    devices = work.mesh.size  # an accelerator host may have fewer devices than asked for
    model_steps = work.runs * steps_per_call

    def train_call(state, keys, task, data):
        return work.train_fn(state, keys, task, data, jnp.int32(0), steps_per_call)

    batches_call = _batches_fn(work.family, work.mesh, steps_per_call)
    compile_s, rate = _rate(train_call, (work.state, work.keys, work.task, work.data), model_steps, seconds)
    _, batch_rate = _rate(batches_call, (jnp.float32(0), work.keys, work.task, work.data), model_steps, seconds / 2)

    return {
        "zoo": zoo_name,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "devices": devices,
        "runs_per_device": runs_per_device,
        "group": work.runs,
        "steps_per_call": steps_per_call,
        "compile_s": round(compile_s, 2),
        **rate,
        "batch_share": round(rate["model_steps_per_s"] / batch_rate["model_steps_per_s"], 3),
        "peak_rss_mb": benchmarking.peak_rss_mb(),
    }


def _torch_baselines() -> list[dict]:
    """The PyTorch loop's rate with torch's default threads and with one thread ([] without torch)."""
    python = benchmarking.torch_python(flags.FLAGS.torch_python)
    runs = (
        [benchmarking.run_json([python, "-c", _TORCH_BASELINE, str(threads)]) for threads in (0, 1)] if python else []
    )
    return [r for r in runs if r]


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line: the layouts' counts, the zoos, the time."""
    problems = [
        problem
        for name in ("devices", "runs_per_device", "steps_per_call")
        for problem in cli.list_problems(name, flag_values[name].value, schema.Int(1), nonempty=True)
    ]
    problems += cli.list_problems("zoos", flag_values.zoos, schema.Choice(*tasks.FAMILIES), nonempty=True)
    if not schema.Float(0.0).fits(flag_values.seconds):
        problems.append(f"--seconds={flag_values.seconds} must be a finite number >= 0")
    return problems


def main(argv):
    del argv
    if flags.FLAGS.worker:
        zoo_name, *layout = flags.FLAGS.worker.split(",")
        print(json.dumps(_measure(zoo_name, *(int(x) for x in layout), flags.FLAGS.seconds)))
        return
    baselines = _torch_baselines()
    rows = []
    for zoo_name in flags.FLAGS.zoos:
        for devices in map(int, flags.FLAGS.devices):
            for per_device in map(int, flags.FLAGS.runs_per_device):
                for steps in map(int, flags.FLAGS.steps_per_call):
                    worker = f"--worker={zoo_name},{devices},{per_device},{steps}"
                    row = benchmarking.run_json(
                        [sys.executable, "-m", "zoo_builder.benchmark", worker, f"--seconds={flags.FLAGS.seconds}"]
                    )
                    if row is not None:
                        rows.append(row)
                        logging.info("%s, %s: %.1f model-steps/s", zoo_name, worker, row["model_steps_per_s"])
    if not rows:
        raise SystemExit("Every layout failed; see the errors above.")
    result = dict(
        seconds=flags.FLAGS.seconds,
        windows=benchmarking.WINDOWS,
        torch_baselines=baselines,
        rows=rows,
        command=provenance.command(),
        machine=provenance.machine(),
    )
    if flags.FLAGS.outdir:
        path = os.path.join(flags.FLAGS.outdir, "zoo_benchmark.json")
        os.makedirs(flags.FLAGS.outdir, exist_ok=True)
        files.write_json(path, result)
        print(f"Wrote {path}; python -m experiments.report --outdir={flags.FLAGS.outdir} renders its table.")
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    flags.DEFINE_list("devices", ["1", "2"], "Device counts (CPU: host devices; accelerators: at most all).")
    flags.DEFINE_list("runs_per_device", ["1", "2", "8", "32"], "Runs per device per group.")
    flags.DEFINE_list("steps_per_call", ["50"], "Training steps per jitted call.")
    flags.DEFINE_float("seconds", 8.0, "Steady-state measuring time per layout.")
    flags.DEFINE_string("torch_python", None, "Python with torch for the baseline (default: this one).")
    flags.DEFINE_list("zoos", ["formal_languages", "sequential_mnist"], "Zoo configs to measure.")
    flags.DEFINE_string("outdir", None, "Where zoo_benchmark.json and .md are written (default: printed only).")
    flags.DEFINE_string("worker", None, "Internal: 'zoo,devices,runs_per_device,steps_per_call' to measure.")
    cli.run_command(main, check_flags)
