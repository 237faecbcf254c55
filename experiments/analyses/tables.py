"""The paper's results tables and figures, from (re)runs of every encoder.

  python -m experiments.analyses.tables --preset=quick --dataset=all --seeds=1 --outdir=/tmp/tables

Runs all six encoders x datasets x seeds (each run is `experiments.main`:
training, then downstream evaluation) in `<outdir>/runs/<dataset>/emulation/<encoder>/seed<k>`,
or reuses finished ones: an interrupted table resumes where it stopped, and a
finished one is only re-aggregated. `--supervised_targets=task,performance`
adds the supervised baselines (one run per encoder x target x seed, in
`runs/<dataset>/supervised_<target>/...`); `--oracle` adds two oracle rows
(`model.TargetOracle`, one run per seed, in `runs/<dataset>/oracle/<target>/...`):
the emulator given each dataset's exact task, which bounds emulation and
cloning, and given a constant embedding, the level at which an encoder's
embedding tells the emulator nothing. `--references` (on by default) adds the reference rows
(experiments/analyses/references.py: the readout of every target from the LSTM's
behaviour, and the same probes on a fixed probing set's outputs; one per
seed, in `runs/<dataset>/reference/seed<k>`), which need no learned encoder.
Writes into `outdir`:

  tables.md       per dataset, subset (OOD, eval, and each on its trained
                  snapshots only) and probe: rows = encoders (mechanistic, then
                  functionalist), columns = targets, mean ± std over seeds,
                  best per column in bold; with the command, machine and wall time
  results.csv     every number of every run (long format: dataset, kind, encoder, seed, run (its
                  workdir), split, predictor, metric, value)
  results.json    the table cells (mean, std, n) behind tables.md, and the command, machine,
                  wall time and figures it shows (`python -m experiments.report --outdir=DIR`
                  renders tables.md from it again)
  *.png           the figures (experiments/analyses/figures.py)
"""

import csv
import itertools
import os
import time

import ml_collections
import numpy as np
from absl import flags, logging

from experiments import report
from experiments.analyses import figures, loss_correlation, references
from experiments.configs import common as config_common
from experiments.run import context, evaluate, layout, objectives, train, workdirs
from weightspace import cli, encoders, errors, files, ownership, provenance, schema, tasks, zoo

DATASETS = tuple(tasks.FAMILIES)
# Encoders in registry order (mechanistic first; `report` renders them in this order, with their groups).
ENCODERS = encoders.NAMES


def table_configs(
    preset: str, dataset: str, seeds: int, encoders: tuple[str, ...], supervised_targets: tuple[str, ...], oracle: bool
) -> list[ml_collections.ConfigDict]:
    """The config of every run behind one dataset's tables: each encoder by emulation, then supervised on each
    target, then (`oracle`) the oracle of the family's `oracle_target` and the constant embedding (the oracle
    that embeds nothing: the level an encoder's embedding must beat to matter), each for seeds 0 .. seeds - 1."""
    configs = []
    for target in ("", *supervised_targets):
        for encoder in encoders:
            for seed in range(seeds):
                config = config_common.experiment(encoder, preset, dataset, seed)
                config.supervised.target = target
                configs.append(config)
    for target in (tasks.FAMILIES[dataset].oracle_target, objectives.CONSTANT_ORACLE) if oracle else ():
        for seed in range(seeds):
            config = config_common.experiment(config_common.HOST, preset, dataset, seed)
            config.oracle.target = target
            configs.append(config)
    return configs


# --sweep: ensure_sweep's `sweep`.
SWEEP_CHOICES = {"auto": None, "true": True, "false": False}


def ensure_run(config, path: str) -> dict:
    """Trains (or resumes) and evaluates one run, or returns its finished evaluation (`ensure_sweep` of one)."""
    return ensure_sweep([config], [path])[0]


def has_evaluation(path: str) -> bool:
    """Whether the run in `path` was trained and evaluated (by an earlier invocation)."""
    return os.path.exists(layout.run_file(path, layout.EVALUATION_JSON))


def ensure_sweep(configs: list, paths: list[str], sweep: bool | None = None) -> list[dict]:
    """Trains (or resumes) the runs of `configs` that have no evaluation yet, and evaluates every run.

    They differ only in seed and learning rate. With `sweep` they train as one sweep (`train.train_sweep`),
    without it one after another; None (auto) chooses the sweep where it is faster (`train.sweep_pays`).

    A run already in its path is reused only when it has the config asked for (up to the settings a
    resume may change); otherwise `workdirs.TrainingError` names the keys that differ.
    """
    for config, path in zip(configs, paths, strict=True):
        workdirs.check_config(config, path)
        workdirs.record_evaluate_settings(config, path)
    todo = [i for i, path in enumerate(paths) if not has_evaluation(path)]
    if todo:
        start = time.time()
        together = train.sweep_pays(len(todo)) if sweep is None else sweep
        for members in [todo] if together else [[i] for i in todo]:
            train.train_sweep([configs[i] for i in members], [paths[i] for i in members])
        logging.info("Trained %s in %.0f s.", ", ".join(paths[i] for i in todo), time.time() - start)
    return [evaluate.evaluate(path) for path in paths]


def cell_values(records: list[dict], dataset: str, encoder: str, kind: str, split: str, predictor: str, metric: str):
    """The values over seeds of one table cell, from the records of its row (`kind`, `encoder`).

    A value whose predictor is "" (losses, cloning, the readout) belongs to every predictor's table. A row
    whose objective scores it with a predictor of its own (`Objective.table_predictor`: a supervised run's
    head, on the target it was trained on) takes that one in every table.
    """
    own = objectives.ROW_KINDS[kind].table_predictor
    predictors = (own,) if own else (predictor, "")
    return [
        float("nan") if r["value"] is None else r["value"]
        for r in records
        if (r["dataset"], r["kind"], r["encoder"], r["split"], r["metric"]) == (dataset, kind, encoder, split, metric)
        and r["predictor"] in predictors
    ]


def summary(values: list[float]) -> dict | None:
    """A table cell {mean, std, n} of the values over seeds (None when there is none); NaN where one is undefined."""
    if not values:
        return None
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def build_cells(records: list[dict]) -> dict[str, dict]:
    """The cells {"dataset/split/predictor/kind/encoder/metric": {mean, std, n}} of every table (one per dataset,
    split and predictor; `report.table_lines` renders them): a row per (kind, encoder) in the records, the
    columns of each family (`TaskFamily.table_columns`)."""
    rows = dict.fromkeys((r["dataset"], r["kind"], r["encoder"]) for r in records)
    cells = {}
    for split in report.SPLITS:
        for predictor in report.PREDICTORS:
            for dataset, kind, e in rows:
                for metric, _ in tasks.FAMILIES[dataset].table_columns:
                    cell = summary(cell_values(records, dataset, e, kind, split, predictor, metric))
                    if cell is not None:
                        cells["/".join((dataset, split, predictor, kind, e, metric))] = cell
    return cells


# The columns of results.csv: one row per number of every run behind a tables output directory.
RECORD_COLUMNS = ("dataset", "kind", "encoder", "seed", "run", "split", "predictor", "metric", "value")


def write_records(path: str, records: list[dict]) -> None:
    """Writes the records of a tables output directory as results.csv (`RECORD_COLUMNS`), atomically."""
    with files.atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, RECORD_COLUMNS)
        writer.writeheader()
        writer.writerows(records)


def _run_records(outdir: str, path: str, meta: dict, rows: list[dict]) -> list[dict]:
    """A run's evaluation rows as records of results.csv: `meta` and the run's workdir (relative to `outdir`)."""
    return [{**meta, "run": os.path.relpath(path, outdir), **row} for row in rows]


def check_targets(configs: list[ml_collections.ConfigDict], zoo_path: str) -> None:
    """Refuses (`ConfigError`) a supervised or oracle row whose target the zoo does not have, before any row
    trains: the names are the zoo's (`RunContext.of` builds each row's objective)."""
    the_zoo = zoo.load(zoo_path, on_disk=True)
    for config in configs:
        if objectives.kind_of(config) is not objectives.Emulation:
            context.RunContext.of(config, the_zoo)


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
    sweep: bool | None = None,
    probe_seeds: int = 1,
) -> dict:
    """Runs or reuses every run and reference row, then writes results.csv, the figures, and results.json with
    the tables.md rendered from it (`report.tables_markdown`). Each row's seeds train as one sweep
    (`train.train_sweep`, each member into its own run's workdir) or one after another, as `sweep` says
    (`ensure_sweep`; None: where the sweep is faster). Every run and reference row is scored by `probe_seeds`
    probes per target (`config.evaluate.probe_seeds`); a run evaluated otherwise before is evaluated again."""
    families = tuple(tasks.FAMILIES)  # read now: a family may be registered after this module is imported
    unknown = sorted(set(encoders) - set(ENCODERS)) + sorted(set(datasets) - set(families))
    if unknown:
        raise errors.ConfigError(f"Unknown encoder or dataset {unknown}; encoders: {ENCODERS}, datasets: {families}.")
    config_common.parse_arg(preset)  # a bad preset or variant fails here, before any run
    ownership.claim(outdir, "tables")
    start = time.time()
    records, runs, timings = [], {}, []
    for dataset in datasets:
        configs = table_configs(preset, dataset, seeds, encoders, supervised_targets, oracle)
        for config in configs:
            config.evaluate.probe_seeds = probe_seeds
        run_records, run_paths, run_timings = _trained_rows(outdir, dataset, configs, sweep)
        records, timings = records + run_records, timings + run_timings
        runs.update(run_paths)
        began = time.time()
        reference_results = []
        if with_references:
            reference_results = references.ensure(outdir, dataset, preset, range(seeds), probe_seeds)
        timings.append(dict(dataset=dataset, row=references.KIND, seeds=[], done=[], wall_s=time.time() - began))
        for seed, result in enumerate(reference_results):  # seeds 0, 1, ...
            path = layout.table_run(outdir, dataset, (references.KIND,), seed)
            meta = dict(dataset=dataset, kind=references.KIND, seed=seed)
            records += _run_records(outdir, path, meta, references.records(result))
    cells = build_cells(records)
    write_records(layout.tables_file(outdir, layout.RESULTS_CSV), records)
    figure_paths = []
    for dataset in datasets:
        family_runs = {  # the seed-0 runs of each encoder trained by emulation draw the figures
            encoder: path
            for (of, kind, encoder, seed), path in runs.items()
            if of == dataset and seed == 0 and objectives.ROW_KINDS[kind].encoder_by_emulation
        }
        figure_paths += figures.make_figures(dataset, family_runs, outdir)
    figure_paths += loss_correlation.make(outdir)["figures"]
    wall = time.time() - start
    result = dict(
        preset=preset,
        seeds=seeds,
        cells=cells,
        command=command,
        machine=provenance.machine(),
        wall_s=wall,
        timings=timings,
        figures=[os.path.basename(p) for p in figure_paths],
    )
    report.write(layout.tables_file(outdir, layout.RESULTS_JSON), result)
    return {"cells": cells, "wall_s": wall, "figures": figure_paths}


def _trained_rows(
    outdir: str, dataset: str, configs: list[ml_collections.ConfigDict], sweep: bool | None
) -> tuple[list[dict], dict[tuple, str], list[dict]]:
    """Runs or reuses the runs of `configs` (one dataset's rows, each row's seeds together): their records, their
    workdirs by (dataset, kind, row, seed), and the wall time of the zoo and of each row."""
    records, runs, timings, began = [], {}, [], time.time()
    zoo_path = workdirs.ensure_zoo(configs[0])  # built here, if missing, so that no row's time holds the build
    check_targets(configs, zoo_path)
    timings.append(dict(dataset=dataset, row="zoo", seeds=[], done=[], wall_s=time.time() - began))
    for _, seeds_of_row in itertools.groupby(configs, key=lambda c: objectives.kind_of(c).table_row(c)):
        group, began = list(seeds_of_row), time.time()
        paths = [workdirs.table_config_run(outdir, config) for config in group]
        done = [c.seed for c, p in zip(group, paths, strict=True) if not has_evaluation(p)]
        for config, path, result in zip(group, paths, ensure_sweep(group, paths, sweep), strict=True):
            kind = objectives.kind_of(config)
            meta = dict(dataset=dataset, kind=kind.name, encoder=kind.table_row(config)[1], seed=config.seed)
            runs[tuple(meta.values())] = path
            records += _run_records(outdir, path, meta, kind.records(result))
        row = f"{meta['kind']}/{meta['encoder']}"
        timings.append(
            dict(dataset=dataset, row=row, seeds=[c.seed for c in group], done=done, wall_s=time.time() - began)
        )
    return records, runs, timings


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line, before anything is written: the preset, the names, the outdir."""
    return [
        *config_common.arg_problems("preset", flag_values.preset),
        *cli.list_problems("encoders", flag_values.encoders, schema.Choice(*ENCODERS), nonempty=True),
        *cli.list_problems("supervised_targets", flag_values.supervised_targets, schema.Text()),
        *cli.directory_problems("outdir", flag_values.outdir, "tables"),
    ]


def main(argv):
    del argv
    cli.start_command(flags.FLAGS.cpu_devices)
    names = DATASETS if flags.FLAGS.dataset == "all" else (flags.FLAGS.dataset,)
    make_tables(
        flags.FLAGS.outdir,
        flags.FLAGS.preset,
        names,
        flags.FLAGS.seeds,
        tuple(flags.FLAGS.encoders),
        tuple(flags.FLAGS.supervised_targets),
        command=provenance.command(),
        oracle=flags.FLAGS.oracle,
        with_references=flags.FLAGS.references,
        sweep=SWEEP_CHOICES[flags.FLAGS.sweep],
        probe_seeds=flags.FLAGS.probe_seeds,
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
    flags.DEFINE_bool(
        "oracle", False, "Also run the oracles: the emulator given each dataset's exact task, and a constant embedding."
    )
    flags.DEFINE_enum(
        "sweep",
        "auto",
        list(SWEEP_CHOICES),
        "true: train each row's seeds together, vmapped; false: one run at a time; auto: the sweep where it is "
        "faster (on accelerators; on CPUs where each seed gets a device of its own, train.sweep_pays).",
    )
    flags.DEFINE_bool("references", True, "Also add the reference rows (readout, fixed probe; no learned encoder).")
    flags.DEFINE_integer(
        "probe_seeds", 1, "Probes per target, each score their mean (config.evaluate.probe_seeds).", lower_bound=1
    )
    flags.DEFINE_string("outdir", None, "Where runs, tables and figures go.", required=True)
    cli.define_cpu_devices_flag()
    cli.run_command(main, check_flags)
