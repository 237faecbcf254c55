"""What every renderer shares: cells, values, a results file's command and machine lines, and the error."""

import math

from weightspace import errors


class ReportError(errors.UserError, ValueError):
    """A results file with no renderer, or a doc's rendered block that is malformed or names what is not there."""


def text(lines: list[str]) -> str:
    """Lines as a markdown file: joined, ending in exactly one newline."""
    return "\n".join(lines).rstrip("\n") + "\n"


def command_lines(result: dict) -> list[str]:
    """The command line of the invocation that wrote `result`, when it recorded one."""
    return [f"Command: `{result['command']}`", ""] if result.get("command") else []


def machine_line(result: dict, before: str, after: str = "") -> str:
    """`before` + the machine `result` was computed on + `after`, or "" when it recorded none."""
    return f"{before}{result['machine']}{after}" if result.get("machine") else ""


def with_nan(row: dict) -> dict:
    """A results row with its nulls back as NaN (JSON holds an undefined number as null), formatted as "nan"."""
    return {key: float("nan") if value is None else value for key, value in row.items()}


def defined(cell: dict | None) -> bool:
    """Whether a results-table cell holds a value (not missing, not an undefined metric)."""
    return cell is not None and cell["mean"] is not None and math.isfinite(cell["mean"])


def format_cell(cell: dict | None) -> str:
    """A results-table cell {mean, std, n}: "-" missing, "n/a" undefined (a null or non-finite mean), else the
    value of its one seed or mean ± std over its seeds."""
    if cell is None:
        return "-"
    if not defined(cell):
        return "n/a"
    if cell["n"] == 1:
        return f"{cell['mean']:.3f}"
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}"


def format_value(value: float | None, digits: int = 3) -> str:
    """One number of a run's results: "n/a" where undefined (None, JSON's null, or non-finite)."""
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "n/a"


def value_or_dash(values: dict[str, float | None], key: str, digits: int = 3) -> str:
    """`values[key]` formatted (`format_value`), or "-" where `values` has no such key."""
    return format_value(values[key], digits) if key in values else "-"
