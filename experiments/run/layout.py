"""Every path of a run directory, a sweep, a tables output and a probing-gap output: the one module that joins
their names. Everything else asks it for paths.

A run (`experiments.main --workdir=W`):
  W/config.json            the run's config
  W/zoo.json               the zoo it trains on: path, family, spec, snapshots, metadata checksum
  W/devices.json           the devices it trains on (a resume must run on the same)
  W/split.json             the task split (tasks and sizes of train / eval / OOD)
  W/metrics.jsonl          one JSON object per log or eval step (a resume drops the rows it replays)
  W/tensorboard/           the same scalars as TensorBoard event files
  W/checkpoints/latest/    the latest training state (Orbax), for resuming; best/: the lowest eval loss so far
  W/evaluation.json, .md   the downstream evaluation (`experiments.run.evaluate`), and W/embeddings.npy
A sweep (`--seeds`): W/seed<k>, or with swept learning rates W/seed<k>_lr<rate>, each a run.
A tables output (`experiments.analyses.tables`, D):
  D/results.json, D/results.csv, D/runs/<dataset>/<kind>/<row>/seed<k> (a run each; <kind>/<row> from the
  objective's `table_row`, or reference/ for the reference rows)
A probing-gap output (`experiments.analyses.probing_gap`, D):
  D/probing_gap.json, D/probing_gap_m.png and _budget.png (accuracy against m and L), D/zoos/m<m>/ (a zoo build
  each), D/runs/<options>/m<m>/<L<budget> or any_L>/<encoder>/seed<k>
"""

import os

CONFIG, ZOO_RECORD, DEVICES, SPLIT, METRICS = "config.json", "zoo.json", "devices.json", "split.json", "metrics.jsonl"
EVALUATION_JSON, EVALUATION_MD, EMBEDDINGS = "evaluation.json", "evaluation.md", "embeddings.npy"
RESULTS_JSON, RESULTS_CSV = "results.json", "results.csv"
GAP_JSON = "probing_gap.json"
CHECKPOINTS = ("latest", "best")


def run_file(workdir: str, name: str) -> str:
    """A file of a run directory: one of the names above (`CONFIG`, `METRICS`, `EVALUATION_JSON`, ...)."""
    return os.path.join(workdir, name)


def checkpoints(workdir: str, which: str) -> str:
    """A run's "latest" or "best" checkpoints."""
    if which not in CHECKPOINTS:
        raise ValueError(f"A run keeps {CHECKPOINTS} checkpoints, not {which!r}.")
    return os.path.join(workdir, "checkpoints", which)


def member(workdir: str, seed: int, learning_rate: float | None = None) -> str:
    """The run of one member of a sweep in `workdir`: seed<k>, or with a swept learning rate seed<k>_lr<rate>."""
    return os.path.join(workdir, f"seed{seed}" + ("" if learning_rate is None else f"_lr{learning_rate:g}"))


def tables_file(outdir: str, name: str) -> str:
    """`RESULTS_JSON` or `RESULTS_CSV` of a tables output."""
    return os.path.join(outdir, name)


def tables_datasets(outdir: str) -> str:
    """The folder of a tables output that holds one folder of runs per dataset."""
    return os.path.join(outdir, "runs")


def table_run(outdir: str, dataset: str, row: tuple[str, ...], seed: int) -> str:
    """The run behind one row and seed of a tables output (`row`: the objective's `table_row`, or ("reference",))."""
    return os.path.join(tables_datasets(outdir), dataset, *row, f"seed{seed}")


def gap_file(outdir: str, name: str) -> str:
    """A file of a probing-gap output: `GAP_JSON`."""
    return os.path.join(outdir, name)


def gap_figure(outdir: str, axis: str) -> str:
    """The figure of a probing-gap output against `axis` ("m" or "budget")."""
    return os.path.join(outdir, f"probing_gap_{axis}.png")


def gap_zoo(outdir: str, code_length: int) -> str:
    """The zoo build of code length m in a probing-gap output."""
    return os.path.join(outdir, "zoos", f"m{code_length}")


def gap_run(
    outdir: str, options: str, code_length: int, budget: int | None, encoder: str, seed: int, fold: int = 0
) -> str:
    """A run of a probing-gap output: by options, m, the budget L (None: an encoder that reads weights), encoder,
    and its seed and OOD fold (fold 0's runs were there before folds)."""
    at = "any_L" if budget is None else f"L{budget}"
    name = f"seed{seed}" if fold == 0 else f"fold{fold}_seed{seed}"
    return os.path.join(outdir, "runs", options, f"m{code_length}", at, encoder, name)
