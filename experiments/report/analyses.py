"""The markdown of the analyses' results files: the probing gap, symmetry sensitivity, the loss correlation."""

import math

from experiments.report.format import (
    command_lines,
    machine_line,
    text,
    with_nan,
)


def _probing_gap_table(
    rows: list[dict], key: str, label: str, learned: list[str], reference_names: list[str]
) -> list[str]:
    """Label / code accuracy of every reader (learned encoders, then references) and the references' bounds, a row
    per value of `key` (the code length m or the budget L)."""
    names, rows = [*learned, *reference_names], [with_nan(r) for r in rows]
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
    """Per code length m: the fraction of locks each probing encoder's probes open, untrained and trained (and,
    where the results file has it, trained on the training codes' locks), beside the fraction each reference
    reads the label of."""
    probing = [n for n in learned if any("opened" in r for r in rows if r["row"] == n)]
    keys = ["opened_at_init", "opened"] + (["opened_train"] if any("opened_train" in r for r in rows) else [])
    heading = " / ".join(("at init", "trained", "training codes")[: len(keys)])
    counted = any("train_codes" in r for r in rows)  # how many codes each point trains on and holds out
    lines = [
        "| m | "
        + " | ".join(f"{n}: {heading}" for n in probing)
        + f" | read by reference: {' / '.join(reference_names)} |"
        + (" codes: training / held-out |" if counted else ""),
        "|---|" + "---|" * (len(probing) + 1 + counted),
    ]
    for m in sorted({r["code_length"] for r in rows}):
        at = {r["row"]: r for r in rows if r["code_length"] == m}
        cells = [" / ".join(f"{at[n][k]:.2f}" for k in keys) if "opened" in at.get(n, {}) else "-" for n in probing]
        read = " / ".join(
            f"{at[n]['label_read']:.2f}" if "label_read" in at.get(n, {}) else "-" for n in reference_names
        )
        first = next(iter(at.values()))
        codes = f" {first['train_codes']} / {first['heldout_codes']} |" if counted else ""
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {read} |" + codes)
    return lines


def _statistics_table(rows: list[dict], names: list[str]) -> list[str]:
    """Per code length m: the units behind the point (and the OOD folds they pool, where a point pools several),
    the majority baseline, and each row's label accuracy with its 95 % interval and the shuffled null beside it."""
    pooled = any(r.get("folds", 1) > 1 for r in rows)
    lines = [
        "| m |" + (" OOD folds |" if pooled else "") + " held-out runs (distinct locks) | majority label | row | "
        "label accuracy | 95 % interval | shuffled null: mean / 95th pct |",
        "|---|" + "---|" * (6 + pooled),
    ]
    for m in sorted({r["code_length"] for r in rows}):
        at = {r["row"]: r for r in rows if r["code_length"] == m and "label_interval" in r}
        for name in (n for n in names if n in at):
            r = at[name]
            low, high = r["label_interval"]
            folds = f" {r['folds']} |" if pooled else ""
            lines.append(
                f"| {m} |{folds} {r['n_runs']} ({r['n_locks']}) | {r['majority']:.2f} | {name} | "
                f"{r['label_accuracy']:.2f} | {low:.2f}-{high:.2f} | {r['null_mean']:.2f} / {r['null_q95']:.2f} |"
            )
    return lines


def _readers_note(result: dict) -> str:
    """The sentence on the fixed sequences read by the encoders' probe, with the adaptive search's when it was read
    too; empty for results files from before these readers."""
    if not result.get("readers"):
        return ""
    learned = [r for r in result["readers"] if r.removesuffix("_pooled_by_probe") in result["encoders"]]
    return (
        " `fixed_read_by_probe` and `fixed_pooled_by_probe`: the fixed reference's answers read by the "
        "encoders' probe, fitted on the training codes, as a sequence and as counts of each answer"
        + (
            "; `adaptive_pooled_by_probe`: the adaptive search's answers, counted, read the same way"
            if "adaptive_pooled_by_probe" in result["readers"]
            else ""
        )
        + (
            "; " + ", ".join(f"`{r}`" for r in learned) + ": the probing encoder's own trained probes' answers, "
            "counted, read the same way (what its prober found, apart from what its learned reader made of it)"
            if learned
            else ""
        )
        + "."
    )


def _probing_gap_intro(result: dict) -> list[str]:
    """What the probing gap was run with (preset, options, seeds, machine, wall time), what its cells mean and
    how well each zoo's LSTMs implement their locks: the lines above the tables."""
    zoos = "; ".join(
        f"m = {z['code_length']}: {z['implements']:.2f} of trained snapshots implement their lock, "
        f"{z['ood_trained']} held-out ones do"
        for z in result["zoos"]
    )
    return [
        f"Preset: {result['preset']}; options: {result['options']}; seeds: {result['seeds']}"
        f"{machine_line(result, '; machine: ')}.",
        f"Wall time of this invocation: {result['wall_s']:.0f} s.",
        "",
        "Label accuracy / exact-code accuracy on LSTMs of held-out codes that implement their lock "
        f"({result['subset']}, {result['predictor']} probe for the encoders; references read with no learning, "
        f"guessing uniformly where they read nothing). Chance: label {1 / result['plan']['num_labels']:.2f}. "
        "Bounds: the guess-adjusted fraction of locks the budget covers." + _readers_note(result),
        "",
        f"Zoos: {zoos}",
    ]


def _intervals_section(result: dict, names: list[str]) -> list[str]:
    """The section of bootstrap intervals and baselines for the rows `names`; none for results files without
    intervals."""
    if not any("label_interval" in r for r in result["by_code_length"]):
        return []
    return [
        "",
        f"## Intervals and baselines (L = {result['plan']['budget']})",
        "",
        "The held-out runs are the independent units (each an LSTM trained on its own lock; its trained "
        "snapshots are not independent). Label accuracy with its 95 % bootstrap interval over runs "
        "(and seeds), beside always answering the commonest label of these runs and the accuracy the "
        "same reads score against labels shuffled among the snapshots."
        + (
            " A point of several OOD folds pools the held-out runs of every fold (each fold's encoders "
            "trained without its codes); its accuracy and ± are the mean and spread over folds and seeds."
            if any(r.get("folds", 1) > 1 for r in result["by_code_length"])
            else ""
        ),
        "",
        *_statistics_table(result["by_code_length"], names),
    ]


def _opened_section(result: dict) -> list[str]:
    """The section of locks the probing encoders' probes open; none for results files without it."""
    if not any("opened" in r for r in result["by_code_length"]):
        return []
    return [
        "",
        f"## Locks the probes open (L = {result['plan']['budget']})",
        "",
        "Fraction of the same LSTMs whose answers to a probing encoder's probes show a label (the "
        "lock opened), with the encoder untrained and trained"
        + (
            " (and of the LSTMs of the training codes that implement their lock, trained)"
            if any("opened_train" in r for r in result["by_code_length"])
            else ""
        )
        + "; beside it, the fraction whose label each reference read.",
        "",
        *_opened_table(result["by_code_length"], result["encoders"], result["references"]),
    ]


def probing_gap_markdown(result: dict) -> str:
    """`probing_gap.md` from `probing_gap.json` (experiments.analyses.probing_gap): accuracy against m and against L."""
    plan = result["plan"]
    # The encoders, and the fixed sequence read by their probe (results files from before these have none).
    readers = ([*result["encoders"], *result.get("readers", ())], result["references"])
    return text(
        [
            "# The probing gap on combination locks",
            "",
            *command_lines(result),
            *_probing_gap_intro(result),
            "",
            f"## Against the code length m (L = {plan['budget']})",
            "",
            *_probing_gap_table(result["by_code_length"], "code_length", "m", *readers),
            "",
            f"## Against the budget L (m = {plan['sweep_code_length']})",
            "",
            *_probing_gap_table(result["by_budget"], "budget", "L", *readers),
            *_intervals_section(result, [*readers[0], *readers[1]]),
            *_opened_section(result),
        ]
    )


def permutation_analysis_markdown(result: dict) -> str:
    """`permutation_analysis.md` from `permutation_analysis.json` (experiments.analyses.permutation_analysis): a row per
    run and kind of permutation, the embedding's relative change as initialised and trained."""
    rows, kinds = [with_nan(r) for r in result["rows"]], result["kinds"]
    lines = [
        "# Symmetry sensitivity",
        "",
        *command_lines(result),
        f"{machine_line(result, 'Machine: ', '. ')}Sample: {rows[0]['snapshots']} held-out snapshots per run "
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
    return text([*lines, *_symmetry_summary(result.get("summary", []))])


def _symmetry_summary(rows: list[dict]) -> list[str]:
    """The trained / initialised ratios pooled over seeds, in both measures side by side, and what holds under
    both (nothing for results files from before the summary)."""
    if not rows:
        return []
    lines = [
        "",
        "## Trained against initialised, pooled over seeds",
        "",
        "Trained / initialised ratio of the mean embedding change under each incorrect kind, absolute "
        "(‖E(θ) - E(Pθ)‖) and relative (over the spread between snapshots' embeddings of the same state), "
        "with 95 % bootstrap intervals over seeds and snapshots; the spread's own ratio is what separates the "
        "two. A conclusion holds where both intervals lie on the same side of 1.",
        "",
        "| encoder | objective | kind | runs | absolute ratio [95 %] | relative ratio [95 %] | spread ratio "
        "| under both |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        row = _finite_or_nan(row)
        cells = [
            f"{row[f'{m}_ratio']:.2f} [{row[f'{m}_interval'][0]:.2f}, {row[f'{m}_interval'][1]:.2f}]"
            for m in ("absolute", "relative")
        ]
        lines.append(
            f"| {row['encoder']} | {row['objective']} | {row['kind']} | {row['runs']} | {cells[0]} | {cells[1]} | "
            f"{row['spread_ratio']:.2f} | {_under_both(row)} |"
        )
    return lines


def _finite_or_nan(row: dict) -> dict:
    """A summary row with its nulls (a ratio over an initial change of 0) back as NaN, intervals included."""
    return {
        k: [with_nan({"v": v})["v"] for v in value] if isinstance(value, list) else value
        for k, value in with_nan(row).items()
    }


def _under_both(row: dict) -> str:
    """What the two measures agree on: more or less sensitive once trained, or nothing."""
    lows, highs = (min(row[f"{m}_interval"][i] for m in ("absolute", "relative")) for i in (0, 1))
    if lows > 1:
        return "more sensitive"
    if highs < 1:
        return "less sensitive"
    return "no conclusion"


def _loss_split_name(split: str) -> str:
    return "OOD" if split == "ood" else split


def loss_correlation_markdown(result: dict) -> str:
    """`loss_correlation.md` from `loss_correlation.json` (`experiments.analyses.loss_correlation`): a table per
    dataset of the rank correlation between each run's emulation loss (a column per loss split) and each score;
    with intervals (results written since), over every run and within encoders, each with its 95 % interval
    and permutation p-value."""
    loss_splits = list(dict.fromkeys(r["loss_split"] for dataset in result.values() for r in dataset["rows"]))
    with_evidence = all("p_value" in r for dataset in result.values() for r in dataset["rows"])
    lines = [
        "# Does the emulation loss predict usefulness?",
        "",
        "Spearman's rank correlation, over every run trained by emulation (encoders x seeds), between the "
        "run's emulation loss (eval, OOD) and each downstream score (MLP probe). Oriented: positive means "
        "lower loss, better score. Source: results.csv of this directory.",
        "",
    ]
    if with_evidence:
        lines += [
            "Each cell: rho [95 % bootstrap interval over runs] and the permutation p-value. *Across*: over "
            "every run, so the gap between encoders counts; *within*: each run's ranks less its encoder's mean "
            "rank (runs resampled and shuffled within their encoder), so only the seeds of one encoder count. "
            "An interval that holds 0 is no evidence of a correlation.",
            "",
        ]
    for dataset, correlation in result.items():
        lines += [f"## {dataset} ({correlation['runs']} runs)", ""]
        lines += _correlation_table(correlation["rows"], loss_splits, with_evidence)
        lines.append("")
    return text(lines)


def _correlation_table(rows: list[dict], loss_splits: list[str], with_evidence: bool) -> list[str]:
    """One dataset's table: a row per (score, split), a column per loss split (and, with evidence, per kind of
    correlation: across runs and within encoders)."""
    kinds = (("rho", "across"), ("within_rho", "within")) if with_evidence else (("rho", ""),)
    columns = [(key, s, name) for key, name in kinds for s in loss_splits]
    header = [f"rho{f' {name}' if name else ''} with {_loss_split_name(s)} loss" for _, s, name in columns]
    lines = ["| score | split | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(columns)]
    by = {(r["split"], r["metric"], r["loss_split"]): r for r in rows}
    headers = {(r["split"], r["metric"]): r["header"] for r in rows if r["loss_split"] == "ood"}
    for (split, metric), title in headers.items():
        cells = [_correlation_cell(by.get((split, metric, s)), key, with_evidence) for key, s, _ in columns]
        lines.append(f"| {title} | {split} | " + " | ".join(cells) + " |")
    return lines


def _correlation_cell(row: dict | None, key: str, with_evidence: bool) -> str:
    """A correlation as "+0.12", or with evidence "+0.12 [-0.30, +0.50] p=0.610" (nan where undefined)."""
    rho = float("nan") if row is None else with_nan(row)[key]
    if not with_evidence or row is None or not math.isfinite(rho):
        return f"{rho:+.2f}"
    interval, p_value = _EVIDENCE[key]
    low, high = row[interval]
    return f"{rho:+.2f} [{low:+.2f}, {high:+.2f}] p={row[p_value]:.3f}"


# Each correlation's interval and p-value in a loss-correlation row.
_EVIDENCE = {"rho": ("rho_interval", "p_value"), "within_rho": ("within_interval", "within_p_value")}


# Each results file's renderer and the markdown file it renders into, by the results file's name.


# What each row of rotation_readout.md reads, by its name's prefix.
_ROTATION_ROWS = {
    "embedding": "the encoder's embedding",
    "answers": "its probes' answers averaged over the steps (the head's pooled input)",
    "answer_harmonics": "each probing sequence's logit of its digit's class, as circular harmonics",
    "rotated_digits": "the LSTM on the variant's starting digits alone (no encoder), as circular harmonics",
    "fixed_probe": "the fixed probe reference's features",
    "nearest_training_angle": "the train split's angle nearest the snapshot's own (no probe)",
}


def rotation_readout_markdown(result: dict) -> str:
    """`rotation_readout.md` from `rotation_readout.json` (`experiments.analyses.rotation_readout`): per subset,
    a row per (group, reading) and a column per probe, each error with its 95 % interval over LSTMs."""
    runs = ", ".join(f"{r['encoder']} seed {r['seed']} (P = {r['num_parallel']})" for r in result["runs"])
    low, high = result["train_angles"]
    lines = [
        "# Where the rotation is lost",
        "",
        *command_lines(result),
        f"{machine_line(result, 'Machine: ', '. ')}Zoo: {result['zoo']} (train angles {low:.1f}-{high:.1f}°). "
        f"Runs: {runs}. Wall time: {result['wall_s']:.0f} s.",
        "",
        "Mean absolute angular error (degrees) of each reading of every trained snapshot of the split, read by "
        f"the linear and MLP probes fitted on the train split, {len(result['probe_seeds'])} probe seeds per run; "
        "[95 % bootstrap interval over the split's LSTMs and the seeds (runs x probes)], and the range of the "
        "seeds' means. Readings: " + "; ".join(f"`{name}`: {what}" for name, what in _ROTATION_ROWS.items()) + ".",
    ]
    predictors = list(dict.fromkeys(r["predictor"] for r in result["rows"]))
    for subset, facts in result["subsets"].items():
        split = subset.removesuffix("_trained")
        lines += [
            "",
            f"## {'OOD' if split == 'ood' else split} split, trained snapshots",
            "",
            f"{facts['snapshots']} snapshots of {facts['lstms']} LSTMs, angles {facts['angles'][0]:.1f}-"
            f"{facts['angles'][1]:.1f}°.",
            "",
            "| group | reading | " + " | ".join(f"{p} probe ↓" for p in predictors) + " |",
            "|---|---|" + "---|" * len(predictors),
        ]
        by = {(r["group"], r["row"], r["predictor"]): r for r in result["rows"] if r["subset"] == subset}
        for group, row in dict.fromkeys((g, name) for g, name, _ in by):
            cells = [by[(group, row, p)] for p in predictors]
            lines.append(f"| {group} | {row} | " + " | ".join(_error_cell(c) for c in cells) + " |")
    return text(lines)


def _error_cell(row: dict) -> str:
    """ "mean [interval]", and with several seeds ", seeds low-high" (the range of their means)."""
    low, high = row["interval"]
    cell = f"{row['mean']:.3f} [{low:.3f}, {high:.3f}]"
    if row["seeds"] > 1:
        cell += ", seeds {:.3f}-{:.3f}".format(*row["seed_range"])
    return cell
