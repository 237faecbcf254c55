"""Encoder-training throughput: train steps/s of each encoder with its emulator.

  python -m experiments.benchmarks.encoder --outdir=DIR
  python -m experiments.benchmarks.encoder --encoders=dwsnet,interactive --preset=quick --seconds=20 --members=1,2,3

For each encoder (each in its own process): compile time, steady-state train
steps per second of the real jitted train step (encoder + emulator + loss +
AdamW, batch 64 snapshots x 1 sequence of 41 steps at the paper's sizes; the
median over five consecutive windows, shown with the slowest and fastest, so
that a busy spell on a shared machine moves the figure less),
peak memory, the step's matmul FLOPs and the FLOP-bound ceiling on this
machine (the float32 matmul rate measured in the same run, divided by the
step's FLOPs). The FLOPs are counted on the traced train step (forward and
backward), every loop body once per iteration: XLA's cost analysis counts a
loop body once, which undercounts the scanned LSTMs by their step counts.
The data are a real smoke zoo built on the fly.
The paper code's rates on a 2-core CPU (as reported with the task) are shown
for comparison; they are not measured here. The baseline measured in the same
run is the paper code's emulator step alone in PyTorch (`nn.LSTM`, the same
sizes, loss, AdamW and clipping; with `torch` importable, or `--torch_python`
naming an interpreter that has it): every paper-code train step contains that
step, so ours divided by it is a lower bound on the speed-up over the paper
code that does not depend on how busy the machine is.

With `--members=1,2,3` each encoder's step is also measured as a sweep of that many seeds (`train.Trainer`,
members split over the devices as in training; `experiments.analyses.tables` exposes one CPU device per core, and
so does this): member-steps/s against the single run's steps/s is what a sweep gains per step. With
`--outdir` the figures go to DIR/encoder_benchmark.json and the encoder_benchmark.md rendered from it
(`report`); without it they are printed.

The same command runs unchanged on a GPU: the matmul rate is then measured
8192 wide, memory is the device's peak, the PyTorch step runs on CUDA, and
the paper code's (CPU) rates are not compared.
"""

import importlib
import json
import sys
import tempfile
import time

import jax
from absl import flags, logging

import zoo_builder
from experiments import report
from experiments.run import train
from weightspace import benchmarking, cli, encoders, presets, provenance, schema, zoo
from weightspace.benchmarking import WINDOWS

# Train steps/s of the paper's PyTorch code on a 2-core CPU, batch 64, paper sizes (reported with the task).
PAPER_CODE_STEPS_PER_S = {
    "layerwise_statistics": 4.96,
    "flat": 5.56,
    "parameter_transformer": 0.093,
    "dwsnet": 1.34,
    "noninteractive": 2.62,
    "interactive": 2.36,
}

# The paper code's emulator train step in PyTorch, alone: input and embedding projections to 256 (the
# embedding added at the first step), nn.LSTM 2 x 256, readout; total variation to the target
# distributions; AdamW 1e-4, weight decay 0.01, gradient norm clipped to 0.1; batch 64 x 41 steps.
_TORCH_EMULATOR = r"""
import json, sys, time
import torch
from torch import nn
seconds, device, windows = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if device == "cuda" and not torch.cuda.is_available():
    device = "cpu"
torch.manual_seed(0)
torch.set_default_device(device)
batch, length, size, hidden, embedding_size = 64, 41, 6, 256, 16
inputs = nn.functional.one_hot(torch.randint(0, size, (batch, length)), size).float()
targets = torch.softmax(torch.randn(batch, length, size), -1)
embedding = nn.Parameter(torch.randn(batch, embedding_size))
project_input, project_embedding = nn.Linear(size, hidden), nn.Linear(embedding_size, hidden)
lstm, readout = nn.LSTM(hidden, hidden, 2, batch_first=True), nn.Linear(hidden, size)
params = [embedding, *project_input.parameters(), *project_embedding.parameters(), *lstm.parameters(),
          *readout.parameters()]
optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
def step():
    x = project_input(inputs)
    x = torch.cat([x[:, :1] + project_embedding(embedding)[:, None], x[:, 1:]], 1)
    probs = torch.softmax(readout(lstm(x)[0]), -1)
    loss = 0.5 * (probs - targets).abs().sum(-1).mean()
    optimizer.zero_grad(); loss.backward()
    nn.utils.clip_grad_norm_(params, 0.1); optimizer.step()
def sync():
    if device == "cuda":
        torch.cuda.synchronize()
for _ in range(3):
    step()
sync()
rates = []
for _ in range(windows):
    steps, start = 0, time.perf_counter()
    while steps < 1 or time.perf_counter() - start < seconds / windows:
        step(); steps += 1
        sync()
    rates.append(steps / (time.perf_counter() - start))
print(json.dumps({"device": device, "threads": torch.get_num_threads(), "window_rates": rates}))
"""


def _torch_emulator_rate(seconds: float, device: str) -> dict | None:
    """The PyTorch emulator step's rate in this run on `device` ('cpu' or 'cuda'; None without torch)."""
    python = benchmarking.torch_python(flags.FLAGS.torch_python)
    measured = python and benchmarking.run_json([python, "-c", _TORCH_EMULATOR, str(seconds), device, str(WINDOWS)])
    return measured and measured | benchmarking.rate_summary(measured.pop("window_rates"))


def _peak_device_mb(device) -> float | None:
    """Peak accelerator memory in use (None on CPUs, whose memory is the process's RSS)."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    return round(stats["peak_bytes_in_use"] / 2**20, 1) if stats and "peak_bytes_in_use" in stats else None


def _measure(name: str, zoo_path: str, preset: str, seconds: float, members: int) -> dict:
    """One encoder's train step at `preset`, as a sweep of `members` seeds (1: a single run) placed as in
    training: compile time, steps/s (windows), matmul FLOPs, peak memory, and this run's matmul rate."""
    configs = []
    for seed in range(members):
        config = importlib.import_module(f"experiments.configs.{name}").get_config(preset)
        config.zoo.path, config.seed = zoo_path, seed
        configs.append(config)
    the_zoo = zoo.load(zoo_path)
    trainer = train.Trainer(configs, the_zoo)
    # Placed as in training: an uncommitted state would make the second call compile again.
    state = trainer.place_members(trainer.initial_state)
    arrays, indices = trainer.replicate((trainer.zoo_arrays(the_zoo), jax.numpy.arange(len(the_zoo))))
    inputs = (*trainer.place_members((trainer.keys, trainer.learning_rates)), arrays, indices)
    flops = benchmarking.matmul_flops(jax.make_jaxpr(trainer.train_step)(state, *inputs).jaxpr)
    start = time.perf_counter()
    train_step = trainer.train_step.lower(state, *inputs).compile()
    compile_s = time.perf_counter() - start
    for _ in range(2):
        state, metrics = train_step(state, *inputs)
        jax.block_until_ready(metrics)

    def step():
        nonlocal state
        state, metrics = train_step(state, *inputs)
        jax.block_until_ready(metrics)

    rates = benchmarking.window_rates(step, seconds)
    return {
        "encoder": name,
        "members": members,
        "member_devices": trainer.mesh.shape["members"],
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "batch": configs[0].train.batch_size,
        "compile_s": round(compile_s, 2),
        **benchmarking.rate_summary(rates),
        "gflop_per_step": float(f"{flops / 1e9:.4g}"),
        "peak_rss_mb": benchmarking.peak_rss_mb(),
        "peak_device_mb": _peak_device_mb(jax.devices()[0]),
        "matmul_gflop_per_s": round(benchmarking.matmul_rate() / 1e9, 1),
    }


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line: the encoders, the preset, the member counts, the time."""
    problems = cli.list_problems("encoders", flag_values.encoders, schema.Choice(*encoders.NAMES), nonempty=True)
    problems += cli.list_problems("members", flag_values.members, schema.Int(1), nonempty=True)
    if flag_values.preset not in presets.PRESETS:
        problems.append(f"--preset={flag_values.preset} must be one of {list(presets.PRESETS)}")
    if not schema.Float(0.0).fits(flag_values.seconds):
        problems.append(f"--seconds={flag_values.seconds} must be a finite number >= 0")
    return problems


def main(argv):
    del argv
    cli.use_cpu_cores_as_devices(flags.FLAGS.cpu_devices)
    members = cli.parse_list("members", flags.FLAGS.members, int)
    if flags.FLAGS.worker:
        reused = flags.FLAGS.reuse_step_memory and cli.reuse_cpu_step_memory()
        name, zoo_path = flags.FLAGS.worker.split(",", 1)
        row = _measure(name, zoo_path, flags.FLAGS.preset, flags.FLAGS.seconds, members[0])
        print(json.dumps(row | {"reuses_step_memory": reused}))
        return
    backend = jax.default_backend()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        zoo_path = zoo_builder.build_zoo("formal_languages", "smoke", workdir)
        torch_device = "cuda" if backend == "gpu" else "cpu"
        torch_rate = _torch_emulator_rate(flags.FLAGS.seconds, torch_device) if flags.FLAGS.preset == "paper" else None
        for name in flags.FLAGS.encoders:
            for count in members:
                command = [sys.executable, "-m", "experiments.benchmarks.encoder", f"--worker={name},{zoo_path}"]
                command += [f"--preset={flags.FLAGS.preset}", f"--seconds={flags.FLAGS.seconds}"]
                command += [f"--reuse_step_memory={flags.FLAGS.reuse_step_memory}", f"--members={count}"]
                command += [f"--cpu_devices={flags.FLAGS.cpu_devices}"]
                measured = benchmarking.run_json(command)
                if measured is not None:
                    # The paper code's rates are for a 2-core CPU: compared on CPUs only.
                    paper = PAPER_CODE_STEPS_PER_S.get(name) if flags.FLAGS.preset == "paper" else None
                    rows.append(measured | {"paper_code_steps_per_s": paper if backend == "cpu" else None})
                    logging.info("%s, %d member(s): %.3f steps/s", name, count, measured["steps_per_s"])
    if not rows:
        raise SystemExit("Every encoder failed; see the errors above.")
    result = dict(
        preset=flags.FLAGS.preset,
        seconds=flags.FLAGS.seconds,
        windows=WINDOWS,
        torch_emulator=torch_rate,
        rows=rows,
        command=provenance.command(),
        machine=provenance.machine(),
    )
    report.publish(result, "encoder_benchmark.json", flags.FLAGS.outdir)


if __name__ == "__main__":
    flags.DEFINE_list(
        "encoders",
        ["layerwise_statistics", "flat", "parameter_transformer", "dwsnet", "noninteractive", "interactive"],
        "Encoders to measure.",
    )
    flags.DEFINE_string("preset", "paper", "Config preset whose sizes are measured (paper, quick, smoke).")
    flags.DEFINE_float(
        "seconds", 20.0, "Steady-state measuring time per encoder, in 5 equal windows of at least one step each."
    )
    flags.DEFINE_list(
        "members",
        ["1"],
        "Members of the measured step: 1 is a single run, N a sweep of N seeds "
        "(each count measured in its own process).",
    )
    cli.define_cpu_devices_flag()
    flags.DEFINE_string("outdir", None, "Where encoder_benchmark.json and .md are written (default: printed only).")
    flags.DEFINE_string("worker", None, "Internal: 'encoder,zoo_path' to measure.")
    flags.DEFINE_string("torch_python", None, "Python with torch for the baseline (default: this one).")
    flags.DEFINE_bool(
        "reuse_step_memory",
        True,
        "Run steps on the calling thread and reuse their memory, as one-device training does.",
    )
    cli.run_command(main, check_flags)
