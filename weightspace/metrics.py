"""Metrics files: one JSON object per line (JSONL), appended while a run goes.

A run killed while writing leaves its last line cut short: reading drops
that line with a warning, and a bad line anywhere else is an error naming
the file and line. A resumed run drops the rows beyond the step it resumes
from (`drop_after`), so every step is logged once.
"""

import json
import os

from absl import logging

from weightspace import files
from weightspace.errors import UserError


class MetricsError(UserError, ValueError):
    """A metrics file with a bad line before its last."""


def append(path: str | os.PathLike, record: dict) -> None:
    """Appends `record` (JSON-able) as one line."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _rows(path: str | os.PathLike) -> tuple[list[tuple[str, dict]], int]:
    """The file's (line, record) pairs, and how many non-empty lines it has (a cut-short last one included)."""
    if not os.path.exists(path):
        return [], 0
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append((line, json.loads(line)))
        except json.JSONDecodeError as error:
            if number < len(lines):
                raise MetricsError(f"{path} line {number} is not JSON ({error}); fix or remove it.") from None
            logging.warning("Ignoring the last line of %s, cut short (the run was killed writing it).", path)
    return rows, len(lines)


def read(path: str | os.PathLike) -> list[dict]:
    """Every record of a metrics file ([] when there is none)."""
    return [row for _, row in _rows(path)[0]]


def drop_after(path: str | os.PathLike, step: int) -> None:
    """Rewrites the file (atomically) without its rows beyond `step`, and without a last line cut short."""
    rows, num_lines = _rows(path)
    kept = [line for line, row in rows if row["step"] <= step]
    if len(kept) < num_lines:
        logging.info("Keeping %d rows of %s, up to step %d, where the run resumes.", len(kept), path, step)
        files.write_text(path, "".join(f"{line}\n" for line in kept))
