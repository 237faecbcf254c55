"""The markdown of the benchmarks' and plans' results files (`experiments.benchmarks`, `zoo_builder.benchmark`)."""

from collections.abc import Callable

from experiments.report.format import (
    command_lines,
    format_value,
    machine_line,
    text,
)
from weightspace import benchmarking, planning


def table_plan_markdown(result: dict) -> str:
    """The plan of a tables invocation (`experiments.benchmarks.plan --tables`): each dataset's zoo build, then each
    encoder's runs one after another against its seeds as one sweep, per dataset and in all."""
    on, seeds, devices = result["device"], result["seeds"], result["devices"]
    lines = [
        f"# Plan: experiments.analyses.tables --preset={result['preset']} --seeds={seeds} on {devices} x {on['name']}",
        "",
        *command_lines(result),
        f"Each dataset's zoo, built once (its runs split over the {devices} devices); then each encoder's "
        f"{seeds} seeds one after another, each run data-parallel over the {devices} devices "
        f"(`--sweep=false`), against the {seeds} seeds as one sweep (the default), its members split over "
        f"as many devices as divide their number; training and its periodic evaluations, estimated by "
        f"`experiments.benchmarks.plan` at {result['fraction']:.0%} of the peak {on['peak_tflops']:g} TFLOPS and "
        f"{on['kernel_us']:g} us per kernel ({on['source']}).{machine_line(result, ' Compiled on ', '.')}",
        "",
        "| dataset | job | kernels per step (run / sweep) | one run | runs one after another | sweep "
        "| sweep / runs | memory per device (sweep) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs_s = sweep_s = 0.0
    for row in result["rows"]:
        if "sweep_s" not in row:  # a zoo build: the same for both
            job = f"zoo: {row['runs']:,} runs x {row['steps']:,} steps"
            runs_s, sweep_s = runs_s + row["run_s"], sweep_s + row["run_s"]
            lines.append(
                f"| {row['dataset']} | {job} | {row['run_kernels']:,} | {planning.duration(row['run_s'])} "
                f"| {planning.duration(row['run_s'])} | {planning.duration(row['run_s'])} | - "
                f"| {row['memory_mib']:.0f} MiB |"
            )
            continue
        runs, sweep = seeds * row["run_s"], row["sweep_s"]
        runs_s, sweep_s = runs_s + runs, sweep_s + sweep
        lines.append(
            f"| {row['dataset']} | {row['encoder']} | {row['run_kernels']:,} / {row['sweep_kernels']:,} "
            f"| {planning.duration(row['run_s'])} | {planning.duration(runs)} | {planning.duration(sweep)} "
            f"| {sweep / runs:.2f} | {row['sweep_memory_mib']:.0f} MiB |"
        )
    lines.append(
        f"| **all** | | | | **{planning.duration(runs_s)}** | **{planning.duration(sweep_s)}** "
        f"| **{sweep_s / runs_s:.2f}** | |"
    )
    return text(lines)


def plan_check_markdown(result: dict) -> str:
    """`experiments.benchmarks.plan --check`: each planned zoo build and training run on this CPU against the time it
    took, and the fraction of the machine's matmul rate its matmuls reached."""
    lines = [
        f"# Plans against runs: {result['tables']}",
        "",
        *command_lines(result),
        f"Planned at {result['fraction']:.0%} of this machine's float32 matmul rate, measured by the check "
        f"({result['cpu_gflops']:.0f} GFLOP/s, {result['kernel_us']:.2g} us per kernel)"
        f"{machine_line(result, ', on ')}. "
        "Measured: the zoo's build time (`zoo.json`, scaled to the whole build where its last process resumed "
        "it), and each seed-0 emulation run's training loop "
        "(`metrics.jsonl`, from its first logged step, scaled to all steps). Reached: the job's matmul FLOPs "
        "over its measured time, as a fraction of the machine's rate.",
        "",
        "| dataset | job | devices | predicted s | measured s | predicted / measured | reached |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['dataset']} | {row['job']} | {row['devices']} | {row['predicted_s']:,.0f} "
            f"| {row['measured_s']:,.0f} | {row['predicted_s'] / row['measured_s']:.2f} | {row['reached']:.0%} |"
        )
    return text(lines)


# A column of the encoder benchmark's table: its header, and the cell it shows for a row of the results file.
Column = tuple[str, Callable[[dict], str]]


def _encoder_columns(rows: list[dict], torch: dict | None) -> list[Column]:
    """Every column the encoder benchmark's table can show, in order.

    Args:
      rows: The results file's rows, one per encoder and member count.
      torch: The PyTorch emulator step measured in the same run, or None.

    Returns:
      (header, cell) pairs; the cells of the comparisons assume what they compare against is there, so the caller
      leaves those out when it is not (`_shown_columns`).
    """
    single = {row["encoder"]: row["steps_per_s"] for row in rows if row["members"] == 1}
    memory = "peak RSS MB" if rows[0]["backend"] == "cpu" else "peak device MB"
    return [
        ("encoder", lambda r: r["encoder"]),
        ("members (devices)", lambda r: f"{r['members']} ({r['member_devices']})"),
        ("steps/s", lambda r: f"{r['steps_per_s']:.3g}"),
        ("window range", benchmarking.window_range),
        ("member-steps/s", lambda r: f"{r['steps_per_s'] * r['members']:.3g}"),
        (
            "vs one member",
            lambda r: (
                f"{r['steps_per_s'] * r['members'] / single[r['encoder']]:.2f}x" if r["encoder"] in single else "-"
            ),
        ),
        ("paper code", lambda r: format_value(r["paper_code_steps_per_s"]) if r["paper_code_steps_per_s"] else "-"),
        (
            "ratio",
            lambda r: (
                f"**{r['steps_per_s'] / r['paper_code_steps_per_s']:.2f}x**"
                if r["paper_code_steps_per_s"] and r["members"] == 1
                else "-"
            ),
        ),
        (
            "vs torch emulator",
            lambda r: f"{r['steps_per_s'] / torch['steps_per_s']:.2f}x" if r["members"] == 1 else "-",
        ),
        ("compile s", lambda r: f"{r['compile_s']:.1f}"),
        ("GFLOP/step", lambda r: f"{r['gflop_per_step']:.3g}"),
        ("of ceiling", lambda r: f"{r['steps_per_s'] * r['gflop_per_step'] / r['matmul_gflop_per_s']:.0%}"),
        (memory, lambda r: f"{(r['peak_rss_mb'] if r['backend'] == 'cpu' else r['peak_device_mb']) or 0:.0f}"),
    ]


def _shown_columns(rows: list[dict], torch: dict | None, sweeps: bool, paper_code: bool) -> list[Column]:
    """The encoder benchmark's columns less those with nothing to show: the sweep columns without a sweep, the
    paper code's without its rates, the PyTorch emulator's without its measurement."""
    left_out = set() if sweeps else {"members (devices)", "member-steps/s", "vs one member"}
    if not paper_code:
        left_out |= {"paper code", "ratio"}
    if not torch:
        left_out.add("vs torch emulator")
    return [(name, cell) for name, cell in _encoder_columns(rows, torch) if name not in left_out]


def _encoder_intro(result: dict, sweeps: bool, paper_code: bool) -> str:
    """The paragraph under the encoder benchmark's title: what was timed and how, with a sentence on sweeps and
    one on the paper code's rates when the table shows them."""
    return (
        f"Train steps/s of the jitted train step (encoder, emulator, loss, AdamW) on a smoke zoo"
        f"{machine_line(result, '; ')}: the median of {result['windows']} consecutive windows of "
        f"{result['seconds'] / result['windows']:g} s (at least one step each), with the slowest and the fastest."
        + (
            " A sweep of N members is one step of N seeds (members split over as many devices as divide their "
            "number); member-steps/s is its steps/s times N."
            if sweeps
            else ""
        )
        + (
            " The paper code's rates are for a 2-core CPU, as reported with the task, not measured here."
            if paper_code
            else ""
        )
    )


def _torch_emulator_lines(torch: dict | None) -> list[str]:
    """The paragraph on the PyTorch emulator step measured in the same run (none without it): the baseline that
    moves less with the machine's load than the paper code's reported rates."""
    if not torch:
        return []
    return [
        f"PyTorch emulator step alone, the same run ({torch['device']}, {torch['threads']} threads): "
        f"{torch['steps_per_s']:.3g} steps/s ({torch['steps_per_s_range'][0]:.3g}-"
        f"{torch['steps_per_s_range'][1]:.3g}). Every paper-code step contains it, so 'vs torch emulator' is a "
        "lower bound on the speed-up over the paper code that moves less with the machine's load.",
        "",
    ]


def _column_table(columns: list[Column], rows: list[dict]) -> list[str]:
    """A markdown table: a header of the columns' names, then a line per row of their cells."""
    return [
        "| " + " | ".join(name for name, _ in columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(cell(row) for _, cell in columns) + " |" for row in rows),
    ]


def _ceiling_note(rows: list[dict]) -> str:
    """The note under the encoder benchmark's table: how 'of ceiling' is computed, over the range of matmul rates
    measured, and whether step memory was reused."""
    rates = [row["matmul_gflop_per_s"] for row in rows]
    return (
        f"Ceiling: the float32 matmul rate measured after each step ({min(rates):g}-{max(rates):g} GFLOP/s) over "
        "the step's matmul FLOPs (forward and backward, loop bodies counted once per iteration). Step memory "
        f"reused (`cli.reuse_cpu_step_memory`): {rows[0]['reuses_step_memory']}."
    )


def encoder_benchmark_markdown(result: dict) -> str:
    """`experiments.benchmarks.encoder`: each encoder's train steps/s (median of the windows, with the slowest and the
    fastest), as a single run and as sweeps where measured, beside the paper code's rates, the PyTorch emulator
    step measured in the same run, compile time, matmul FLOPs and the FLOP-bound ceiling."""
    rows, torch = result["rows"], result.get("torch_emulator")
    sweeps = any(row["members"] > 1 for row in rows)
    paper_code = any(row["paper_code_steps_per_s"] for row in rows)
    lines = [
        f"# Encoder training benchmark: --preset={result['preset']}",
        "",
        *command_lines(result),
        _encoder_intro(result, sweeps, paper_code),
        "",
        *_torch_emulator_lines(torch),
        *_column_table(_shown_columns(rows, torch, sweeps, paper_code), rows),
        "",
        _ceiling_note(rows),
    ]
    return text(lines)


def zoo_benchmark_markdown(result: dict) -> str:
    """`zoo_builder.benchmark`: model-steps/s of the zoo builder's training step for each zoo and layout, beside
    the PyTorch loop that trains one model at a time, measured in the same run."""
    baselines, rows = result["torch_baselines"], result["rows"]
    best = max((b["model_steps_per_s"] for b in baselines), default=None)
    lines = [
        "# Zoo building benchmark",
        "",
        *command_lines(result),
        "Model-steps/s (one model, one optimiser step on a batch of 32) of the zoo builder's jitted training "
        f"step{machine_line(result, ', on ')}: the median of {result['windows']} consecutive windows of "
        f"{result['seconds'] / result['windows']:g} s, with the slowest and the fastest. Batch share: the time "
        "of making the batches (strings; MNIST rotation and tiling) over the whole step's.",
        "",
    ]
    lines += [
        f"PyTorch baseline (formal languages, one model at a time, the same run), {b['threads']} thread(s): "
        f"{b['model_steps_per_s']:.1f} model-steps/s."
        for b in baselines
    ]
    lines += [
        "",
        "| zoo | devices x runs/device | steps/call | compile s | model-steps/s | window range | batch share "
        "| peak RSS MB |" + (" vs PyTorch (best) |" if best else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if best else ""),
    ]
    for row in rows:
        lines.append(
            f"| {row['zoo']} | {row['devices']} x {row['runs_per_device']} | {row['steps_per_call']} "
            f"| {row['compile_s']:.1f} | {row['model_steps_per_s']:.1f} "
            f"| {benchmarking.window_range(row, 'model_steps_per_s')} | {row['batch_share']:.0%} "
            f"| {row['peak_rss_mb']:.0f} |" + (f" {row['model_steps_per_s'] / best:.2f}x |" if best else "")
        )
    return text(lines)


def sweep_benchmark_markdown(result: dict) -> str:
    """`experiments.benchmarks.sweep`: each encoder's seeds one run at a time against one sweep (wall time and
    peak memory of the process), the whole tables' time, and how far the two tables' cells differ."""
    runs, sweep = result["processes"]["runs"], result["processes"]["sweep"]
    lines = [
        f"# Sweep benchmark: experiments.analyses.tables --preset={result['preset']} --seeds={result['seeds']}",
        "",
        *command_lines(result),
        f"Dataset {result['dataset']}{machine_line(result, '; ')}. Each process is one `experiments.analyses.tables` "
        f"invocation: an encoder's {result['seeds']} seeds trained and evaluated one run at a time "
        "(`--sweep=false`) or as one sweep, the two in turns; the last adds the oracle and the reference rows "
        "and writes the tables, reusing every run.",
        "",
        "| process | one run at a time s | one sweep s | speed-up | peak RSS MB, runs / sweep |",
        "|---|---|---|---|---|",
    ]
    for single, together in zip(runs, sweep, strict=True):
        what = "oracle, references, tables" if single["final"] else ", ".join(single["encoders"])
        lines.append(
            f"| {what} | {single['wall_s']:.0f} | {together['wall_s']:.0f} "
            f"| {single['wall_s'] / together['wall_s']:.2f}x | {single['peak_rss_mb']:.0f} / "
            f"{together['peak_rss_mb']:.0f} |"
        )
    total = [sum(p["wall_s"] for p in processes) for processes in (runs, sweep)]
    peak = [max(p["peak_rss_mb"] for p in processes) for processes in (runs, sweep)]
    lines += [
        f"| **all** | **{total[0]:.0f}** | **{total[1]:.0f}** | **{total[0] / total[1]:.2f}x** "
        f"| {peak[0]:.0f} / {peak[1]:.0f} |",
        "",
    ]
    cells = result["cells"]
    lines.append(
        f"Cells: {cells['cells']}; {cells['within']} differ by no more than their std over seeds; the largest "
        f"difference of a mean is {format_value(cells['largest'], 4)}"
        + (f" ({cells['where']})." if cells["where"] else ".")
    )
    return text(lines)


def disk_benchmark_markdown(result: dict) -> str:
    """`experiments.benchmarks.disk`: the same training with the zoo in memory and on disk, step rate and peak
    memory, beside the zoo's size (and the memory cap each run was held to, when there was one)."""
    cap = result["memory_cap_mb"]
    lines = [
        f"# Training on a zoo on disk: {result['zoo']}",
        "",
        *command_lines(result),
        f"Zoo {result['zoo']}, {result['zoo_mb']:,.0f} MB on disk; `{result['config']}`"
        + "".join(f" `{override}`" for override in result["overrides"])
        + f", {result['steps']} train steps per run{machine_line(result, ', on ')}."
        + (f" Each run under `{result['wrapper']}`." if result["wrapper"] else "")
        + " Steps/s: the median over the logging intervals (without the first, which compiles, and the last, "
        "which evaluates), with the slowest and the fastest. Peak RSS includes pages of memory-mapped files.",
        "",
        "| zoo | train steps/s | window range | peak RSS MB | runs |",
        "|---|---|---|---|---|",
    ]
    for mode in ("in memory", "on disk"):
        row = result[mode]
        rate = row["steps_per_s"]
        under = "" if not cap else (" (under the cap)" if row["peak_rss_mb"] < cap else " (over the cap)")
        lines.append(
            f"| {mode} | {format_value(rate, 1) if rate else '-'} "
            f"| {benchmarking.window_range(row) if rate else '-'} "
            f"| {row['peak_rss_mb']:,.0f}{under} | {', '.join(row['exits'])} |"
        )
    ratio = result["disk_over_memory"]
    lines += ["", f"On disk / in memory, steps/s: **{ratio:.3f}**." if ratio else "No ratio: a run did not finish."]
    if cap:
        lines[-1] += f" Memory cap: {cap:,.0f} MB."
    return text(lines)
