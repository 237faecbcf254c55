"""Results rendered from their results files: the committed ones, and the docs' rendered blocks."""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from experiments import report
from experiments.analyses import tables

RESULTS = os.path.join(report.REPO, "experiments", "results")
COMMITTED = sorted(p for p in glob.glob(f"{RESULTS}/*/*.json") if os.path.basename(p) in report.RENDERERS)
TABLES_JSON = os.path.join(RESULTS, "formal_languages_quick_variant", "results.json")
CORRELATION_JSON = os.path.join(RESULTS, "formal_languages_quick_variant", "loss_correlation.json")


def test_every_rendered_block_of_the_docs_matches_its_results_file():
    assert report.check_docs(report.REPO) == []


def test_the_check_command_exits_0_when_the_docs_agree():
    command = [sys.executable, "-m", "experiments.report", "--docs", "--check"]
    done = subprocess.run(command, cwd=report.REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: os.path.relpath(p, RESULTS))
def test_each_committed_results_file_renders_its_committed_markdown(path):
    markdown = os.path.join(os.path.dirname(path), report.RENDERERS[os.path.basename(path)][1])
    with open(markdown) as f:
        assert report.render(path) == f.read()


def test_every_results_kind_has_a_committed_results_file():
    assert {os.path.basename(p) for p in COMMITTED} == set(report.RENDERERS)


def test_rerendering_a_directory_rewrites_each_markdown_from_its_json(tmp_path):
    for path in (TABLES_JSON, CORRELATION_JSON):
        shutil.copy(path, tmp_path)
    (tmp_path / "tables.md").write_text("edited by hand")
    written = report.rerender_directory(str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == ["loss_correlation.md", "tables.md"]
    assert (tmp_path / "tables.md").read_text() == report.render(TABLES_JSON)
    with pytest.raises(report.ReportError, match="No results file"):
        report.rerender_directory(str(tmp_path / "empty"))


def test_undefined_and_missing_cells():
    assert report.format_cell(None) == "-"
    assert report.format_cell({"mean": None, "std": None, "n": 2}) == "n/a"  # as JSON holds NaN
    assert report.format_cell(tables.summary([0.5, float("nan")])) == "n/a"
    assert report.format_cell(tables.summary([0.5])) == "0.500"
    assert report.format_cell(tables.summary([0.5, 0.7])) == "0.600 ± 0.100"


MARKDOWN = "# Title\n\nIntro.\n\n## A\n\ntext a\n\n### A1\n\nsub\n\n## B\n\nb\n"


def test_a_section_is_the_body_under_its_heading_up_to_the_next_of_its_level_or_higher():
    assert report.section(MARKDOWN, "A") == ["text a", "", "### A1", "", "sub"]
    assert report.section(MARKDOWN, "A1") == ["sub"]
    assert report.section(MARKDOWN, "B") == ["b"]
    assert report.section(MARKDOWN, "")[:3] == ["Intro.", "", "## A"]  # everything but the title
    assert report.section(MARKDOWN, "C") is None


def _repo(tmp_path, doc: str, text: str):
    """A repository root holding the committed tables' results files and one doc."""
    results = tmp_path / "results"
    results.mkdir()
    for path in (TABLES_JSON, CORRELATION_JSON):
        shutil.copy(path, results)
    (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / doc).write_text(text)
    return tmp_path / doc


def test_rewrite_fills_a_block_and_check_then_passes(tmp_path):
    text = "# Doc\n\nBefore.\n<!-- rendered from results/loss_correlation.json -->\n<!-- end rendered -->\nAfter.\n"
    doc = _repo(tmp_path, "README.md", text)
    assert report.check_docs(str(tmp_path)) == [
        "README.md:4: the block rendered from results/loss_correlation.json differs from its render"
    ]
    assert doc.read_text() == text  # checking writes nothing
    assert report.rewrite_docs(str(tmp_path)) == ["README.md:4: the block rendered from results/loss_correlation.json"]
    lines = doc.read_text().splitlines()
    rendered = report.render(str(tmp_path / "results" / "loss_correlation.json")).splitlines()
    assert lines[:4] == text.splitlines()[:4] and lines[-2:] == ["<!-- end rendered -->", "After."]
    assert lines[4:-2] == rendered[2:]  # without the title and the blank line after it
    assert report.check_docs(str(tmp_path)) == []
    assert report.rewrite_docs(str(tmp_path)) == []


def test_a_stale_section_is_named_and_rewritten(tmp_path):
    heading = "formal_languages, OOD split, trained snapshots, mlp probe"
    marker = f'<!-- rendered from results/results.json, section "{heading}" -->'
    body = report.section(report.render(TABLES_JSON), heading)
    assert body[0].startswith("| group | encoder |") and body[-1].startswith("| oracle | task |")
    stale = [*body[:3], body[3].replace("0.", "9."), *body[4:]]
    doc = _repo(tmp_path, "experiments/RESULTS.md", "\n".join(["# Results", marker, *stale, report.END, ""]))
    assert report.check_docs(str(tmp_path)) == [
        f'experiments/RESULTS.md:2: the block rendered from results/results.json, section "{heading}" differs from '
        "its render"
    ]
    report.rewrite_docs(str(tmp_path))
    assert doc.read_text().splitlines() == ["# Results", marker, *body, report.END]


def test_a_directory_block_lists_each_results_files_wall_time_and_the_runs_its_command_trained(tmp_path):
    """Files with a renderer and a wall time, one level down, each a row; the runs its command trained against
    all its runs (a tables output's seeded rows, `done`; a probing-gap file's `learned_runs`), '-'
    where the file does not say; files without a wall time or a renderer left out."""
    results = tmp_path / "experiments" / "results"
    tables_run = {
        "wall_s": 1234.4,
        "machine": "2 CPU cores",
        "timings": [
            {"row": "zoo", "seeds": [], "done": [], "wall_s": 1.0},
            {"row": "emulation/flat", "seeds": [0, 1, 2], "done": [1, 2], "wall_s": 2.0},
            {"row": "oracle/task", "seeds": [0, 1, 2], "done": [], "wall_s": 3.0},
        ],
    }
    for name, result in [
        ("a/results.json", tables_run),
        (
            "b/probing_gap.json",
            {"wall_s": 7.6, "learned_runs": [{"run": "r0", "trained": True}, {"run": "r1", "trained": False}]},
        ),
        ("b2/probing_gap.json", {"wall_s": 2.0}),
        ("c/permutation_analysis.json", {"machine": "no wall time"}),
        ("d/notes.json", {"wall_s": 1.0}),
    ]:
        (results / name).parent.mkdir(parents=True)
        (results / name).write_text(json.dumps(result))
    markdown = report.wall_times_markdown(str(results))
    assert markdown.splitlines()[4:] == [
        "| `a/results.json` | 1,234 s | 2 / 6 | 2 CPU cores |",
        "| `b/probing_gap.json` | 8 s | 1 / 2 | - |",
        "| `b2/probing_gap.json` | 2 s | - | - |",
    ]
    doc = _repo(tmp_path, "README.md", "# Doc\n<!-- rendered from experiments/results -->\n<!-- end rendered -->\n")
    assert report.rewrite_docs(str(tmp_path)) == ["README.md:2: the block rendered from experiments/results"]
    assert doc.read_text().splitlines()[2:-1] == markdown.splitlines()[2:]
    assert report.check_docs(str(tmp_path)) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ('<!-- rendered from results/results.json, section "no table" -->\n<!-- end rendered -->\n', "README.md:2"),
        ("<!-- rendered from results/missing.json -->\n<!-- end rendered -->\n", "README.md:2.*no such results"),
        ("<!-- rendered from results/loss_correlation.json -->\ntext\n", "README.md:2.*has no <!-- end rendered -->"),
        ("<!-- end rendered -->\n", "README.md:2.*closes no block"),
        ("<!-- rendered from results/loss_correlation.json -->\n" * 2, "README.md:3.*opens inside README.md:2"),
        ("<!-- rendered from -->\n", "README.md:2: malformed marker"),
    ],
)
def test_bad_blocks_are_errors_naming_the_doc_and_line(tmp_path, text, message):
    _repo(tmp_path, "README.md", "# Doc\n" + text)
    with pytest.raises(report.ReportError, match=message):
        report.check_docs(str(tmp_path))


def test_markers_in_fenced_code_are_text(tmp_path):
    _repo(tmp_path, "zoo_builder/NOTES.md", "```\n<!-- rendered from results/missing.json -->\n```\n")
    assert report.check_docs(str(tmp_path)) == []
