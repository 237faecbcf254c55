"""Which command a directory belongs to, so that no command writes into, or removes from, another's.

Every command that makes a directory of its own records itself there first (`OWNER_FILE`, written
before anything else) and refuses, in one line and before writing anything:
* a directory another kind of command owns (a zoo build given a training run's workdir);
* a directory that holds files none of these commands wrote;
* a directory inside or equal to a zoo, and one inside another command's directory, unless that
  command makes such directories itself (a run inside a sweep or a tables output: `CONTAINS`).

Directories written before owner records are recognised by their files (`infer_kind`) and adopted
when the same kind of command reuses them. `claim` remembers the directories it created; the error
boundary of the command line (`cli.one_line_errors`) removes those that hold nothing but bookkeeping
when the command is refused, so a refusal leaves no directory behind (`discard_created`).
"""

import os
import shutil

from weightspace import files, multihost
from weightspace.errors import UserError

OWNER_FILE = "owner.json"
FORMAT = 1

# Each kind of directory and the command that makes it.
KINDS = {
    "zoo_build": "a zoo build (python -m zoo_builder.main)",
    "run": "a training run (python -m experiments.main)",
    "sweep": "a sweep's members (python -m experiments.main --seeds)",
    "tables": "a tables output (python -m experiments.analyses.tables or experiments.analyses.references)",
    "probing_gap": "a probing-gap output (python -m experiments.analyses.probing_gap)",
    "zoo": "a zoo",
}
# The kinds of directory a command makes inside its own (at any depth below it).
CONTAINS = {
    "sweep": ("run",),
    "tables": ("run", "sweep"),
    "probing_gap": ("run", "sweep", "zoo_build"),
}
# Files of no command's output: workdir locks and the multi-process workdir token.
_BOOKKEEPING_PREFIXES = (files.LOCK_FILE, multihost.WORKDIR_TOKEN, OWNER_FILE)

_created: list[str] = []


class OwnershipError(UserError, ValueError):
    """A command was pointed at a directory that is not its own to write."""


def read_kind(directory: str, evident_only: bool = False) -> str | None:
    """The kind recorded in `directory`'s owner file, else the one its files show (`infer_kind`)."""
    path = os.path.join(directory, OWNER_FILE)
    if os.path.isfile(path):
        record = files.read_json(path)
        kind = record.get("kind") if isinstance(record, dict) else None
        if kind not in KINDS:
            raise OwnershipError(f"{path} names no known kind of directory ({kind!r}); it was not written here.")
        return kind
    return infer_kind(directory, evident_only)


def _names(directory: str) -> set[str]:
    return {n for n in os.listdir(directory) if not n.startswith(_BOOKKEEPING_PREFIXES)}


# Files that, together, show a directory's kind beyond doubt (for directories above the one given).
_EVIDENT = {"zoo": ("metadata.json", "COMPLETE"), "zoo_build": ("build_config.json", "layout.json"),
            "run": ("config.json", "metrics.jsonl")}  # fmt: skip


def infer_kind(directory: str, evident_only: bool = False) -> str | None:
    """The kind of a directory written before owner records, from its files; None when there is none to see.

    With `evident_only`, only the pairs of files in `_EVIDENT` count (a folder holding, say, a `runs/` of
    its own is no tables output).
    """
    if not os.path.isdir(directory):
        return None
    names = _names(directory)
    for kind, evidence in _EVIDENT.items():
        if names.issuperset(evidence):
            return kind
    if evident_only:
        return None
    if "metadata.json" in names and names & {"npy", "arrays"}:
        return "zoo"
    if names & {"build_config.json", "layout.json", "parts"}:
        return "zoo_build"
    if names & {"config.json", "metrics.jsonl", "evaluation.json"}:
        return "run"
    if "probing_gap.json" in names or "zoos" in names:
        return "probing_gap"
    if names & {"results.json", "results.csv", "runs"}:
        return "tables"
    members = [os.path.join(directory, n) for n in names]
    if members and all(os.path.basename(m).startswith("seed") and infer_kind(m) == "run" for m in members):
        return "sweep"
    return None


def _describe(kind: str | None) -> str:
    return KINDS[kind] if kind else "files none of these commands wrote"


def check(directory: str, kind: str) -> None:
    """Refuses (`OwnershipError`) to let a command of `kind` write `directory` (see the module docstring).

    Writes nothing: every check a claim makes, for a validation before anything is written.
    """
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise OwnershipError(f"{directory} is a file, not a directory: give a directory for {KINDS[kind]}.")
    parent = os.path.dirname(directory)
    while parent != os.path.dirname(parent):
        held = read_kind(parent, evident_only=True) if os.path.isdir(parent) else None
        if held is not None and kind not in CONTAINS.get(held, ()):
            raise OwnershipError(
                f"{directory} is inside {parent}, which holds {_describe(held)}: {KINDS[kind]} may not go there "
                "(its files could be mistaken for, or removed with, the other's). Use a directory outside it."
            )
        parent = os.path.dirname(parent)
    if not os.path.isdir(directory):
        return
    if not _names(directory) and not os.path.isfile(os.path.join(directory, OWNER_FILE)):
        return
    held = read_kind(directory)
    if held != kind:
        shown = sorted(_names(directory))[:4]
        raise OwnershipError(
            f"{directory} holds {_describe(held)} ({', '.join(shown)}{', ...' if len(_names(directory)) > 4 else ''}), "
            f"not {KINDS[kind]}: nothing there is changed. Give a new or empty directory."
        )


def require(directory: str, kind: str) -> str:
    """`directory` as an absolute path, once it is shown to be of `kind` (for commands that read one, such as
    an evaluation of a run); else an `OwnershipError` naming what it is."""
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise OwnershipError(f"{directory} is not a directory: give {KINDS[kind]}'s directory.")
    held = read_kind(directory)
    if held != kind:
        raise OwnershipError(f"{directory} holds {_describe(held)}, not {KINDS[kind]}: give {KINDS[kind]}'s directory.")
    return directory


def claim(directory: str, kind: str) -> str:
    """Makes `directory` (if missing) the directory of a command of `kind` and records it; returns its path.

    Refuses (`OwnershipError`, writing nothing) what `check` refuses. The record is written into a new or
    empty directory (one written before records keeps being recognised by its files), in a multi-process
    job by process 0 only. What this call made is remembered for `discard_created`.
    """
    directory = os.path.abspath(directory)
    check(directory, kind)
    top = directory
    while not os.path.exists(os.path.dirname(top)):
        top = os.path.dirname(top)
    if not os.path.exists(directory):
        os.makedirs(directory, exist_ok=True)  # the other processes of a job make it at the same time
        _created.append(top)
    record = os.path.join(directory, OWNER_FILE)
    if multihost.is_primary() and not os.path.exists(record) and not _names(directory):
        files.write_json(record, {"kind": kind, "format": FORMAT})
        _created.append(record)
    return directory


def _only_bookkeeping(directory: str) -> bool:
    return all(n.startswith(_BOOKKEEPING_PREFIXES) for _, _, names in os.walk(directory) for n in names)


def discard_created() -> None:
    """Removes every directory (and owner record) `claim` made in this process whose directory still holds
    nothing but bookkeeping (the owner record, locks): what a refused command would otherwise leave behind.
    Others are kept."""
    while _created:
        path = _created.pop()
        if os.path.isfile(path) and _only_bookkeeping(os.path.dirname(path)):
            os.remove(path)
        elif os.path.isdir(path) and _only_bookkeeping(path):
            shutil.rmtree(path, ignore_errors=True)
