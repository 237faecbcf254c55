"""The markdown of a run's evaluation, of the reference rows, and of a tables output (`experiments.analyses.tables`)."""

import numpy as np

from experiments.report.format import (
    command_lines,
    defined,
    format_cell,
    format_value,
    machine_line,
    text,
    value_or_dash,
)
from experiments.run import cloning, objectives
from weightspace import encoders, targets, tasks

# The results tables' layout: each dataset's tables by split and probe, and its rows by kind, in this order.
SPLITS = ("ood", "eval", "ood_trained", "eval_trained")
PREDICTORS = ("mlp", "linear")
# The reference rows' kind (`experiments.analyses.references`); the other kinds are the objectives' names.


def evaluation_markdown(result: dict, title: str) -> str:
    """A run's `evaluation.md` from its evaluation (`experiments.run.evaluate`): losses, every probe on every
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
        lines.append(f"| {metric} | " + " | ".join(value_or_dash(c, metric, 4) for c in columns) + " |")
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
    return text(lines)


def references_markdown(result: dict) -> str:
    """The reference rows' `evaluation.md` (`experiments.analyses.references`), one table per subset: rows readout and
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
            lines.append(f"| {name} | " + " | ".join(value_or_dash(by_subset[subset], m) for m in metrics) + " |")
        lines.append("")
    return text(lines)


def _table_title(dataset: str, split: str, predictor: str) -> str:
    """E.g. "<dataset>, OOD split, trained snapshots, mlp probe": a table's heading (a docs block's section)."""
    held_out, trained = split.removesuffix("_trained"), split.endswith("_trained")
    name = "OOD" if held_out == "ood" else held_out
    return f"{dataset}, {name} split{', trained snapshots' if trained else ''}, {predictor} probe"


def _row_order(row: tuple[str, str]) -> tuple:
    """Sort key of a table row (kind, name): by kind, then encoders in registry order (a stable sort keeps the
    other rows, reference and oracle, in the order of the cells)."""
    kind, name = row
    return list(objectives.ROW_KINDS).index(kind), encoders.NAMES.index(name) if name in encoders.NAMES else len(
        encoders.NAMES
    )


def _competes(kind: str) -> bool:
    """Whether a row of `kind` competes for a column's best: not a reference row, nor a bound (the oracle)."""
    return objectives.ROW_KINDS[kind].competes


def _row_label(kind: str, name: str) -> str:
    """The group column of a row: the encoder's group as its objective labels it (`Objective.row_label`)."""
    label = objectives.ROW_KINDS[kind].row_label
    return label.format(group=encoders.GROUPS.get(name, ""))


def _best(table: dict[tuple[str, str, str], dict | None], metric: str) -> float | None:
    """The best defined value of `metric` among the competing rows of one table (None if there is none)."""
    means = [cell["mean"] for (kind, _, m), cell in table.items() if m == metric and _competes(kind) and defined(cell)]
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
                        if _competes(kind) and defined(cell) and np.isclose(cell["mean"], best[metric]):
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
    """Where an `experiments.analyses.tables` invocation spent its time: the zoo, each row (its seeds as one sweep, or
    one run), the reference rows; a row whose runs were all trained earlier only evaluated or reloaded them."""
    lines = ["| dataset | what | seeds | trained here | wall time s |", "|---|---|---|---|---|"]
    for timing in timings:
        seeds, done = (", ".join(map(str, timing[key])) or "-" for key in ("seeds", "done"))
        lines.append(f"| {timing['dataset']} | {timing['row']} | {seeds} | {done} | {timing['wall_s']:.0f} |")
    return lines


def tables_markdown(result: dict) -> str:
    """`tables.md` from `results.json` (experiments.analyses.tables): how it was made, every table, the figures."""
    lines = ["# Results", "", *command_lines(result)]
    lines.append(f"Preset: {result['preset']}; seeds: {result['seeds']}{machine_line(result, '; machine: ')}.")
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
    return text(lines)
