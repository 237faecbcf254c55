"""The prose of experiments/RESULTS.md quotes only numbers that its sections' tables and results files hold.

A `## ` section's prose is its text outside fenced code and outside rendered blocks. Each decimal number there
(0.447, 12.3, 1.58 times, 0.7 %, 127.6°, ...) must appear verbatim in one of the section's rendered blocks, or be a
value of a results file the section names (a JSON file under experiments/results/ whose path, or whose
directory's path, appears in the section), rounded to the prose number's decimal places; a percentage may also
be the value times 100. A spread written after "±" is a spread in the file (`std`, `..._std`), and "mean ± std"
is one cell's pair; any other number is a value that is not a spread. Integers (counts, sizes, seeds, m, L) are
not checked. The claims table opens the doc: each row's numbers come from the results files that row names.
"""

import dataclasses
import glob
import json
import os
import re

from experiments.report import docs

DOC = "experiments/RESULTS.md"
RESULTS = "experiments/results"
FENCE = ("```", "~~~")
MINUS = "\u2212"  # a sign, like "-"
PLUS_MINUS = "\u00b1"
# A decimal number: digits with a decimal point (thousands grouped by commas allowed), perhaps in scientific
# notation. Not part of a longer token: a version (0.10.2), an identifier (x86_64), a word (v1.2).
DECIMAL = re.compile(
    r"(?<![\w.])(?P<digits>\d{1,3}(?:,\d{3})+\.\d+|\d+\.\d+)(?P<exponent>e[-+]?\d+)?(?!\.?\d|[a-wyzA-Z_])"
)
# A percentage: the number, or a range ending in it, followed by %.
PERCENT = re.compile(r"\s*(?:[-\u2013]\s*[\d.,]+\s*)?%")
# A results file or directory named in the text.
NAMED = re.compile(rf"{RESULTS}/[\w.-]+(?:/[\w.-]+\.json)?")
LINK = re.compile(r"\]\(#([^)]+)\)")


@dataclasses.dataclass(frozen=True)
class Number:
    """A decimal number of a line of prose.

    Attributes:
      text: as written, its sign included ("-0.01"), thousands' commas dropped.
      line: the doc's line it is on, 1-based.
      percent: whether a "%" follows it (or the range it ends or starts).
      spread: whether it follows "±", the spread of the number before it.
      start, end: where it is in the line, its sign included.
    """

    text: str
    line: int
    percent: bool = False
    spread: bool = False
    start: int = 0
    end: int = 0

    @property
    def places(self) -> int:
        return len(self.text.split("e")[0].split(".")[1])

    @property
    def scientific(self) -> bool:
        return "e" in self.text

    def __str__(self) -> str:
        return self.text + (" %" if self.percent else "")


@dataclasses.dataclass
class Section:
    """A `## ` section of the doc (or the text above the first one)."""

    heading: str
    prose: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (1-based line, text)
    rendered: list[str] = dataclasses.field(default_factory=list)  # its rendered blocks' lines
    text: list[str] = dataclasses.field(default_factory=list)  # every line, for the files it names


def sections(lines: list[str], doc: str = DOC) -> list[Section]:
    """The doc's `## ` sections, each with its prose lines, its rendered blocks' lines and all its lines."""
    inside = {index for block in docs.blocks(doc, lines) for index in range(block.start, block.end + 1)}
    found, fenced = [Section("(above the first section)")], False
    for index, line in enumerate(lines):
        if not fenced and line.startswith("## "):
            found.append(Section(line[3:].strip()))
            continue
        section = found[-1]
        section.text.append(line)
        if index in inside:
            section.rendered.append(line)
        elif line.lstrip().startswith(FENCE):
            fenced = not fenced
        elif not fenced:
            section.prose.append((index + 1, line))
    return found


def numbers(line: int, text: str) -> list[Number]:
    """The decimal numbers of one line of prose (a '-' right after a digit is a range's dash, not a sign)."""
    found = []
    for match in DECIMAL.finditer(text):
        start, sign = match.start(), ""
        if start and text[start - 1] in "-+" + MINUS and (start < 2 or not text[start - 2].isalnum()):
            start, sign = start - 1, "-" if text[start - 1] in "-" + MINUS else ""
        found.append(
            Number(
                text=sign + match["digits"].replace(",", "") + (match["exponent"] or ""),
                line=line,
                percent=bool(PERCENT.match(text, match.end())),
                spread=text[:start].rstrip().endswith(PLUS_MINUS),
                start=start,
                end=match.end(),
            )
        )
    return found


def named_files(text: str, root: str) -> list[str]:
    """The results JSON files `text` names: by path, or by their directory's path."""
    found = set()
    for name in NAMED.findall(text):
        path = os.path.join(root, name)
        if name.endswith(".json") and os.path.isfile(path):
            found.add(name)
        elif os.path.isdir(path):
            found.update(os.path.relpath(p, root) for p in glob.glob(os.path.join(path, "*.json")))
    return sorted(found)


@dataclasses.dataclass
class Values:
    """The numbers of some results files: values, spreads (`std`, `..._std`), and (value, spread) pairs of a cell."""

    plain: list[float] = dataclasses.field(default_factory=list)
    spreads: list[float] = dataclasses.field(default_factory=list)
    pairs: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    @classmethod
    def read(cls, paths: list[str]) -> "Values":
        out, stack = cls(), []
        for path in paths:
            with open(path) as f:
                stack.append(("", json.load(f)))
        while stack:
            key, item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.items())
                out.pairs += [
                    (item[k], item[s])
                    for k, s in [("mean", "std"), *((k, f"{k}_std") for k in item)]
                    if _is_number(item.get(k)) and _is_number(item.get(s))
                ]
            elif isinstance(item, list):
                stack.extend((key, element) for element in item)
            elif _is_number(item):
                (out.spreads if key == "std" or key.endswith("_std") else out.plain).append(float(item))
        return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _written(value: float, number: Number) -> list[str]:
    """The value (and for a percentage, the value times 100) written as `number` is."""
    out = []
    for scaled in (value, value * 100) if number.percent else (value,):
        text = f"{scaled:.{number.places}{'e' if number.scientific else 'f'}}"
        out.append(text[1:] if text.startswith("-") and float(text) == 0 else text)
    return out


def in_blocks(rendered: list[str], *quoted: Number) -> bool:
    """Whether the number, or the "mean ± spread" pair, is written as in the prose in a rendered line."""
    parts = []
    for number in quoted:
        sign = f"[-{MINUS}]" if number.text.startswith("-") else rf"(?<![-{MINUS}])\+?"
        parts.append(sign + re.escape(number.text.lstrip("-")))
    between = rf"\s*{PLUS_MINUS}\s*"
    pattern = re.compile(rf"(?<![\w.]){between.join(parts)}(?!\.?\d|[a-wyzA-Z_])")
    return any(pattern.search(line) for line in rendered)


def in_files(values: Values, *quoted: Number) -> bool:
    """Whether a file holds the number (a spread among its spreads), or the pair as one cell's, rounded as written."""
    if len(quoted) == 2:
        mean, spread = quoted
        return any(mean.text in _written(m, mean) and spread.text in _written(s, spread) for m, s in values.pairs)
    (number,) = quoted
    return any(number.text in _written(v, number) for v in (values.spreads if number.spread else values.plain))


def unbacked_numbers(prose: list[tuple[int, str]], rendered: list[str], values: Values) -> list[tuple[int, str, int]]:
    """(line, the number or "mean ± spread" pair, its places) for each one of the prose that nothing backs."""
    missing = []
    for line, text in prose:
        found, index = numbers(line, text), 0
        while index < len(found):
            quoted = tuple(found[index : index + 2])
            paired = len(quoted) == 2 and quoted[1].spread and not text[quoted[0].end : quoted[1].start].strip(" ±")
            quoted = quoted if paired else quoted[:1]
            if not in_blocks(rendered, *quoted) and not in_files(values, *quoted):
                missing.append((line, f" {PLUS_MINUS} ".join(map(str, quoted)), quoted[0].places))
            index += len(quoted)
    return missing


def unbacked(lines: list[str], root: str, doc: str = DOC) -> list[str]:
    """A line per prose number that neither a rendered block nor a named results file of its section holds."""
    problems = []
    for section in sections(lines, doc):
        files = named_files("\n".join(section.text), root)
        values = Values.read([os.path.join(root, name) for name in files])
        named = ", ".join(files) or "none"
        for line, quoted, places in unbacked_numbers(section.prose, section.rendered, values):
            problems.append(
                f'{doc}:{line}: section "{section.heading}": {quoted} is in none of the section\'s rendered blocks '
                f"and, rounded to {places} places, in none of the results files it names ({named}); quote the "
                "file's number, name the file that holds it, or drop the claim"
            )
    return problems


def _read(path: str) -> list[str]:
    with open(path) as f:
        return f.read().splitlines()


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def claims(lines: list[str]) -> list[tuple[int, str]]:
    """The rows of the claims table, the table of the section "Claims", as (1-based line, text)."""
    section = next((s for s in sections(lines) if s.heading == "Claims"), None)
    assert section is not None, f'{DOC} has no section "Claims"'
    table = [(line, text) for line, text in section.prose if text.startswith("|")]
    return [(line, text) for line, text in table[1:] if not set(text) <= set("|-: ")]


def test_every_prose_number_of_the_results_doc_comes_from_its_section_tables_or_files():
    problems = unbacked(_read(os.path.join(docs.REPO, DOC)), docs.REPO)
    assert not problems, "\n".join(problems)


def test_each_claim_quotes_only_its_own_results_files():
    problems = []
    for line, row in claims(_read(os.path.join(docs.REPO, DOC))):
        values = Values.read([os.path.join(docs.REPO, name) for name in named_files(row, docs.REPO)])
        problems += [
            f"{DOC}:{line}: the claim quotes {quoted}, which no results file of its row holds"
            for line, quoted, _ in unbacked_numbers([(line, row)], [], values)
        ]
    assert not problems, "\n".join(problems)


def test_each_claim_links_a_heading_a_results_file_and_a_command():
    lines = _read(os.path.join(docs.REPO, DOC))
    anchors = {anchor(m["text"]) for m in map(docs.HEADING.fullmatch, lines) if m}
    rows = claims(lines)
    assert rows, "the claims table has no rows"
    for line, row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == 4, f"{DOC}:{line}: a claim has the cells claim | where | results file | command"
        _, where, results, command = cells
        links = LINK.findall(where)
        assert links and all(link in anchors for link in links), f"{DOC}:{line}: the claim links no heading of {DOC}"
        paths = NAMED.findall(results)
        assert paths and all(p.endswith(".json") and os.path.isfile(os.path.join(docs.REPO, p)) for p in paths), (
            f"{DOC}:{line}: the claim names no results file that exists"
        )
        assert command.startswith("`python -m ") and command.endswith("`"), f"{DOC}:{line}: the claim names no command"


def test_every_link_to_a_heading_of_the_results_doc_resolves():
    lines = _read(os.path.join(docs.REPO, DOC))
    anchors = {anchor(m["text"]) for m in map(docs.HEADING.fullmatch, lines) if m}
    for link in LINK.findall("\n".join(lines)):
        assert link in anchors, f"{DOC} links #{link}, which is no heading of it"


def _doc(tmp_path, body: str) -> list[str]:
    os.makedirs(tmp_path / RESULTS / "run")
    with open(tmp_path / RESULTS / "run" / "results.json", "w") as f:
        cells = {"a": {"mean": 0.44736, "std": 0.0368}, "b": {"mean": 0.0123, "std": 0.2}, "flag": True}
        json.dump({"cells": cells, "rows": [{"label_accuracy": 0.77, "label_accuracy_std": 0.08}]}, f)
    return ["# Results", "", *body.splitlines()]


def test_a_number_that_no_table_or_named_file_holds_fails_with_its_section_and_line(tmp_path):
    lines = _doc(
        tmp_path,
        "## Backed\n\nReads 0.447 ± 0.037, 0.77 ± 0.08 and 1.2 % (experiments/results/run/results.json); m = 4.\n"
        "<!-- rendered from experiments/results/run/results.json -->\n| x | 0.975 ± 0.010 |\n<!-- end rendered -->\n"
        "The table's 0.975 ± 0.010.\n```bash\npython -m x --lr=0.123\n```\n"
        "## Unbacked\n\nReads 0.448 in experiments/results/run/, 0.447 the file holds, 3.5 % it does not,\n"
        "0.447 ± 0.2 (a spread of another cell), 0.037 (a spread, not a value), and 0.975 ± 0.010 of no block here.\n"
        "## Unnamed\n\nReads 0.447, and no file is named here.\n",
    )
    problems = unbacked(lines, str(tmp_path))
    where = [(p.split(": ")[0], p.split(": ")[1], p.split(": ")[2].split(" is ")[0]) for p in problems]
    assert where == [
        (f"{DOC}:15", 'section "Unbacked"', "0.448"),
        (f"{DOC}:15", 'section "Unbacked"', "3.5 %"),
        (f"{DOC}:16", 'section "Unbacked"', "0.447 ± 0.2"),
        (f"{DOC}:16", 'section "Unbacked"', "0.037"),
        (f"{DOC}:16", 'section "Unbacked"', "0.975 ± 0.010"),
        (f"{DOC}:19", 'section "Unnamed"', "0.447"),
    ]
    assert "(experiments/results/run/results.json)" in problems[0] and "(none)" in problems[-1]


def test_signs_percentages_ranges_spreads_and_units_are_read_as_written():
    line = "rho -0.01, 0.10-0.15, 1.25-2.06\u00d7, 127.6°, 2,566.5 s, 0.3 ± 0.1, JAX 0.10.2, x86_64"
    assert [(n.text, n.spread) for n in numbers(1, line)] == [
        ("-0.01", False),
        ("0.10", False),
        ("0.15", False),
        ("1.25", False),
        ("2.06", False),
        ("127.6", False),
        ("2566.5", False),
        ("0.3", False),
        ("0.1", True),
    ]
    assert [(n.text, n.percent) for n in numbers(1, "0.7-1.4 % and 2.6 %, 0.5")] == [
        ("0.7", True),
        ("1.4", True),
        ("2.6", True),
        ("0.5", False),
    ]
    assert in_files(Values(plain=[0.0123]), Number("1.2", 1, percent=True))
    assert not in_files(Values(plain=[0.0123]), Number("1.2", 1))
    assert not in_files(Values(plain=[0.0123]), Number("-0.01", 1))
    assert in_blocks(["| -0.01 |"], Number("-0.01", 1))
    assert not in_blocks(["| -0.01 |"], Number("0.01", 1))
