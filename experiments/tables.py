"""The paper's results tables and figures, from (re)runs of every encoder.

  python -m experiments.tables --preset=quick --dataset=all --seeds=1 --outdir=/tmp/tables

Runs all six encoders x datasets x seeds (each run is `experiments.main`:
training, then downstream evaluation) in `<outdir>/runs/<dataset>/<encoder>/seed<k>`,
or reuses finished ones: an interrupted table resumes where it stopped, and a
finished one is only re-aggregated. `--supervised_targets=task,performance`
adds the supervised baselines (one run per encoder x target x seed, in
`runs/<dataset>/supervised_<target>/...`); `--oracle` adds the task oracle
(`model.TargetOracle` on each dataset's exact task, one run per seed, in
`runs/<dataset>/oracle/<target>/...`), a row that bounds emulation and
cloning. `--references` (on by default) adds the reference rows
(experiments/references.py: the readout of every target from the LSTM's
behaviour, and the same probes on a fixed probing set's outputs; one per
seed, in `runs/<dataset>/reference/seed<k>`), which need no learned encoder.
Writes into `outdir`:

  tables.md       per dataset, subset (OOD, eval, and each on its trained
                  snapshots only) and probe: rows = encoders (mechanistic, then
                  functionalist), columns = targets, mean ± std over seeds,
                  best per column in bold; with the command, machine and wall time
  results.csv     every number of every run (long format)
  results.json    the table cells (mean, std, n) behind tables.md, and the command, machine,
                  wall time and figures it shows (`python -m experiments.report --outdir=DIR`
                  renders tables.md from it again)
  *.png           the figures (experiments/figures.py)
"""

import csv
import importlib
import os
import platform
import shlex
import sys
import time

import jax
import numpy as np
from absl import app, flags, logging

from experiments import evaluate, figures, loss_correlation, objectives, references, report, train, workdirs
from experiments.configs import common as config_common
from weightspace import cli, encoders, tasks

DATASETS = tuple(tasks.FAMILIES)
# Encoders in registry order (mechanistic first; `report` renders them in this order, with their groups).
ENCODERS = encoders.NAMES
# Each family declares its columns (`TaskFamily.table_columns`) and its oracle target.
# Row kinds whose records come from one run each (the others: supervised rows, one run per target).
UNSUPERVISED = ("emulation", "reference", "oracle")
# The config whose emulator and training the oracle row uses (the same in every encoder's config; the encoder
# itself is replaced by the oracle of the family's `oracle_target`).
ORACLE_HOST = "layerwise_statistics"


def workdir(outdir: str, dataset: str, encoder: str, seed: int, supervised_target: str = "") -> str:
    kind = f"supervised_{supervised_target}" if supervised_target else "emulation"
    return os.path.join(outdir, "runs", dataset, kind, encoder, f"seed{seed}")


def run_config(encoder: str, preset: str, dataset: str, seed: int, supervised_target: str = ""):
    config = importlib.import_module(f"experiments.configs.{encoder}").get_config(preset)
    config.zoo.dataset = dataset
    config.seed = seed
    config.supervised.target = supervised_target
    return config


def oracle_run(outdir: str, preset: str, dataset: str, seed: int) -> tuple:
    """The task oracle's (config, workdir) for one dataset and seed."""
    config = run_config(ORACLE_HOST, preset, dataset, seed)
    config.oracle.target = tasks.FAMILIES[dataset].oracle_target
    return config, os.path.join(outdir, "runs", dataset, "oracle", config.oracle.target, f"seed{seed}")


def ensure_run(config, path: str) -> dict:
    """Trains (or resumes) and evaluates one run, or returns its finished evaluation.

    A run already in `path` is reused only when it has the config asked for (up to the settings a
    resume may change); otherwise `workdirs.TrainingError` names the keys that differ.
    """
    workdirs.check_config(config, path)
    if not os.path.exists(os.path.join(path, evaluate.EVALUATION_JSON)):
        start = time.time()
        train.train(config, path)
        logging.info("Trained %s in %.0f s.", path, time.time() - start)
    return evaluate.evaluate(path)


def cell_values(records: list[dict], dataset: str, encoder: str, kind: str, split: str, predictor: str, metric: str):
    """The values over seeds of one table cell. Supervised rows take each target from the run trained on it.

    A value whose predictor is "" (losses, cloning, the readout) belongs to every predictor's table.
    """
    values = []
    for r in records:
        if (r["dataset"], r["encoder"], r["split"], r["metric"]) != (dataset, encoder, split, metric):
            continue
        if (kind in UNSUPERVISED and r["kind"] == kind and r["predictor"] in (predictor, "")) or (
            kind == "supervised" and r["kind"].startswith("supervised_") and r["predictor"] == objectives.HEAD
        ):
            values.append(float("nan") if r["value"] is None else r["value"])
    return values


def summary(values: list[float]) -> dict | None:
    """A table cell {mean, std, n} of the values over seeds (None when there is none); NaN where one is undefined."""
    if not values:
        return None
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def build_cells(
    records: list[dict], datasets, encoders, supervised: bool, oracle: bool = False, with_references: bool = False
) -> dict[str, dict]:
    """The cells {"dataset/split/predictor/kind/encoder/metric": {mean, std, n}} of every table (one per dataset,
    split and predictor; `report.table_lines` renders them): the rows asked for, the columns of each family."""
    kinds = ("emulation", "supervised") if supervised else ("emulation",)
    cells = {}
    for dataset in datasets:
        rows = [(kind, e) for kind in kinds for e in encoders]
        rows += [("reference", row) for row in references.ROWS] if with_references else []
        rows += [("oracle", tasks.FAMILIES[dataset].oracle_target)] if oracle else []
        for split in report.SPLITS:
            for predictor in report.PREDICTORS:
                for kind, e in rows:
                    for metric, _ in tasks.FAMILIES[dataset].table_columns:
                        cell = summary(cell_values(records, dataset, e, kind, split, predictor, metric))
                        if cell is not None:
                            cells["/".join((dataset, split, predictor, kind, e, metric))] = cell
    return cells


def build_tables(
    records: list[dict], datasets, encoders, supervised: bool, oracle: bool = False, with_references: bool = False
) -> tuple[str, dict]:
    """The markdown tables of `records` (`report.table_lines`) and their cells (`build_cells`)."""
    cells = build_cells(records, datasets, encoders, supervised, oracle, with_references)
    return "\n".join(report.table_lines(cells)), cells


def machine() -> str:
    """This machine and JAX's devices, as a results file records where it was computed."""
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
        f"JAX {jax.__version__} on {len(jax.devices())} {jax.default_backend()} device(s)"
    )


def make_tables(
    outdir: str,
    preset: str,
    datasets: tuple[str, ...],
    seeds: int,
    encoders: tuple[str, ...] = ENCODERS,
    supervised_targets: tuple[str, ...] = (),
    command: str = "",
    oracle: bool = False,
    with_references: bool = True,
) -> dict:
    """Runs or reuses every run and reference row, then writes results.csv, the figures, and results.json with
    the tables.md rendered from it (`report.tables_markdown`)."""
    families = tuple(tasks.FAMILIES)  # read now: a family may be registered after this module is imported
    unknown = sorted(set(encoders) - set(ENCODERS)) + sorted(set(datasets) - set(families))
    if unknown:
        raise ValueError(f"Unknown encoder or dataset {unknown}; encoders: {ENCODERS}, datasets: {families}.")
    config_common.parse_arg(preset)  # a bad preset or variant fails here, before any run
    os.makedirs(outdir, exist_ok=True)
    start = time.time()
    records, runs = [], {}
    for dataset in datasets:
        for kind in ("", *supervised_targets):
            for encoder in encoders:
                for seed in range(seeds):
                    path = workdir(outdir, dataset, encoder, seed, kind)
                    result = ensure_run(run_config(encoder, preset, dataset, seed, kind), path)
                    runs[(dataset, kind, encoder, seed)] = path
                    kind_name = f"supervised_{kind}" if kind else "emulation"
                    meta = dict(dataset=dataset, kind=kind_name, encoder=encoder, seed=seed)
                    records += [{**meta, **row} for row in evaluate.records(result)]
        for seed in range(seeds if oracle else 0):
            config, path = oracle_run(outdir, preset, dataset, seed)
            meta = dict(dataset=dataset, kind="oracle", encoder=config.oracle.target, seed=seed)
            records += [{**meta, **row} for row in evaluate.records(ensure_run(config, path))]
        reference_results = references.ensure(outdir, dataset, preset, range(seeds)) if with_references else []
        for seed, result in enumerate(reference_results):  # seeds 0, 1, ...
            meta = dict(dataset=dataset, kind="reference", seed=seed)
            records += [{**meta, **row} for row in references.records(result)]
    cells = build_cells(records, datasets, encoders, bool(supervised_targets), oracle, with_references)
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, ["dataset", "kind", "encoder", "seed", "split", "predictor", "metric", "value"])
        writer.writeheader()
        writer.writerows(records)
    figure_paths = []
    for dataset in datasets:
        family_runs = {e: runs[(dataset, "", e, 0)] for e in encoders}
        figure_paths += figures.make_figures(dataset, family_runs, outdir)
    figure_paths += loss_correlation.make(outdir)["figures"]
    wall = time.time() - start
    result = dict(
        preset=preset,
        seeds=seeds,
        cells=cells,
        command=command,
        machine=machine(),
        wall_s=wall,
        figures=[os.path.basename(p) for p in figure_paths],
    )
    report.write(os.path.join(outdir, "results.json"), result)
    return {"cells": cells, "wall_s": wall, "figures": figure_paths}


def main(argv):
    del argv
    cli.use_cpu_cores_as_devices(flags.FLAGS.cpu_devices)
    cli.quiet_library_logs()
    names = DATASETS if flags.FLAGS.dataset == "all" else (flags.FLAGS.dataset,)
    make_tables(
        flags.FLAGS.outdir,
        flags.FLAGS.preset,
        names,
        flags.FLAGS.seeds,
        tuple(flags.FLAGS.encoders),
        tuple(flags.FLAGS.supervised_targets),
        command=" ".join(["python -m experiments.tables", *map(shlex.quote, sys.argv[1:])]),
        oracle=flags.FLAGS.oracle,
        with_references=flags.FLAGS.references,
    )


if __name__ == "__main__":
    flags.DEFINE_string(
        "preset",
        "quick",
        "Config argument of every run: a preset (paper, medium, quick, smoke), then optionally comma-separated "
        "variants (experiments/configs/common.py VARIANTS), e.g. quick,condition_every,probe_prior.",
    )
    flags.DEFINE_enum("dataset", DATASETS[0], [*DATASETS, "all"], "Zoo(s) to evaluate on.")
    flags.DEFINE_integer("seeds", 3, "Seeds per encoder (config.seed = 0 .. seeds - 1).", lower_bound=1)
    flags.DEFINE_list("encoders", list(ENCODERS), "Encoders to run (default: all six).")
    flags.DEFINE_list("supervised_targets", [], "Also run supervised baselines on these targets (e.g. task).")
    flags.DEFINE_bool("oracle", False, "Also run the task oracle (emulator given each dataset's exact task).")
    flags.DEFINE_bool("references", True, "Also add the reference rows (readout, fixed probe; no learned encoder).")
    flags.DEFINE_string("outdir", None, "Where runs, tables and figures go.", required=True)
    flags.DEFINE_integer("cpu_devices", 0, "CPU devices to expose (0: one per core).")
    app.run(cli.one_line_errors(main), argv=sys.argv, flags_parser=cli.parse_flags_or_exit)
