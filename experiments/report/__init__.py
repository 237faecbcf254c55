"""Every results table, rendered from the results file its command wrote; and the docs' copies of them, checked.

  python -m experiments.report --outdir=DIR        # re-render every results file in DIR into its markdown
  python -m experiments.report --docs              # rewrite every rendered block of the docs
  python -m experiments.report --docs --check      # exit status 1 and a line per stale block; writes nothing

Results come from runs, not from hand. Each command (`experiments.analyses.tables`, `probing_gap`,
`permutation_analysis`, `loss_correlation`) writes a JSON results file that holds everything its
markdown shows (the command, the machine, the wall time, the numbers), and the markdown is rendered
from that file and the code's registries of names (a family's column labels, an encoder's group, a row
kind's label): no runs, no machine queries. A results file committed under
`experiments/results/` therefore renders the same anywhere, and a doc (README.md, experiments/*.md,
zoo_builder/*.md) shows a rendered table between two markers:

  <!-- rendered from experiments/results/probing_gap_quick/probing_gap.json -->
  ...
  <!-- end rendered -->

The block is the rendered markdown without its title line; with `, section "HEADING"` after the path
(`<!-- rendered from PATH, section "HEADING" -->`) it is only the body under the heading whose text is
HEADING (any level), up to the next heading of the same or a higher level. A directory in place of the
file (`<!-- rendered from experiments/results -->`) shows the wall times its results files record
(`wall_times_markdown`). Paths are relative to the repository root. `tests/test_report.py` fails while any
block differs from its render.
"""

from experiments.report.docs import END, REPO, check_docs, rewrite_docs, section
from experiments.report.format import ReportError, format_cell, format_value
from experiments.report.renderers import (
    RENDERERS,
    disk_benchmark_markdown,
    encoder_benchmark_markdown,
    loss_correlation_markdown,
    permutation_analysis_markdown,
    plan_check_markdown,
    probing_gap_markdown,
    publish,
    render,
    rerender,
    rerender_directory,
    sweep_benchmark_markdown,
    table_plan_markdown,
    wall_times_markdown,
    write,
    zoo_benchmark_markdown,
)
from experiments.report.runs import (
    PREDICTORS,
    SPLITS,
    evaluation_markdown,
    references_markdown,
    table_lines,
    tables_markdown,
)

# The package's interface: what commands and tests call as `report.<name>`.
__all__ = [
    "END",
    "PREDICTORS",
    "RENDERERS",
    "REPO",
    "SPLITS",
    "ReportError",
    "check_docs",
    "disk_benchmark_markdown",
    "encoder_benchmark_markdown",
    "evaluation_markdown",
    "format_cell",
    "format_value",
    "loss_correlation_markdown",
    "permutation_analysis_markdown",
    "plan_check_markdown",
    "probing_gap_markdown",
    "publish",
    "references_markdown",
    "render",
    "rerender",
    "rerender_directory",
    "rewrite_docs",
    "section",
    "sweep_benchmark_markdown",
    "table_lines",
    "table_plan_markdown",
    "tables_markdown",
    "wall_times_markdown",
    "write",
    "zoo_benchmark_markdown",
]
