"""The probing gap's figures: label accuracy of every row against m or L, with chance, the coverage bounds
and the commonest-label baseline."""

import matplotlib
import numpy as np

from experiments.analyses.probing_gap.plans import ENCODERS
from experiments.analyses.probing_gap.readers import READERS, REFERENCES

matplotlib.use("Agg")
from matplotlib import pyplot as plt
from matplotlib import ticker

STYLE = {
    "interactive": dict(color="C0", marker="o"),
    "noninteractive": dict(color="C1", marker="s"),
    "dwsnet": dict(color="C2", marker="^"),
    "adaptive": dict(color="C0", marker="o", linestyle="--", markerfacecolor="none"),
    "fixed": dict(color="C1", marker="s", linestyle="--", markerfacecolor="none"),
    "fixed_read_by_probe": dict(color="C3", marker="x", linestyle=":"),
    "fixed_pooled_by_probe": dict(color="C4", marker="+", linestyle=":"),
    "adaptive_pooled_by_probe": dict(color="C5", marker="*", linestyle=":"),
}


def _error_bar(row: dict) -> tuple[float, float]:
    """How far below and above its label accuracy a row's error bar reaches: its 95 % interval, or (results from
    before intervals) the std over seeds."""
    if "label_interval" in row:
        low, high = row["label_interval"]
        return max(0.0, row["label_accuracy"] - low), max(0.0, high - row["label_accuracy"])
    std = row.get("label_accuracy_std", 0.0)
    return std, std


def plot(rows: list[dict], key: str, xlabel: str, title: str, num_labels: int, path: str) -> None:
    """Label accuracy of every row against `key` (m or L), with chance and both bounds."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for name in (*ENCODERS, *READERS, *REFERENCES):
        points = sorted((r[key], r) for r in rows if r["row"] == name and "label_accuracy" in r)
        if points:
            x = [p for p, _ in points]
            y = [r["label_accuracy"] for _, r in points]
            error = np.array([_error_bar(r) for _, r in points]).T  # [2, points]: below, above
            label = f"{name} reference (no learning)" if name in REFERENCES else name
            axis.errorbar(x, y, yerr=error, label=label, capsize=3, **STYLE[name])
    for name, style in (("adaptive", ":"), ("fixed", "-.")):
        points = sorted({(r[key], r["bound"]) for r in rows if r["row"] == name})
        axis.plot(*zip(*points, strict=True), style, color="grey", label=f"{name} coverage bound")
    axis.axhline(1.0 / num_labels, color="black", linewidth=0.8, label="chance")
    majority = sorted({(r[key], r["majority"]) for r in rows if "majority" in r})
    if majority:
        axis.plot(*zip(*majority, strict=True), "k:", linewidth=1.0, label="commonest label of these runs")
    axis.set(xlabel=xlabel, ylabel="label accuracy", title=f"{title}\nheld-out codes, LSTMs that implement their lock")
    axis.set_ylim(0, 1.05)
    axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # m and L are whole numbers
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
