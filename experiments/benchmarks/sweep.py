"""A table's seeds as one sweep against one run after another: wall time, peak memory, and the same cells.

  python -m experiments.benchmarks.sweep --preset=quick,condition_every,probe_prior --seeds=3 --outdir=DIR

Makes the same tables twice on the same zoo, into two directories: one run at a time (`--sweep=false`, into
DIR/runs) and each row's seeds as one sweep (`--sweep=true`, into DIR/sweep). Each `experiments.analyses.tables`
process trains one encoder's row, the two modes taking turns (each goes first every other time, so that a
machine's drift affects both alike); a last process of each mode adds the oracle and the reference rows and
writes the whole tables, reusing every run. The zoo is built first, so that no time holds it. It compares
each process's wall time (starting, loading the zoo, training and evaluating its seeds) and peak resident memory
(its own `ru_maxrss`), their sums over each mode, and every table cell: a
sweep's member is its single run up to floating-point rounding, so the cells should agree up to how rounding
moves a probe.
Writes DIR/sweep_benchmark.json and the sweep_benchmark.md rendered from it (`report`). A fresh DIR is
required: an invocation that resumed earlier work would time only part of it.
"""

import os
import sys
import time

from absl import flags, logging

from experiments import report
from experiments.configs import common
from experiments.run import layout, workdirs
from weightspace import benchmarking, cli, encoders, errors, files, provenance, schema, tasks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODES = {"runs": False, "sweep": True}  # output subdirectory: --sweep


def _tables_command(outdir: str, sweep: bool, names: list[str], final: bool) -> list[str]:
    """`experiments.analyses.tables` into `outdir` for the encoders `names`; only the `final` one adds the oracle and
    the reference rows and writes the whole tables (every run before it reused)."""
    return [
        sys.executable, "-m", "experiments.analyses.tables", f"--preset={flags.FLAGS.preset}",
        f"--dataset={flags.FLAGS.dataset}", f"--seeds={flags.FLAGS.seeds}", f"--encoders={','.join(names)}",
        f"--oracle={final and flags.FLAGS.oracle}", f"--references={final}", f"--sweep={str(sweep).lower()}",
        f"--outdir={outdir}",
    ]  # fmt: skip


def cell_differences(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """How the cells of two results files differ: {"cells", "largest" |mean difference|, "where" (its key),
    "within": how many differ by at most the larger of the two cells' std over seeds}."""
    largest, where, within, keys = 0.0, None, 0, sorted(set(a) & set(b))
    if set(a) != set(b):
        raise errors.UserError(f"The two invocations made different cells: {sorted(set(a) ^ set(b))[:5]} ...")
    for key in keys:
        x, y = a[key], b[key]
        if x is None or y is None or x["mean"] is None or y["mean"] is None:
            within += (x is None) == (y is None)
            continue
        difference = abs(x["mean"] - y["mean"])
        if not difference <= largest:
            largest, where = difference, key
        within += difference <= max(x.get("std") or 0.0, y.get("std") or 0.0, 1e-9)
    return {"cells": len(keys), "largest": largest, "where": where, "within": within}


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line: the preset, the names, a new outdir."""
    problems = common.arg_problems("preset", flag_values.preset)
    problems += cli.list_problems("encoders", flag_values.encoders, schema.Choice(*encoders.NAMES), nonempty=True)
    if flag_values.dataset not in tasks.FAMILIES:
        problems.append(f"--dataset={flag_values.dataset} must be one of {sorted(tasks.FAMILIES)}")
    if os.path.exists(flag_values.outdir) and (not os.path.isdir(flag_values.outdir) or os.listdir(flag_values.outdir)):
        problems.append(f"--outdir={flag_values.outdir} is not a new directory (a resumed invocation times only part)")
    return problems


def main(argv):
    del argv
    outdir = flags.FLAGS.outdir
    os.makedirs(outdir)
    start = time.time()
    dataset, names = flags.FLAGS.dataset, flags.FLAGS.encoders
    zoo_path = workdirs.ensure_zoo(common.experiment(common.HOST, flags.FLAGS.preset, dataset, 0))
    logging.info("Zoo ready in %.0f s: %s", time.time() - start, zoo_path)
    processes = {mode: [] for mode in MODES}
    # One encoder's row per process, the two modes in turns (each first every other time), then the whole tables.
    steps = [([name], False) for name in names] + [(names, True)]
    for i, (step_names, final) in enumerate(steps):
        for mode in list(MODES)[:: 1 if i % 2 == 0 else -1]:
            directory, log = os.path.join(outdir, mode), os.path.join(outdir, f"{mode}.{i}.log")
            command = _tables_command(directory, MODES[mode], step_names, final)
            measured = benchmarking.measured_process(command, log, cwd=REPO)
            if measured["exit"]:
                raise errors.UserError(
                    f"experiments.analyses.tables into {directory} failed ({measured['exit']}): see {log}."
                )
            processes[mode].append({"encoders": step_names, "final": final, **measured})
            logging.info(
                "%s %s: %.0f s, peak RSS %.0f MB", mode, step_names, measured["wall_s"], measured["peak_rss_mb"]
            )
    results = {
        mode: files.read_json(layout.tables_file(os.path.join(outdir, mode), layout.RESULTS_JSON)) for mode in MODES
    }
    result = dict(
        preset=flags.FLAGS.preset,
        dataset=dataset,
        seeds=flags.FLAGS.seeds,
        processes=processes,
        cells=cell_differences(results["runs"]["cells"], results["sweep"]["cells"]),
        command=provenance.command(),
        machine=results["sweep"]["machine"],
        wall_s=time.time() - start,
    )
    with open(report.write(os.path.join(outdir, "sweep_benchmark.json"), result)) as markdown:
        print(markdown.read())


if __name__ == "__main__":
    flags.DEFINE_string("preset", "quick,condition_every,probe_prior", "The tables' preset (and variants).")
    flags.DEFINE_string("dataset", "formal_languages", "The tables' dataset.")
    flags.DEFINE_integer("seeds", 3, "Seeds per row.", lower_bound=1)
    flags.DEFINE_list("encoders", list(encoders.NAMES), "Encoders, one row each.")
    flags.DEFINE_bool("oracle", True, "Add the oracle row (its seeds are a sweep too).")
    flags.DEFINE_string("outdir", None, "A new directory for both invocations and the results file.", required=True)
    cli.run_command(main, check_flags)
