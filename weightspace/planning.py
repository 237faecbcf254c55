"""A cost model for planning jobs (`python -m zoo_builder.plan`, `python -m experiments.benchmarks.plan`).

A job's step is compiled here, on CPU devices standing in for the planned ones (a plan needs its
shapes, not its values). Counted per step and device: the matmul FLOPs of the traced step, every
scan body once per iteration (`benchmarking.matmul_flops`); the kernels the compiled program
executes, loop bodies once per iteration (`executed_kernels`); and the memory XLA's analysis gives
for one device's program. Time = FLOPs at a stated fraction of the device's peak + kernels x a cost
per kernel. Peaks are the vendors' figures for float32 matmuls at JAX's default precision (TF32
tensor cores on NVIDIA GPUs since Ampere, one bfloat16 pass on TPUs:
https://docs.jax.dev/en/latest/201/precision.html), dense, without structured sparsity. A CPU's
peak and kernel cost are measured where the plan runs; an accelerator's kernel cost is an
assumption. Limits: elementwise work rides on the fraction, and the kernels and memory are those
of the CPU compilation, which an accelerator's compiler fuses differently.
"""

import dataclasses
import functools
import re
import statistics

import jax
import jax.numpy as jnp

from weightspace import benchmarking


@dataclasses.dataclass(frozen=True)
class Device:
    """A device to plan for.

    Attributes:
      peak_tflops: its peak rate of float32 matmuls at JAX's default precision.
      kernel_us: what each executed kernel costs besides its matmuls (launch, dispatch, synchronisation).
      memory_gb: its memory (0: unknown).
      source: where the figures come from.
    """

    name: str
    peak_tflops: float
    kernel_us: float
    memory_gb: float
    source: str


# Kernel costs on accelerators are assumptions, not measured here: about one kernel launch on GPUs,
# less on TPUs, whose programs run on the chip without launches.
_GPU_KERNEL_US, _TPU_KERNEL_US = 5.0, 1.0
DEVICES = {
    device.name: device
    for device in (
        Device("a100", 156, _GPU_KERNEL_US, 80, "NVIDIA A100 80GB SXM datasheet (TF32 312 sparse, half dense)"),
        Device("h100", 494.5, _GPU_KERNEL_US, 80, "NVIDIA H100 SXM datasheet (TF32 989 sparse, half dense)"),
        Device("h200", 494.5, _GPU_KERNEL_US, 141, "NVIDIA H200 SXM datasheet (TF32 989 sparse, half dense)"),
        Device("tpu_v4", 275, _TPU_KERNEL_US, 32, "Cloud TPU v4 docs (bf16 per chip)"),
        Device("tpu_v5e", 197, _TPU_KERNEL_US, 16, "Cloud TPU v5e docs (bf16 per chip)"),
        Device("tpu_v5p", 459, _TPU_KERNEL_US, 95, "Cloud TPU v5p docs (bf16 per chip)"),
        Device("tpu_v6e", 918, _TPU_KERNEL_US, 32, "Cloud TPU v6e docs (bf16 per chip)"),
    )
}
# The fraction of peak the matmuls reach unless told otherwise: of the order the quick presets' steps reach on
# a 2-core CPU (`experiments.benchmarks.plan --check`, experiments/BENCHMARKS.md, "Planning a job"); paper-size encoder
# steps reach more there (same page, "Encoder training", the "of ceiling" column).
DEFAULT_FRACTION = 0.2


def device(kind: str, devices: int) -> Device:
    """The `Device` named `kind` (a key of `DEVICES`), or "cpu": this machine, measured (`measure_cpu`), its
    matmul rate shared by `devices` devices, each running its own kernels."""
    if kind == "cpu":
        return cpu_device(*measure_cpu(), devices)
    if kind not in DEVICES:
        raise ValueError(f"Unknown device kind {kind!r}; known: cpu, {', '.join(DEVICES)}.")
    return DEVICES[kind]


def cpu_device(rate: float, kernel_s: float, devices: int) -> Device:
    """This machine as a `Device`: its measured matmul rate (FLOP/s; `measure_cpu`) shared by `devices`
    devices, each running its own kernels at `kernel_s` seconds each."""
    return Device(
        "cpu", rate / 1e12 / devices, kernel_s * 1e6, 0.0,
        f"measured here: {rate / 1e9:.0f} GFLOP/s float32 matmuls, {kernel_s * 1e6:.2g} us per kernel",
    )  # fmt: skip


def measure_cpu(seconds: float = 2.0) -> tuple[float, float]:
    """This machine's float32 matmul rate (FLOP/s) and cost per executed kernel (s): a loop of tiny
    elementwise steps (8 floats), timed per executed kernel."""
    run = jax.jit(lambda x: jax.lax.fori_loop(0, 1000, lambda i, y: jnp.tanh(y) * 0.5 + y * 0.25, x))
    x = jnp.ones(8)
    run(x).block_until_ready()
    rate = statistics.median(benchmarking.window_rates(lambda: run(x).block_until_ready(), seconds))
    return benchmarking.matmul_rate(), 1 / rate / step_cost(run, x).kernels


@dataclasses.dataclass(frozen=True)
class StepCost:
    """One compiled step.

    Attributes:
      flops: matmul FLOPs of the whole (unpartitioned) step.
      kernels: kernels one device executes per step (`executed_kernels`).
      memory_bytes: arguments, outputs and temporaries of one device's program.
    """

    flops: float
    kernels: int
    memory_bytes: int


def step_cost(jitted, *args) -> StepCost:
    """The `StepCost` of `jitted(*args)` (no static arguments); arguments may be `jax.ShapeDtypeStruct`s
    with shardings (nothing runs)."""
    flops = benchmarking.matmul_flops(jax.make_jaxpr(jitted)(*args).jaxpr)
    compiled = jitted.lower(*args).compile()
    memory = compiled.memory_analysis()
    total = (
        memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )  # fmt: skip
    return StepCost(flops, executed_kernels(compiled.as_text()), int(total))


def seconds(cost: StepCost, devices: int, on: Device, fraction: float) -> float:
    """Seconds one call of a step takes on each of `devices` devices like `on` (its FLOPs shared by them):
    the matmuls at `fraction` of the peak, plus every kernel's own cost."""
    return cost.flops / devices / (on.peak_tflops * 1e12 * fraction) + cost.kernels * on.kernel_us * 1e-6


# HLO operations that launch no work of their own.
_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all", "partition-id", "replica-id"}


def executed_kernels(hlo: str) -> int:
    """Kernels a compiled HLO module executes on one device: a while loop's body and condition once per
    iteration (its known trip count, else once), a called computation once, a conditional's costliest
    branch, every other non-trivial operation (a fusion included) once."""
    computations, entry, current = {}, None, None
    for line in hlo.splitlines():
        header = re.match(r"(ENTRY )?%(\S+) .*\{$", line)
        if header:
            current = header.group(2)
            computations[current] = []
            entry = current if header.group(1) else entry
        elif line.startswith("}"):
            current = None
        elif current is not None and (op := re.match(r"\s+(?:ROOT )?%\S+ = .*? ([a-z][a-z0-9\-]*)\(", line)):
            computations[current].append((op.group(1), line))

    @functools.cache
    def count(computation: str) -> int:
        total = 0
        for name, line in computations[computation]:
            if name == "while":
                trip = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
                body, condition = (re.search(rf"{key}=%([\w.\-]+)", line).group(1) for key in ("body", "condition"))
                total += (int(trip.group(1)) if trip else 1) * (count(body) + count(condition))
            elif name == "call":
                total += count(re.search(r"to_apply=%([\w.\-]+)", line).group(1))
            elif name == "conditional":
                branches = re.search(r"branch_computations=\{([^}]*)\}", line)
                names = re.findall(r"%([\w.\-]+)", branches.group(1) if branches else line.split("true_computation")[1])
                total += 1 + max(count(branch) for branch in names)
            elif name not in _FREE:
                total += 1
        return total

    return count(entry)


def work(cost: StepCost, devices: int = 1, calls: int = 1) -> str:
    """One device's work per step (of `calls` steps per compiled call), as text."""
    return f"{cost.flops / devices / calls / 1e9:.4g} GFLOP, {cost.kernels / calls:.0f} kernels"


def duration(seconds: float) -> str:
    """Seconds as '1 h 02 min', '3 min 05 s' or '12.3 s'."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.3g} s"


def report(title: str, rows: list[tuple[str, str]], on: Device, fraction: float) -> str:
    """The plan as text: a title, (what, value) rows, and the assumption they rest on."""
    width = max(len(what) for what, _ in rows)
    lines = [title, *(f"  {what:<{width}}  {value}" for what, value in rows)]
    lines.append(
        f"  assuming matmuls at {fraction:.0%} of the peak {on.peak_tflops:.4g} TFLOPS and {on.kernel_us:.2g} us "
        f"per kernel per {on.name} device ({on.source})"
    )
    return "\n".join(lines)


def memory_note(memory_bytes: int, on: Device) -> str:
    """The step's memory per device, and whether it fits the device (when its memory is known)."""
    text = f"{memory_bytes / 2**20:.1f} MiB"
    if on.memory_gb and memory_bytes > on.memory_gb * 1e9:
        text += f" -- MORE than the {on.memory_gb:g} GB of one {on.name}: use more devices or fewer per device"
    return text
