"""Which renderer makes the markdown of each results file (by its name), and writing a results file with it;
the wall times of a directory of results files."""

import glob
import os
from collections.abc import Callable

from absl import logging

from experiments.report.analyses import (
    loss_correlation_markdown,
    permutation_analysis_markdown,
    probing_gap_markdown,
    rotation_readout_markdown,
)
from experiments.report.benchmarks import (
    disk_benchmark_markdown,
    encoder_benchmark_markdown,
    plan_check_markdown,
    sweep_benchmark_markdown,
    table_plan_markdown,
    zoo_benchmark_markdown,
)
from experiments.report.format import ReportError
from experiments.report.runs import (
    tables_markdown,
)
from weightspace import files

RENDERERS: dict[str, tuple[Callable[[dict], str], str]] = {
    "results.json": (tables_markdown, "tables.md"),
    "probing_gap.json": (probing_gap_markdown, "probing_gap.md"),
    "permutation_analysis.json": (permutation_analysis_markdown, "permutation_analysis.md"),
    "loss_correlation.json": (loss_correlation_markdown, "loss_correlation.md"),
    "rotation_readout.json": (rotation_readout_markdown, "rotation_readout.md"),
    "table_plan.json": (table_plan_markdown, "table_plan.md"),
    "plan_check.json": (plan_check_markdown, "plan_check.md"),
    "sweep_benchmark.json": (sweep_benchmark_markdown, "sweep_benchmark.md"),
    "encoder_benchmark.json": (encoder_benchmark_markdown, "encoder_benchmark.md"),
    "zoo_benchmark.json": (zoo_benchmark_markdown, "zoo_benchmark.md"),
    "disk_benchmark.json": (disk_benchmark_markdown, "disk_benchmark.md"),
}


def wall_times_markdown(directory: str) -> str:
    """The wall time of every results file one level under `directory` (those with a renderer) that records
    it: how long the command that wrote it ran, on which machine, and how many of its runs that command
    trained (the others it reused from an earlier command, whose time is not counted) where the file says."""
    lines = [
        "# Wall times",
        "",
        "| results file | wall time | runs trained / all its runs | machine |",
        "|---|---|---|---|",
    ]
    for path in sorted(glob.glob(os.path.join(directory, "*", "*.json"))):
        if os.path.basename(path) not in RENDERERS:
            continue
        result = files.read_json(path)
        if "wall_s" not in result:
            continue
        name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
        lines.append(
            f"| `{name}` | {result['wall_s']:,.0f} s | {_runs_trained(result)} | {result.get('machine', '-')} |"
        )
    return "\n".join(lines) + "\n"


def _runs_trained(result: dict) -> str:
    """'trained / all' runs of a results file: a tables output's seeded rows (`timings`), a probing-gap
    file's learned runs (`learned_runs`); '-' where the file does not record them."""
    seeded = [t for t in result.get("timings", []) if t.get("seeds")]
    if seeded:
        return f"{sum(len(t['done']) for t in seeded)} / {sum(len(t['seeds']) for t in seeded)}"
    if "learned_runs" in result:
        return f"{sum(run['trained'] for run in result['learned_runs'])} / {len(result['learned_runs'])}"
    return "-"


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


def rerender_directory(outdir: str) -> list[str]:
    """Rewrites the markdown of every results file in `outdir`; returns the markdown files' paths."""
    paths = [os.path.join(outdir, name) for name in RENDERERS if os.path.isfile(os.path.join(outdir, name))]
    if not paths:
        raise ReportError(f"No results file ({', '.join(RENDERERS)}) in {outdir}.")
    return [rerender(path) for path in paths]
