"""The docs' rendered blocks: found between their markers, checked against their results files, rewritten."""

import dataclasses
import glob
import os
import re

from experiments.report.format import ReportError
from experiments.report.renderers import RENDERERS, render, wall_times_markdown
from weightspace import files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The docs whose rendered blocks are checked, as globs relative to the repository root.
DOCS = ("README.md", "experiments/*.md", "zoo_builder/*.md")
START = re.compile(r'<!-- rendered from (?P<source>[^\s,]+)(?:, section "(?P<section>[^"]+)")? -->')
END = "<!-- end rendered -->"
HEADING = re.compile(r"(?P<level>#{1,6}) (?P<text>.*)")


@dataclasses.dataclass(frozen=True)
class Block:
    """A rendered block of a doc: the lines between its markers, and what they are rendered from.

    Attributes:
      doc: the doc's path, relative to the repository root.
      start, end: the indices of its start and end marker lines in the doc.
      source: the results file, relative to the repository root.
      section: the heading whose body the block shows ("" for the whole markdown but its title).
    """

    doc: str
    start: int
    end: int
    source: str
    section: str

    def __str__(self) -> str:
        section = f', section "{self.section}"' if self.section else ""
        return f"{self.doc}:{self.start + 1}: the block rendered from {self.source}{section}"


def blocks(doc: str, lines: list[str]) -> list[Block]:
    """The rendered blocks of a doc's `lines`; a malformed, nested or unterminated block is a `ReportError`.

    Markers in fenced code (a doc showing the syntax) are text, not blocks.
    """
    found, opened, fenced = [], None, False
    for index, line in enumerate(line.rstrip() for line in lines):
        where = f"{doc}:{index + 1}"
        if opened is None and line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced:
            continue
        marker = START.fullmatch(line)
        if line.startswith("<!-- rendered") and not marker:
            raise ReportError(
                f"{where}: malformed marker {line!r}; write <!-- rendered from PATH --> or "
                '<!-- rendered from PATH, section "HEADING" -->.'
            )
        if marker:
            if opened is not None:
                raise ReportError(f"{where}: a block opens inside {opened}; close that one first with {END}.")
            opened = Block(doc, index, -1, marker["source"], marker["section"] or "")
        elif line == END:
            if opened is None:
                raise ReportError(f"{where}: {END} closes no block.")
            found.append(dataclasses.replace(opened, end=index))
            opened = None
    if opened is not None:
        raise ReportError(f"{opened} has no {END}.")
    return found


def _strip_blank(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def section(markdown: str, heading: str) -> list[str] | None:
    """The lines under the heading whose text is `heading` (any level), up to the next heading of the same or a
    higher level; with `heading` "", every line but the first H1 title. None when no heading or several match."""
    lines = markdown.splitlines()
    if not heading:
        title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        return _strip_blank(lines if title is None else lines[:title] + lines[title + 1 :])
    headings = [(i, m) for i, m in ((i, HEADING.fullmatch(line)) for i, line in enumerate(lines)) if m]
    matches = [(i, len(m["level"])) for i, m in headings if m["text"].strip() == heading]
    if len(matches) != 1:
        return None
    start, level = matches[0]
    end = next((i for i, m in headings if i > start and len(m["level"]) <= level), len(lines))
    return _strip_blank(lines[start + 1 : end])


def _block_lines(root: str, block: Block, rendered: dict[str, str]) -> list[str]:
    """What `block` should hold, rendering each results file once (`rendered`: path -> markdown)."""
    path = os.path.join(root, block.source)
    if os.path.isdir(path):
        if path not in rendered:
            rendered[path] = wall_times_markdown(path)
    elif os.path.basename(path) not in RENDERERS or not os.path.isfile(path):
        known = ", ".join(RENDERERS)
        raise ReportError(
            f"{block}: no such results file (a path from the repository root, named one of {known}) or "
            "directory of them."
        )
    elif path not in rendered:
        rendered[path] = render(path)
    lines = section(rendered[path], block.section)
    if lines is None:
        raise ReportError(f"{block}: its markdown has no single heading {block.section!r}.")
    return lines


def doc_paths(root: str) -> list[str]:
    """The docs whose rendered blocks are checked, relative to `root`."""
    return [os.path.relpath(path, root) for pattern in DOCS for path in sorted(glob.glob(os.path.join(root, pattern)))]


def _docs(root: str) -> list[tuple[str, list[str], list[Block]]]:
    """Every doc as (path, its lines re-rendered, the blocks that differed)."""
    rendered, out = {}, []
    for doc in doc_paths(root):
        with open(os.path.join(root, doc)) as f:
            lines = f.read().splitlines()
        new, stale, copied = [], [], 0
        for block in blocks(doc, lines):
            body = _block_lines(root, block, rendered)
            if lines[block.start + 1 : block.end] != body:
                stale.append(block)
            new += lines[copied : block.start + 1] + body
            copied = block.end
        out.append((doc, new + lines[copied:], stale))
    return out


def check_docs(root: str = REPO) -> list[str]:
    """A line per rendered block of the docs under `root` that differs from its render (none when all agree)."""
    return [f"{block} differs from its render" for _, _, stale in _docs(root) for block in stale]


def rewrite_docs(root: str = REPO) -> list[str]:
    """Rewrites every rendered block of the docs under `root` from its results file; returns the blocks changed."""
    changed = []
    for doc, lines, stale in _docs(root):
        if stale:
            files.write_text(os.path.join(root, doc), "\n".join(lines) + "\n")
            changed += [str(block) for block in stale]
    return changed
