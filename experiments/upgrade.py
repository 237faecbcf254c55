"""Moves the project's older outputs forward, in place, so the code path reads only today's formats.

  python -m experiments.upgrade --path=DIR

Upgrades every training workdir (a directory holding `config.json`) and every zoo (`metadata.json` and
`COMPLETE`) at or under DIR: a run's recorded config gets the fields added to the configs since it was
written, at the values in effect before them (so it resumes, evaluates and is reused by the tables
exactly as before); a run whose `zoo.json` records only its zoo's path records that zoo's identity
(`zoo.identity`: what a resume is checked against since), and a zoo whose arrays are one Orbax
checkpoint moves them to `npy/` (`zoo.upgrade`). Each file is rewritten atomically; running it twice
changes nothing. Until a workdir is upgraded, training, evaluation and the tables refuse it, naming
this command.
"""

import json
import os
from typing import Any

from absl import flags, logging

from experiments.run import layout
from weightspace import cli, encoders, errors, files, zoo

# Config fields added since runs were first recorded, at the value that reproduces the behaviour before them.
ADDED_FIELDS = {
    ("oracle", "target"): "",
    ("train", "min_step"): 0,
    ("train", "zoo_on_disk"): False,
    ("emulate_on",): "stored",
    ("eval", "select_by"): "loss",
    ("evaluate", "probe_seeds"): 1,
    ("split", "ood_fold"): 0,
}


def upgraded_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A recorded config (as JSON) with every field added since, at the value in effect before it."""
    saved = json.loads(json.dumps(saved))
    for path, value in ADDED_FIELDS.items():
        node = saved
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], value)
    for key, value in encoders.default_config(saved["encoder"]["name"]).to_dict().items():
        saved["encoder"].setdefault(key, value)
    return saved


def missing_fields(saved: dict[str, Any]) -> list[str]:
    """The fields (dotted keys) a recorded config lacks that `upgraded_config` adds."""
    return sorted(set(files.flatten(upgraded_config(saved))) - set(files.flatten(saved)))


def upgrade_workdir(workdir: str) -> bool:
    """Adds the missing fields to a workdir's `config.json`; False when it had them all."""
    path = layout.run_file(workdir, layout.CONFIG)
    saved = files.read_json(path)
    if not missing_fields(saved):
        return False
    files.write_json(path, upgraded_config(saved))
    return True


def upgrade_zoo_record(workdir: str) -> bool:
    """Records the identity of the zoo a workdir's `zoo.json` names by path alone; False when it has one.

    Raises:
      zoo.ZooError: when no complete zoo is at that path any more (nothing to record; nothing is written).
    """
    path = layout.run_file(workdir, layout.ZOO_RECORD)
    recorded = files.read_json(path) if os.path.exists(path) else {}
    if set(recorded) != {"path"}:
        return False
    if not zoo.is_complete(recorded["path"]):
        raise zoo.ZooError(
            f"{path} names the zoo at {recorded['path']}, and no complete zoo is there: put it back, then upgrade."
        )
    files.write_json(path, zoo.identity(recorded["path"]))
    return True


def upgrade(path: str) -> list[str]:
    """Upgrades every workdir and zoo at or under `path` (a directory); returns what changed, one line each."""
    problems = cli.path_problems("path", path, "directory")
    if problems:
        raise errors.ConfigError(f"{problems[0]}: give a workdir, a zoo, or a directory holding them.")
    changed = []
    for root, names, file_names in os.walk(os.path.abspath(path)):
        names.sort()
        if "config.json" in file_names and upgrade_workdir(root):
            changed.append(f"{root}: config.json given the fields added since it was written")
        if "zoo.json" in file_names and upgrade_zoo_record(root):
            changed.append(f"{root}: zoo.json given the identity of its zoo")
        if "metadata.json" in file_names and zoo.is_complete(root) and zoo.upgrade(root):
            changed.append(f"{root}: arrays moved from an Orbax checkpoint to npy/")
    return changed


def main(argv):
    del argv
    changed = upgrade(flags.FLAGS.path)
    for line in changed:
        logging.info("Upgraded %s", line)
    print(
        f"{len(changed)} upgraded under {flags.FLAGS.path}."
        if changed
        else f"Nothing to upgrade under {flags.FLAGS.path}."
    )


if __name__ == "__main__":
    flags.DEFINE_string(
        "path", None, "A workdir, a zoo, or a directory holding them (e.g. a tables outdir).", required=True
    )
    cli.run_command(main, lambda flag_values: cli.path_problems("path", flag_values.path, "directory"))
