"""Does the emulation loss predict usefulness? Rank correlations between each run's loss and its scores.

  python -m experiments.analyses.loss_correlation --outdir=DIR   # DIR: an experiments.analyses.tables output directory

The encoders are trained to lower the emulation loss; the tables score what their embeddings reveal
downstream. If the loss is a good proxy, runs with lower loss (across encoders and seeds) should score
better. From the `results.csv` that `experiments.analyses.tables` writes, for every dataset: over the runs
trained by emulation (every encoder and seed), Spearman's rank correlation between the run's emulation
loss on the eval and on the OOD split and each downstream score of the family's table columns (MLP
probe, on the OOD split and on its trained snapshots). The sign is oriented so that a positive
correlation means "lower loss, better score" (for errors and losses, lower is better).

Writes `loss_correlation.json`, `loss_correlation.md` (a table per dataset, rendered from the JSON
by `experiments.report`) and `loss_correlation_<dataset>.png` (each score against the OOD loss, a
colour per encoder) into DIR; `experiments.analyses.tables` does the same at the end of every invocation.
"""

import csv
import os

import matplotlib
import numpy as np
from absl import flags

from experiments import report
from experiments.run import layout, objectives
from weightspace import cli, statistics, targets, tasks

matplotlib.use("Agg")
from matplotlib import pyplot as plt

LOSS_SPLITS = ("eval", "ood")
SCORE_SPLITS = ("ood", "ood_trained")
PREDICTOR = "mlp"
# Columns that are themselves losses of the objective: correlating them with the loss says nothing.
OWN_LOSSES = ("loss", "boundary_loss")


def read_records(outdir: str) -> list[dict]:
    """The rows of `<outdir>/results.csv` (values as floats, None where missing)."""
    path = layout.tables_file(outdir, layout.RESULTS_CSV)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No results.csv in {outdir}: run experiments.analyses.tables with --outdir={outdir} first."
        )
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["value"] = float(row["value"]) if row["value"] not in ("", "None", "nan") else None
    return rows


def run_values(records: list[dict], dataset: str) -> dict[tuple[str, str], dict[str, float]]:
    """{(encoder, seed): {"loss/<split>": value, "<split>/<metric>": value}} of the dataset's emulation runs."""
    values: dict[tuple[str, str], dict[str, float]] = {}
    for r in records:
        if r["dataset"] != dataset or not objectives.ROW_KINDS[r["kind"]].encoder_by_emulation or r["value"] is None:
            continue
        run = values.setdefault((r["encoder"], r["seed"]), {})
        if r["metric"] == "loss" and r["split"] in LOSS_SPLITS:
            run[f"loss/{r['split']}"] = r["value"]
        elif r["split"] in SCORE_SPLITS and r["predictor"] in (PREDICTOR, ""):
            run[f"{r['split']}/{r['metric']}"] = r["value"]
    return values


def _pairs(run: dict[str, float], loss_split: str, split: str, metric: str) -> bool:
    """Whether a run has both its loss on `loss_split` and its score `metric` on `split`."""
    return f"loss/{loss_split}" in run and f"{split}/{metric}" in run


def correlations(values: dict[tuple[str, str], dict[str, float]], family: type) -> list[dict]:
    """A row per (score split, metric, loss split): the oriented Spearman correlation over every run ("rho")
    and within encoders ("within_rho": each run against the other seeds of its encoder, so the gap between
    encoders drops out), each with its 95 % bootstrap interval over runs and its permutation p-value
    (`statistics.correlation_evidence`), and the number of runs."""
    rows = []
    for split in SCORE_SPLITS:
        for metric, header in family.table_columns:
            if metric in OWN_LOSSES:
                continue
            for loss_split in LOSS_SPLITS:
                pairs = [
                    (run[f"loss/{loss_split}"], run[f"{split}/{metric}"])
                    for run in values.values()
                    if _pairs(run, loss_split, split, metric)
                ]
                if len(pairs) < 3:
                    continue
                loss, score = map(np.asarray, zip(*pairs, strict=True))
                sign = 1.0 if targets.lower_is_better(metric) else -1.0
                encoders = np.array(
                    [encoder for (encoder, _), run in values.items() if _pairs(run, loss_split, split, metric)]
                )
                across = statistics.correlation_evidence(loss, sign * score)
                within = statistics.correlation_evidence(loss, sign * score, encoders)
                rows.append(
                    dict(
                        split=split,
                        metric=metric,
                        header=header,
                        loss_split=loss_split,
                        rho=across["rho"],
                        rho_interval=across["interval"],
                        p_value=across["p_value"],
                        within_rho=within["rho"],
                        within_interval=within["interval"],
                        within_p_value=within["p_value"],
                        runs=len(pairs),
                    )
                )
    return rows


def plot(values: dict, family: type, dataset: str, path: str) -> None:
    """Each score (OOD, MLP probe) against the OOD emulation loss, a colour per encoder."""
    metrics = [(m, h) for m, h in family.table_columns if m not in OWN_LOSSES]
    columns = min(4, len(metrics))
    rows = -(-len(metrics) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.9 * rows), squeeze=False)
    encoders = sorted({encoder for encoder, _ in values})
    losses = [run["loss/ood"] for run in values.values() if "loss/ood" in run]
    # Losses spanning over a factor of three read best on a log axis; a narrower range shows only minor ticks.
    xscale = "log" if losses and max(losses) > 3 * min(losses) else "linear"
    for axis, (metric, header) in zip(axes.flat, metrics, strict=False):
        for k, encoder in enumerate(encoders):
            points = [
                (run["loss/ood"], run[f"ood/{metric}"])
                for (e, _), run in values.items()
                if e == encoder and "loss/ood" in run and f"ood/{metric}" in run
            ]
            if points:
                axis.scatter(*zip(*points, strict=True), s=18, color=f"C{k}", label=encoder)
        axis.set(xlabel="OOD emulation loss", ylabel=header, title=header, xscale=xscale)
    for axis in axes.flat[len(metrics) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=6)
    figure.suptitle(f"{dataset}: downstream scores (OOD, {PREDICTOR} probe) against the emulation loss, every run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def make(outdir: str) -> dict:
    """Reads `<outdir>/results.csv`; writes one figure per dataset, the JSON and its markdown."""
    records = read_records(outdir)
    result, figures = {}, []
    for dataset in sorted({r["dataset"] for r in records}):
        family = tasks.FAMILIES[dataset]
        values = run_values(records, dataset)
        result[dataset] = {"runs": len(values), "rows": correlations(values, family)}
        figure = os.path.join(outdir, f"loss_correlation_{dataset}.png")
        plot(values, family, dataset, figure)
        figures.append(figure)
    report.write(os.path.join(outdir, "loss_correlation.json"), result)
    return {"correlations": result, "figures": figures}


def check_flags(flag_values) -> list[str]:
    """The outdir must be a tables output."""
    return cli.directory_problems("outdir", flag_values.outdir, "tables", existing=True)


def main(argv):
    del argv
    make(flags.FLAGS.outdir)


if __name__ == "__main__":
    flags.DEFINE_string(
        "outdir", None, "An experiments.analyses.tables output directory (with results.csv).", required=True
    )
    cli.run_command(main, check_flags)
