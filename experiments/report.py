"""Every results table, rendered from the results file its command wrote; and the docs' copies of them, checked.

  python -m experiments.report --outdir=DIR        # re-render every results file in DIR into its markdown
  python -m experiments.report --docs              # rewrite every rendered block of the docs
  python -m experiments.report --docs --check      # exit status 1 and a line per stale block; writes nothing

Results come from runs, not from hand. Each command (`experiments.tables`, `probing_gap`,
`permutation_analysis`, `loss_correlation`) writes a JSON results file that holds everything its
markdown shows (the command, the machine, the wall time, the numbers), and the markdown is rendered
from that file alone: no runs, no machine queries. A results file committed under
`experiments/results/` therefore renders the same anywhere, and a doc (README.md, experiments/*.md,
zoo_builder/*.md) shows a rendered table between two markers:

  <!-- rendered from experiments/results/probing_gap_quick/probing_gap.json -->
  ...
  <!-- end rendered -->

The block is the rendered markdown without its title line; with `, section "HEADING"` after the path
(`<!-- rendered from PATH, section "HEADING" -->`) it is only the body under the heading whose text is
HEADING (any level), up to the next heading of the same or a higher level. Paths are relative to the
repository root. `tests/test_report.py` fails while any block differs from its render.
"""

import csv
import dataclasses
import glob
import math
import os
import re
import sys
from collections.abc import Callable

import numpy as np
from absl import flags, logging

from experiments import cloning, objectives
from weightspace import benchmarking, cli, encoders, errors, files, planning, targets, tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The docs whose rendered blocks are checked, as globs relative to the repository root.
DOCS = ("README.md", "experiments/*.md", "zoo_builder/*.md")
START = re.compile(r'<!-- rendered from (?P<source>[^\s,]+)(?:, section "(?P<section>[^"]+)")? -->')
END = "<!-- end rendered -->"
HEADING = re.compile(r"(?P<level>#{1,6}) (?P<text>.*)")

# The results tables' layout: each dataset's tables by split and probe, and its rows by kind, in this order.
SPLITS = ("ood", "eval", "ood_trained", "eval_trained")
PREDICTORS = ("mlp", "linear")
# The reference rows' kind (`experiments.references`); the other kinds are the objectives' names.
REFERENCE = "reference"
ROW_KINDS = (objectives.EMULATION, objectives.SUPERVISED, REFERENCE, objectives.ORACLE)


class ReportError(errors.UserError, ValueError):
    """A results file with no renderer, or a doc's rendered block that is malformed or names what is not there."""


def _text(lines: list[str]) -> str:
    """Lines as a markdown file: joined, ending in exactly one newline."""
    return "\n".join(lines).rstrip("\n") + "\n"


def _command(result: dict) -> list[str]:
    """The command line of the invocation that wrote `result`, when it recorded one."""
    return [f"Command: `{result['command']}`", ""] if result.get("command") else []


def _machine(result: dict, before: str, after: str = "") -> str:
    """`before` + the machine `result` was computed on + `after`, or "" when it recorded none."""
    return f"{before}{result['machine']}{after}" if result.get("machine") else ""


def _with_nan(row: dict) -> dict:
    """A results row with its nulls back as NaN (JSON holds an undefined number as null), formatted as "nan"."""
    return {key: float("nan") if value is None else value for key, value in row.items()}


def _defined(cell: dict | None) -> bool:
    """Whether a results-table cell holds a value (not missing, not an undefined metric)."""
    return cell is not None and cell["mean"] is not None and math.isfinite(cell["mean"])


def format_cell(cell: dict | None) -> str:
    """A results-table cell {mean, std, n}: "-" missing, "n/a" undefined (a null or non-finite mean), else the
    value of its one seed or mean ± std over its seeds."""
    if cell is None:
        return "-"
    if not _defined(cell):
        return "n/a"
    if cell["n"] == 1:
        return f"{cell['mean']:.3f}"
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}"


def format_value(value: float | None, digits: int = 3) -> str:
    """One number of a run's results: "n/a" where undefined (None, JSON's null, or non-finite)."""
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "n/a"


def _value_or_dash(values: dict[str, float | None], key: str, digits: int = 3) -> str:
    """`values[key]` formatted (`format_value`), or "-" where `values` has no such key."""
    return format_value(values[key], digits) if key in values else "-"


def evaluation_markdown(result: dict, title: str) -> str:
    """A run's `evaluation.md` from its evaluation (`experiments.evaluate`): losses, every probe on every
    subset (a column each), and cloning where the objective reports it."""
    subsets = [s for s in result["num_snapshots"] if s != "train"]
    lines = [
        f"# Evaluation: {title} on {result['dataset']}",
        "",
        f"Best checkpoint: step {result['checkpoint_step']}. Snapshots (train/{'/'.join(subsets)}): "
        + "/".join(str(n) for n in result["num_snapshots"].values())
        + ".",
        "",
        "Loss of the training objective: " + ", ".join(f"{s} {v:.4f}" for s, v in result["loss"].items()) + ".",
        "",
    ]
    columns = [result["probes"][p][s] for p in result["probes"] for s in subsets]  # {metric: value} each
    metrics = list(dict.fromkeys(m for values in columns for m in values))
    header = [f"{p} {s}" for p in result["probes"] for s in subsets]
    lines += ["| metric | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for metric in metrics:
        lines.append(f"| {metric} | " + " | ".join(_value_or_dash(c, metric, 4) for c in columns) + " |")
    if result.get("cloning"):
        lines += ["", "Cloning (task performance of the original LSTM and of the emulator conditioned on E(θ)):", ""]
        lines += [
            f"| split | original | clone | mean abs difference | snapshots | originals >= {cloning.GOOD_PERFORMANCE} "
            "| of those, clones too |",
            "|---|---|---|---|---|---|---|",
        ]
        for s, c in result["cloning"].items():
            lines.append(
                f"| {s} | {c['original']:.4f} | {c['clone']:.4f} | {c['abs_difference']:.4f} | {c['num_snapshots']} "
                f"| {c.get('num_good_originals', '-')} | {format_value(c.get('good_clones'), 4)} |"
            )
    return _text(lines)


def references_markdown(result: dict) -> str:
    """The reference rows' `evaluation.md` (`experiments.references`), one table per subset: rows readout and
    fixed_probe under each probe, columns every metric."""
    rows = {"readout": result["readout"], **{f"fixed_probe ({p})": v for p, v in result["fixed_probe"].items()}}
    metrics = list(dict.fromkeys(m for by_subset in rows.values() for values in by_subset.values() for m in values))
    lines = [
        f"# Reference rows: {result['dataset']}, seed {result['seed']}",
        "",
        "Snapshots: " + ", ".join(f"{s} {n}" for s, n in result["num_snapshots"].items()) + ". "
        f"Fixed-probe features: {result['num_features']}.",
        "",
    ]
    for subset in result["readout"]:
        lines += [f"## {subset}", "", "| row | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for name, by_subset in rows.items():
            lines.append(f"| {name} | " + " | ".join(_value_or_dash(by_subset[subset], m) for m in metrics) + " |")
        lines.append("")
    return _text(lines)


def _table_title(dataset: str, split: str, predictor: str) -> str:
    """E.g. "<dataset>, OOD split, trained snapshots, mlp probe": a table's heading (a docs block's section)."""
    held_out, trained = split.removesuffix("_trained"), split.endswith("_trained")
    name = "OOD" if held_out == "ood" else held_out
    return f"{dataset}, {name} split{', trained snapshots' if trained else ''}, {predictor} probe"


def _row_order(row: tuple[str, str]) -> tuple:
    """Sort key of a table row (kind, name): by kind, then encoders in registry order (a stable sort keeps the
    other rows, reference and oracle, in the order of the cells)."""
    kind, name = row
    return ROW_KINDS.index(kind), encoders.NAMES.index(name) if name in encoders.NAMES else len(encoders.NAMES)


def _competes(kind: str) -> bool:
    """Whether a row of `kind` competes for a column's best: not a reference row, nor a bound (the oracle)."""
    return kind in objectives.KINDS and objectives.KINDS[kind].competes


def _row_label(kind: str, name: str) -> str:
    """The group column of a row: the encoder's group as its objective labels it (`Objective.row_label`)."""
    label = objectives.KINDS[kind].row_label if kind in objectives.KINDS else kind
    return label.format(group=encoders.GROUPS.get(name, ""))


def _best(table: dict[tuple[str, str, str], dict | None], metric: str) -> float | None:
    """The best defined value of `metric` among the competing rows of one table (None if there is none)."""
    means = [cell["mean"] for (kind, _, m), cell in table.items() if m == metric and _competes(kind) and _defined(cell)]
    if not means:
        return None
    return min(means) if targets.lower_is_better(metric) else max(means)


def table_lines(cells: dict[str, dict]) -> list[str]:
    """The results tables of `cells` {"dataset/split/predictor/kind/name/metric": {mean, std, n}}.

    One table per dataset, split and probe; a row per (kind, name) among the dataset's cells, a column per
    metric of its family's `table_columns`; the best competing value of each column in bold.
    """
    by_dataset: dict[str, dict[tuple[str, ...], dict]] = {}
    for key, cell in cells.items():
        dataset, *rest = key.split("/")
        by_dataset.setdefault(dataset, {})[tuple(rest)] = cell
    lines = []
    for dataset, at in by_dataset.items():
        columns = tasks.FAMILIES[dataset].table_columns
        rows = sorted(dict.fromkeys((kind, name) for _, _, kind, name, _ in at), key=_row_order)
        for split in SPLITS:
            for predictor in PREDICTORS:
                table = {
                    (kind, name, metric): at.get((split, predictor, kind, name, metric))
                    for kind, name in rows
                    for metric, _ in columns
                }
                best = {metric: _best(table, metric) for metric, _ in columns}
                lines += [f"### {_table_title(dataset, split, predictor)}", ""]
                headers = (f"{header} {'↓' if targets.lower_is_better(m) else '↑'}" for m, header in columns)
                lines.append("| group | encoder | " + " | ".join(headers) + " |")
                lines.append("|---|---|" + "---|" * len(columns))
                for kind, name in rows:
                    texts = []
                    for metric, _ in columns:
                        cell = table[(kind, name, metric)]
                        text = format_cell(cell)
                        if _competes(kind) and _defined(cell) and np.isclose(cell["mean"], best[metric]):
                            text = f"**{text}**"
                        texts.append(text)
                    lines.append(f"| {_row_label(kind, name)} | {name} | " + " | ".join(texts) + " |")
                lines.append("")
    return lines


TABLES_ROWS_AND_COLUMNS = (
    "Rows: encoders trained by emulation (and supervised baselines, trained on each target directly and "
    "scored by their own head; the oracles, never marked best, are the emulator conditioned on the exact task "
    "instead of an encoder's embedding, which bounds emulation and cloning, and on a constant embedding, "
    "the level at which an embedding tells the emulator nothing). Reference rows, never "
    "marked best, need no learned encoder: readout reads each target off the LSTM's behaviour by its "
    "definition (no learning, the same in every probe's table; '-' where a target has none), fixed_probe "
    "is the named probe on the LSTM's outputs along a fixed, hand-written probing set. Columns: downstream "
    "targets of LSTMs of held-out tasks, predicted from the "
    "frozen embedding by the named probe fitted on the train split; the trained-snapshot tables score the "
    "same probes on the later half of the snapshot steps only. Cloning Δ (mean |performance of the "
    "original - performance of its clone|), good clones (of the cloned snapshots whose original does its "
    "task, performance >= 0.5, the fraction whose clone does too), the emulation loss and the boundary loss "
    "(on the positions where the task shows) do not depend on the probe. "
    "Mean ± std over seeds; best per column in bold; n/a where a metric is undefined (R² of a target "
    "that is constant on the split)."
)


def timings_lines(timings: list[dict]) -> list[str]:
    """Where an `experiments.tables` invocation spent its time: the zoo, each row (its seeds as one sweep, or
    one run), the reference rows; a row whose runs were all trained earlier only evaluated or reloaded them."""
    lines = ["| dataset | what | seeds | trained here | wall time s |", "|---|---|---|---|---|"]
    for timing in timings:
        seeds, done = (", ".join(map(str, timing[key])) or "-" for key in ("seeds", "done"))
        lines.append(f"| {timing['dataset']} | {timing['row']} | {seeds} | {done} | {timing['wall_s']:.0f} |")
    return lines


def tables_markdown(result: dict) -> str:
    """`tables.md` from `results.json` (experiments.tables): how it was made, every table, the figures."""
    lines = ["# Results", "", *_command(result)]
    lines.append(f"Preset: {result['preset']}; seeds: {result['seeds']}{_machine(result, '; machine: ')}.")
    if "wall_s" in result:
        lines.append(
            "Wall time of this invocation (the runs it had to do, their evaluation, the figures): "
            f"{result['wall_s']:.0f} s."
        )
    if result.get("timings"):
        lines += ["", *timings_lines(result["timings"])]
    lines += ["", TABLES_ROWS_AND_COLUMNS, "", *table_lines(result["cells"])]
    if result.get("figures"):
        lines.append("Figures: " + ", ".join(result["figures"]))
    return _text(lines)


def _probing_gap_table(
    rows: list[dict], key: str, label: str, learned: list[str], reference_names: list[str]
) -> list[str]:
    """Label / code accuracy of every reader (learned encoders, then references) and the references' bounds, a row
    per value of `key` (the code length m or the budget L)."""
    names, rows = [*learned, *reference_names], [_with_nan(r) for r in rows]
    lines = [
        f"| {label} | "
        + " | ".join(f"{n}: label / code" for n in names)
        + f" | bounds: {' / '.join(reference_names)} |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for point in sorted({r[key] for r in rows}):
        at = {r["row"]: r for r in rows if r[key] == point}
        cells = []
        for name in names:
            r = at.get(name)
            if r is None or "label_accuracy" not in r:
                cells.append("-")
                continue
            std = f" ± {r['label_accuracy_std']:.2f}" if r.get("seeds", 1) > 1 else ""
            cells.append(f"{r['label_accuracy']:.2f}{std} / {r['code_accuracy']:.2f}")
        bounds = (
            " / ".join(f"{at[r]['bound']:.2f}" for r in reference_names)
            if all(r in at for r in reference_names)
            else "-"
        )
        lines.append(f"| {point} | " + " | ".join(cells) + f" | {bounds} |")
    return lines


def _opened_table(rows: list[dict], learned: list[str], reference_names: list[str]) -> list[str]:
    """Per code length m: the fraction of locks each probing encoder's probes open, untrained and trained, beside
    the fraction each reference reads the label of."""
    probing = [n for n in learned if any("opened" in r for r in rows if r["row"] == n)]
    lines = [
        "| m | "
        + " | ".join(f"{n}: at init / trained" for n in probing)
        + f" | read by reference: {' / '.join(reference_names)} |",
        "|---|" + "---|" * (len(probing) + 1),
    ]
    for m in sorted({r["code_length"] for r in rows}):
        at = {r["row"]: r for r in rows if r["code_length"] == m}
        cells = [
            f"{at[n]['opened_at_init']:.2f} / {at[n]['opened']:.2f}" if "opened" in at.get(n, {}) else "-"
            for n in probing
        ]
        read = " / ".join(
            f"{at[n]['label_read']:.2f}" if "label_read" in at.get(n, {}) else "-" for n in reference_names
        )
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {read} |")
    return lines


def probing_gap_markdown(result: dict) -> str:
    """`probing_gap.md` from `probing_gap.json` (experiments.probing_gap): accuracy against m and against L."""
    plan, labels = result["plan"], result["plan"]["num_labels"]
    # The encoders, and the fixed sequence read by their probe (results files from before these have none).
    readers = ([*result["encoders"], *result.get("readers", ())], result["references"])
    zoos = "; ".join(
        f"m = {z['code_length']}: {z['implements']:.2f} of trained snapshots implement their lock, "
        f"{z['ood_trained']} held-out ones do"
        for z in result["zoos"]
    )
    return _text(
        [
            "# The probing gap on combination locks",
            "",
            *_command(result),
            f"Preset: {result['preset']}; options: {result['options']}; seeds: {result['seeds']}"
            f"{_machine(result, '; machine: ')}.",
            f"Wall time of this invocation: {result['wall_s']:.0f} s.",
            "",
            "Label accuracy / exact-code accuracy on LSTMs of held-out codes that implement their lock "
            f"({result['subset']}, {result['predictor']} probe for the encoders; references read with no learning, "
            f"guessing uniformly where they read nothing). Chance: label {1 / labels:.2f}. Bounds: the "
            "guess-adjusted fraction of locks the budget covers."
            + (
                " `fixed_read_by_probe` and `fixed_pooled_by_probe`: the fixed reference's answers read by the "
                "encoders' probe, fitted on the training codes, as a sequence and as counts of each answer."
                if result.get("readers")
                else ""
            ),
            "",
            f"Zoos: {zoos}",
            "",
            f"## Against the code length m (L = {plan['budget']})",
            "",
            *_probing_gap_table(result["by_code_length"], "code_length", "m", *readers),
            "",
            f"## Against the budget L (m = {plan['sweep_code_length']})",
            "",
            *_probing_gap_table(result["by_budget"], "budget", "L", *readers),
            *(
                [
                    "",
                    f"## Locks the probes open (L = {plan['budget']})",
                    "",
                    "Fraction of the same LSTMs whose answers to a probing encoder's probes show a label (the "
                    "lock opened), with the encoder untrained and trained; beside it, the fraction whose label "
                    "each reference read.",
                    "",
                    *_opened_table(result["by_code_length"], result["encoders"], result["references"]),
                ]
                if any("opened" in r for r in result["by_code_length"])
                else []
            ),
        ]
    )


def permutation_analysis_markdown(result: dict) -> str:
    """`permutation_analysis.md` from `permutation_analysis.json` (experiments.permutation_analysis): a row per
    run and kind of permutation, the embedding's relative change as initialised and trained."""
    rows, kinds = [_with_nan(r) for r in result["rows"]], result["kinds"]
    lines = [
        "# Symmetry sensitivity",
        "",
        *_command(result),
        f"{_machine(result, 'Machine: ', '. ')}Sample: {rows[0]['snapshots']} held-out snapshots per run "
        f"(seed {result['seed']}).",
        "",
        "Relative change: mean ‖E(θ) - E(Pθ)‖ over the sample / mean ‖E(θ) - E(θ')‖ between different snapshots. "
        "Function change: total variation between the outputs of θ and Pθ on θ's stored sequences. Rank "
        "correlation: Spearman, per snapshot, between the embedding change and the function change over every "
        "incorrect kind.",
        "",
        "Kinds: " + "; ".join(f"`{kind}`: {description}" for kind, description in kinds.items()) + ".",
        "",
        "| run | kind | function change | relative change, init | relative change, trained | trained / init |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["run"] for r in rows):
        by = {(r["state"], r["kind"]): r for r in rows if r["run"] == name}
        for kind in kinds:
            init, trained = by[("init", kind)], by[("trained", kind)]
            ratio = (
                trained["relative_change"] / init["relative_change"] if init["relative_change"] > 0 else float("nan")
            )
            lines.append(
                f"| {name} | {kind} | {init['function_change']:.4f} | {init['relative_change']:.2e} | "
                f"{trained['relative_change']:.2e} | {ratio:.2f} |"
            )
        lines.append(
            f"| {name} | rank correlation | | {by[('init', 'correct')]['rank_correlation']:.2f} | "
            f"{by[('trained', 'correct')]['rank_correlation']:.2f} | |"
        )
    return _text(lines)


def _loss_split_name(split: str) -> str:
    return "OOD" if split == "ood" else split


def loss_correlation_markdown(result: dict) -> str:
    """`loss_correlation.md` from `loss_correlation.json` (experiments.loss_correlation): a table per dataset of
    the rank correlation between each run's emulation loss (a column per loss split) and each score."""
    loss_splits = list(dict.fromkeys(r["loss_split"] for dataset in result.values() for r in dataset["rows"]))
    lines = [
        "# Does the emulation loss predict usefulness?",
        "",
        "Spearman's rank correlation, over every run trained by emulation (encoders x seeds), between the "
        "run's emulation loss (eval, OOD) and each downstream score (MLP probe). Oriented: positive means "
        "lower loss, better score. Source: results.csv of this directory.",
        "",
    ]
    for dataset, correlation in result.items():
        lines += [
            f"## {dataset} ({correlation['runs']} runs)",
            "",
            "| score | split | " + " | ".join(f"rho with {_loss_split_name(s)} loss" for s in loss_splits) + " |",
            "|---|---|" + "---|" * len(loss_splits),
        ]
        rho = {(r["split"], r["metric"], r["loss_split"]): _with_nan(r)["rho"] for r in correlation["rows"]}
        headers = {(r["split"], r["metric"]): r["header"] for r in correlation["rows"] if r["loss_split"] == "ood"}
        for (split, metric), header in headers.items():
            cells = [rho.get((split, metric, s), float("nan")) for s in loss_splits]
            lines.append(f"| {header} | {split} | " + " | ".join(f"{c:+.2f}" for c in cells) + " |")
        lines.append("")
    return _text(lines)


# Each results file's renderer and the markdown file it renders into, by the results file's name.
def table_plan_markdown(result: dict) -> str:
    """The plan of a tables invocation (`experiments.plan --tables`): each dataset's zoo build, then each
    encoder's runs one after another against its seeds as one sweep, per dataset and in all."""
    on, seeds, devices = result["device"], result["seeds"], result["devices"]
    lines = [
        f"# Plan: experiments.tables --preset={result['preset']} --seeds={seeds} on {devices} x {on['name']}",
        "",
        *_command(result),
        f"Each dataset's zoo, built once (its runs split over the {devices} devices); then each encoder's "
        f"{seeds} seeds one after another, each run data-parallel over the {devices} devices "
        f"(`--sweep=false`), against the {seeds} seeds as one sweep (the default), its members split over "
        f"as many devices as divide their number; training and its periodic evaluations, estimated by "
        f"`experiments.plan` at {result['fraction']:.0%} of the peak {on['peak_tflops']:g} TFLOPS and "
        f"{on['kernel_us']:g} us per kernel ({on['source']}).{_machine(result, ' Compiled on ', '.')}",
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
    return _text(lines)


def plan_check_markdown(result: dict) -> str:
    """`experiments.plan --check`: each planned zoo build and training run on this CPU against the time it
    took, and the fraction of the machine's matmul rate its matmuls reached."""
    lines = [
        f"# Plans against runs: {result['tables']}",
        "",
        *_command(result),
        f"Planned at {result['fraction']:.0%} of this machine's float32 matmul rate, measured by the check "
        f"({result['cpu_gflops']:.0f} GFLOP/s, {result['kernel_us']:.2g} us per kernel){_machine(result, ', on ')}. "
        "Measured: the zoo's build time (`zoo.json`), and each seed-0 emulation run's training loop "
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
    return _text(lines)


def encoder_benchmark_markdown(result: dict) -> str:
    """`experiments.benchmark`: each encoder's train steps/s (median of the windows, with the slowest and the
    fastest), as a single run and as sweeps where measured, beside the paper code's rates, the PyTorch emulator
    step measured in the same run, compile time, matmul FLOPs and the FLOP-bound ceiling."""
    rows, torch = result["rows"], result.get("torch_emulator")
    single = {row["encoder"]: row["steps_per_s"] for row in rows if row["members"] == 1}
    memory = "peak RSS MB" if rows[0]["backend"] == "cpu" else "peak device MB"
    columns = [
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
    sweeps = any(row["members"] > 1 for row in rows)
    left_out = set() if sweeps else {"members (devices)", "member-steps/s", "vs one member"}
    if not any(row["paper_code_steps_per_s"] for row in rows):
        left_out |= {"paper code", "ratio"}
    if not torch:
        left_out.add("vs torch emulator")
    columns = [(name, cell) for name, cell in columns if name not in left_out]
    rates = [row["matmul_gflop_per_s"] for row in rows]
    lines = [
        f"# Encoder training benchmark: --preset={result['preset']}",
        "",
        *_command(result),
        f"Train steps/s of the jitted train step (encoder, emulator, loss, AdamW) on a smoke zoo"
        f"{_machine(result, '; ')}: the median of {result['windows']} consecutive windows of "
        f"{result['seconds'] / result['windows']:g} s (at least one step each), with the slowest and the fastest."
        + (
            " A sweep of N members is one step of N seeds (members split over as many devices as divide their "
            "number); member-steps/s is its steps/s times N."
            if sweeps
            else ""
        )
        + (
            " The paper code's rates are for a 2-core CPU, as reported with the task, not measured here."
            if "paper code" not in left_out
            else ""
        ),
        "",
    ]
    if torch:
        lines += [
            f"PyTorch emulator step alone, the same run ({torch['device']}, {torch['threads']} threads): "
            f"{torch['steps_per_s']:.3g} steps/s ({torch['steps_per_s_range'][0]:.3g}-"
            f"{torch['steps_per_s_range'][1]:.3g}). Every paper-code step contains it, so 'vs torch emulator' is a "
            "lower bound on the speed-up over the paper code that moves less with the machine's load.",
            "",
        ]
    lines += [
        "| " + " | ".join(name for name, _ in columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(cell(row) for _, cell in columns) + " |" for row in rows),
        "",
        f"Ceiling: the float32 matmul rate measured after each step ({min(rates):g}-{max(rates):g} GFLOP/s) over "
        "the step's matmul FLOPs (forward and backward, loop bodies counted once per iteration). Step memory "
        f"reused (`cli.reuse_cpu_step_memory`): {rows[0]['reuses_step_memory']}.",
    ]
    return _text(lines)


def zoo_benchmark_markdown(result: dict) -> str:
    """`zoo_builder.benchmark`: model-steps/s of the zoo builder's training step for each zoo and layout, beside
    the PyTorch loop that trains one model at a time, measured in the same run."""
    baselines, rows = result["torch_baselines"], result["rows"]
    best = max((b["model_steps_per_s"] for b in baselines), default=None)
    lines = [
        "# Zoo building benchmark",
        "",
        *_command(result),
        "Model-steps/s (one model, one optimiser step on a batch of 32) of the zoo builder's jitted training "
        f"step{_machine(result, ', on ')}: the median of {result['windows']} consecutive windows of "
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
    return _text(lines)


def sweep_benchmark_markdown(result: dict) -> str:
    """`experiments.sweep_benchmark`: each encoder's seeds one run at a time against one sweep (wall time and
    peak memory of the process), the whole tables' time, and how far the two tables' cells differ."""
    runs, sweep = result["processes"]["runs"], result["processes"]["sweep"]
    lines = [
        f"# Sweep benchmark: experiments.tables --preset={result['preset']} --seeds={result['seeds']}",
        "",
        *_command(result),
        f"Dataset {result['dataset']}{_machine(result, '; ')}. Each process is one `experiments.tables` "
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
    return _text(lines)


def disk_benchmark_markdown(result: dict) -> str:
    """`experiments.disk_benchmark`: the same training with the zoo in memory and on disk, step rate and peak
    memory, beside the zoo's size (and the memory cap each run was held to, when there was one)."""
    cap = result["memory_cap_mb"]
    lines = [
        f"# Training on a zoo on disk: {result['zoo']}",
        "",
        *_command(result),
        f"Zoo {result['zoo']}, {result['zoo_mb']:,.0f} MB on disk; `{result['config']}`"
        + "".join(f" `{override}`" for override in result["overrides"])
        + f", {result['steps']} train steps per run{_machine(result, ', on ')}."
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
    return _text(lines)


RENDERERS: dict[str, tuple[Callable[[dict], str], str]] = {
    "results.json": (tables_markdown, "tables.md"),
    "probing_gap.json": (probing_gap_markdown, "probing_gap.md"),
    "permutation_analysis.json": (permutation_analysis_markdown, "permutation_analysis.md"),
    "loss_correlation.json": (loss_correlation_markdown, "loss_correlation.md"),
    "table_plan.json": (table_plan_markdown, "table_plan.md"),
    "plan_check.json": (plan_check_markdown, "plan_check.md"),
    "sweep_benchmark.json": (sweep_benchmark_markdown, "sweep_benchmark.md"),
    "encoder_benchmark.json": (encoder_benchmark_markdown, "encoder_benchmark.md"),
    "zoo_benchmark.json": (zoo_benchmark_markdown, "zoo_benchmark.md"),
    "disk_benchmark.json": (disk_benchmark_markdown, "disk_benchmark.md"),
}


def _renderer(path: str) -> tuple[Callable[[dict], str], str]:
    name = os.path.basename(path)
    if name not in RENDERERS:
        raise ReportError(f"{path}: no renderer for a results file named {name!r}; known: {', '.join(RENDERERS)}.")
    return RENDERERS[name]


def render(path: str) -> str:
    """The markdown of the results file at `path`, by the renderer of its name."""
    renderer, _ = _renderer(path)
    return renderer(files.read_json(path))


def rerender(path: str) -> str:
    """Writes the markdown of the results file at `path` beside it; returns the markdown's path."""
    markdown = os.path.join(os.path.dirname(path), _renderer(path)[1])
    files.write_text(markdown, render(path))
    logging.info("Wrote %s.", markdown)
    return markdown


def write(path: str, result: dict) -> str:
    """Writes `result` to the results file at `path` and its markdown beside it; returns the markdown's path.

    The markdown is rendered from the file as written, so it is what a later `rerender` gives.
    """
    _renderer(path)  # an unknown name fails before anything is written
    files.write_json(path, result)
    return rerender(path)


def publish(result: dict, name: str, outdir: str | None) -> None:
    """Prints the markdown of `result`, a results file named `name`; with `outdir`, first writes the file and
    its markdown there (`write`), so that what is printed is what was written."""
    if outdir:
        os.makedirs(outdir, exist_ok=True)
        with open(write(os.path.join(outdir, name), result)) as markdown:
            print(markdown.read())
    else:
        print(_renderer(name)[0](result))


# The columns of results.csv: one row per number of every run behind a tables output directory.
RECORD_COLUMNS = ("dataset", "kind", "encoder", "seed", "run", "split", "predictor", "metric", "value")


def write_records(path: str, records: list[dict]) -> None:
    """Writes the records of a tables output directory as results.csv (`RECORD_COLUMNS`), atomically."""
    with files.atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, RECORD_COLUMNS)
        writer.writeheader()
        writer.writerows(records)


def rerender_directory(outdir: str) -> list[str]:
    """Rewrites the markdown of every results file in `outdir`; returns the markdown files' paths."""
    paths = [os.path.join(outdir, name) for name in RENDERERS if os.path.isfile(os.path.join(outdir, name))]
    if not paths:
        raise ReportError(f"No results file ({', '.join(RENDERERS)}) in {outdir}.")
    return [rerender(path) for path in paths]


@dataclasses.dataclass(frozen=True)
class Block:
    """A rendered block of a doc: the lines between its markers, and what they are rendered from.

    Attributes:
      doc: the doc's path, relative to the repository root.
      start, end: the indices of its start and end marker lines in the doc.
      source: the results file, relative to the repository root.
      section: the heading whose body the block shows ("" for the whole markdown but its title).
    """

    doc: str
    start: int
    end: int
    source: str
    section: str

    def __str__(self) -> str:
        section = f', section "{self.section}"' if self.section else ""
        return f"{self.doc}:{self.start + 1}: the block rendered from {self.source}{section}"


def blocks(doc: str, lines: list[str]) -> list[Block]:
    """The rendered blocks of a doc's `lines`; a malformed, nested or unterminated block is a `ReportError`.

    Markers in fenced code (a doc showing the syntax) are text, not blocks.
    """
    found, opened, fenced = [], None, False
    for index, line in enumerate(line.rstrip() for line in lines):
        where = f"{doc}:{index + 1}"
        if opened is None and line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced:
            continue
        marker = START.fullmatch(line)
        if line.startswith("<!-- rendered") and not marker:
            raise ReportError(
                f"{where}: malformed marker {line!r}; write <!-- rendered from PATH --> or "
                '<!-- rendered from PATH, section "HEADING" -->.'
            )
        if marker:
            if opened is not None:
                raise ReportError(f"{where}: a block opens inside {opened}; close that one first with {END}.")
            opened = Block(doc, index, -1, marker["source"], marker["section"] or "")
        elif line == END:
            if opened is None:
                raise ReportError(f"{where}: {END} closes no block.")
            found.append(dataclasses.replace(opened, end=index))
            opened = None
    if opened is not None:
        raise ReportError(f"{opened} has no {END}.")
    return found


def _strip_blank(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def section(markdown: str, heading: str) -> list[str] | None:
    """The lines under the heading whose text is `heading` (any level), up to the next heading of the same or a
    higher level; with `heading` "", every line but the first H1 title. None when no heading or several match."""
    lines = markdown.splitlines()
    if not heading:
        title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        return _strip_blank(lines if title is None else lines[:title] + lines[title + 1 :])
    headings = [(i, m) for i, m in ((i, HEADING.fullmatch(line)) for i, line in enumerate(lines)) if m]
    matches = [(i, len(m["level"])) for i, m in headings if m["text"].strip() == heading]
    if len(matches) != 1:
        return None
    start, level = matches[0]
    end = next((i for i, m in headings if i > start and len(m["level"]) <= level), len(lines))
    return _strip_blank(lines[start + 1 : end])


def _block_lines(root: str, block: Block, rendered: dict[str, str]) -> list[str]:
    """What `block` should hold, rendering each results file once (`rendered`: path -> markdown)."""
    path = os.path.join(root, block.source)
    if os.path.basename(path) not in RENDERERS or not os.path.isfile(path):
        known = ", ".join(RENDERERS)
        raise ReportError(f"{block}: no such results file (a path from the repository root, named one of {known}).")
    if path not in rendered:
        rendered[path] = render(path)
    lines = section(rendered[path], block.section)
    if lines is None:
        raise ReportError(f"{block}: its markdown has no single heading {block.section!r}.")
    return lines


def doc_paths(root: str) -> list[str]:
    """The docs whose rendered blocks are checked, relative to `root`."""
    return [os.path.relpath(path, root) for pattern in DOCS for path in sorted(glob.glob(os.path.join(root, pattern)))]


def _docs(root: str) -> list[tuple[str, list[str], list[Block]]]:
    """Every doc as (path, its lines re-rendered, the blocks that differed)."""
    rendered, out = {}, []
    for doc in doc_paths(root):
        with open(os.path.join(root, doc)) as f:
            lines = f.read().splitlines()
        new, stale, copied = [], [], 0
        for block in blocks(doc, lines):
            body = _block_lines(root, block, rendered)
            if lines[block.start + 1 : block.end] != body:
                stale.append(block)
            new += lines[copied : block.start + 1] + body
            copied = block.end
        out.append((doc, new + lines[copied:], stale))
    return out


def check_docs(root: str = REPO) -> list[str]:
    """A line per rendered block of the docs under `root` that differs from its render (none when all agree)."""
    return [f"{block} differs from its render" for _, _, stale in _docs(root) for block in stale]


def rewrite_docs(root: str = REPO) -> list[str]:
    """Rewrites every rendered block of the docs under `root` from its results file; returns the blocks changed."""
    changed = []
    for doc, lines, stale in _docs(root):
        if stale:
            files.write_text(os.path.join(root, doc), "\n".join(lines) + "\n")
            changed += [str(block) for block in stale]
    return changed


def check_flags(flag_values) -> list[str]:
    """One of the two modes: --outdir=DIR, or --docs [--check]."""
    if bool(flag_values.outdir) == flag_values.docs or (flag_values.check and not flag_values.docs):
        return ["Pass --outdir=DIR (re-render its results files) or --docs [--check] (the docs' blocks)"]
    return []


def main(argv):
    del argv
    if flags.FLAGS.outdir:
        rerender_directory(flags.FLAGS.outdir)
    elif flags.FLAGS.check:
        stale = check_docs()
        for line in stale:
            print(f"{line}; run python -m experiments.report --docs")
        sys.exit(1 if stale else 0)
    else:
        for line in rewrite_docs():
            print(f"Rewrote {line}")


if __name__ == "__main__":
    flags.DEFINE_string("outdir", "", "Re-render every results file in this directory into its markdown.")
    flags.DEFINE_bool("docs", False, "Rewrite every rendered block of the docs from its results file.")
    flags.DEFINE_bool("check", False, "With --docs: write nothing, name each block that differs, exit status 1.")
    cli.run_command(main, check_flags)
