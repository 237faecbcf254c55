"""Training on a zoo kept on disk against the same training with the zoo in memory: step rate and peak memory.

  python -m experiments.benchmarks.disk --config=configs/flat.py:quick --zoo=/tmp/zoo_fl_quick/zoo

Trains the same run in separate processes (`experiments.main` without the downstream evaluation), in
the order memory, disk, disk, memory, ... (`--repeats` of each) so that a machine's drift affects both
alike: with the zoo placed in memory, and with `--config.train.zoo_on_disk=true`. For each it reports
the steady train steps/s (the median over the logging intervals, leaving out the first, which compiles,
and the last, which evaluates) and the process's peak resident memory (`ru_maxrss`: every page it
touched, pages of memory-mapped files included), next to the zoo's size on disk. With `--memory_cap_mb`
it also says whether each run stayed under that cap; `--wrapper` runs each training process under a
command that enforces one (a cgroup memory limit), and a run it kills is reported as killed. It prints the
table, and with `--outdir` first writes it as a results file (`disk_benchmark.json`, rendered by
`experiments.report`).
"""

import itertools
import os
import shlex
import sys
import tempfile

from absl import flags

from experiments import report
from experiments.run import layout
from weightspace import benchmarking, cli, errors, metrics, provenance, schema
from weightspace import zoo as zoo_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODES = {"in memory": False, "on disk": True}


def _zoo_megabytes(path: str) -> float:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names) / 2**20


def _train(zoo: str, on_disk: bool) -> dict:
    """One training process: {"rates": steps/s per logging interval, "peak_rss_mb", "exit"}."""
    steps = flags.FLAGS.steps
    with tempfile.TemporaryDirectory() as scratch:
        workdir = os.path.join(scratch, "run")  # the run's own directory: the log stays beside it
        command = [
            sys.executable, "-m", "experiments.main", f"--config={flags.FLAGS.config}", f"--workdir={workdir}",
            f"--config.zoo.path={zoo}", f"--config.train.num_steps={steps}",
            f"--config.train.log_every_steps={flags.FLAGS.log_every}", f"--config.train.checkpoint_every_steps={steps}",
            f"--config.eval.every_steps={steps}", "--config.evaluate.after_training=false",
            f"--config.train.zoo_on_disk={on_disk}", *flags.FLAGS.overrides,
        ]  # fmt: skip
        command = [*shlex.split(flags.FLAGS.wrapper), *command]
        log = os.path.join(scratch, "stderr.log")
        measured = benchmarking.measured_process(command, log, cwd=REPO)
        with open(log) as f:
            tail = f.read()[-2000:]
        rows = metrics.read(layout.run_file(workdir, layout.METRICS))
    code = measured["exit"]
    result = {"peak_rss_mb": measured["peak_rss_mb"], "exit": code}
    if code:
        print(f"The {'on-disk' if on_disk else 'in-memory'} run failed ({_exit(code)}):\n{tail}", file=sys.stderr)
        return result | {"rates": []}
    kept = rows[:-1]  # the last interval includes the evaluation and the checkpoint
    result["rates"] = [
        (b["step"] - a["step"]) / (b["time"] - a["time"]) for a, b in itertools.pairwise(kept)
    ]  # the first row's interval, which compiles, has no predecessor
    return result


def _exit(code: int) -> str:
    return "ok" if code == 0 else f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def check_flags(flag_values) -> list[str]:
    """Every problem of the command line before a worker starts: the zoo, the config file, the counts."""
    problems = cli.path_problems("zoo", flag_values.zoo, "zoo")
    if not schema.Float(0.0).fits(flag_values.memory_cap_mb):
        problems.append(f"--memory_cap_mb={flag_values.memory_cap_mb} must be a finite number >= 0")
    path = flag_values.config.partition(":")[0]
    if not any(os.path.isfile(p) for p in (path, os.path.join(REPO, "experiments", path))):
        problems.append(f"--config={flag_values.config}: there is no such experiment config file")
    return problems


def _failures(runs: dict[str, list[dict]]) -> list[str]:
    """The runs that failed, but for those the memory-capping `--wrapper` killed (what the benchmark measures)."""
    killed = (-9, 128 + 9)
    return [
        f"{mode}: {_exit(result['exit'])}"
        for mode, results in runs.items()
        for result in results
        if result["exit"] and not (flags.FLAGS.wrapper and result["exit"] in killed)
    ]


def main(argv):
    del argv
    zoo = os.path.abspath(flags.FLAGS.zoo)
    modes = list(MODES)
    order = [mode for i in range(flags.FLAGS.repeats) for mode in (modes if i % 2 == 0 else modes[::-1])]
    runs = {mode: [] for mode in MODES}
    for mode in order:
        runs[mode].append(_train(zoo, MODES[mode]))
    document = zoo_lib.read_metadata(zoo)
    summary = {
        "command": provenance.command(),
        "machine": provenance.machine(),
        "config": flags.FLAGS.config,
        "overrides": flags.FLAGS.overrides,
        "zoo": f"{document['family']}, {document['num_snapshots']:,} snapshots",
        "zoo_mb": round(_zoo_megabytes(zoo), 1),
        "steps": flags.FLAGS.steps,
        "memory_cap_mb": flags.FLAGS.memory_cap_mb,
        "wrapper": flags.FLAGS.wrapper,
    }
    for mode, results in runs.items():
        rates = [rate for result in results for rate in result["rates"]]
        summary[mode] = {
            **(benchmarking.rate_summary(rates) if rates else {"steps_per_s": None}),
            "peak_rss_mb": max(result["peak_rss_mb"] for result in results),
            "exits": [_exit(result["exit"]) for result in results],
        }
    failed = _failures(runs)
    if failed:
        raise errors.UserError(f"Training runs failed ({'; '.join(failed)}; their logs are above): nothing written.")
    memory, disk = summary["in memory"]["steps_per_s"], summary["on disk"]["steps_per_s"]
    summary["disk_over_memory"] = round(disk / memory, 3) if memory and disk else None
    report.publish(summary, "disk_benchmark.json", flags.FLAGS.outdir)


if __name__ == "__main__":
    flags.DEFINE_string("config", "configs/flat.py:quick", "Experiment config file[:preset], as for experiments.main.")
    flags.DEFINE_string("zoo", None, "The zoo to train on (stored as .npy files).", required=True)
    flags.DEFINE_integer("steps", 300, "Train steps of each run.", lower_bound=1)
    flags.DEFINE_integer("log_every", 25, "Steps per logging interval (one rate each).", lower_bound=1)
    flags.DEFINE_integer("repeats", 1, "Runs of each mode.", lower_bound=1)
    flags.DEFINE_float(
        "memory_cap_mb", 0, "A host memory cap to compare each run's peak RSS with (0: none).", lower_bound=0
    )
    flags.DEFINE_string(
        "wrapper", "", "A command each training process runs under, e.g. one that enforces the memory cap: "
        "'systemd-run --user --scope -p MemoryMax=1G'.",
    )  # fmt: skip
    flags.DEFINE_multi_string("overrides", [], "More experiments.main flags for both runs (repeatable).")
    flags.DEFINE_string("outdir", None, "Also write the results file (disk_benchmark.json) and its markdown here.")
    cli.run_command(main, check_flags)
