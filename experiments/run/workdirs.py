"""A run's workdir kept consistent: its config, zoo and devices checked on a resume, its checkpoints opened, and
the trained model it holds restored. Its layout (and every other path of a run, sweep or tables output) is
`experiments.run.layout`'s.

For notebooks: `load_run(workdir)` rebuilds a run's context and trained
model, and `embed(workdir, zoo)` embeds every snapshot of a zoo.
"""

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

import zoo_builder
from experiments import upgrade
from experiments.run import batches, context, layout, objectives
from experiments.run.model import Model, SupervisedModel, initial_state, make_optimizer
from weightspace import checkpointing, files, zoo
from weightspace.errors import UserError

DEFAULT_ZOO_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "weightspace", "zoos")


def table_config_run(outdir: str, config: ml_collections.ConfigDict) -> str:
    """The run of `config` in a tables output directory (`layout.table_run` of its objective's row)."""
    return layout.table_run(outdir, config.zoo.dataset, objectives.kind_of(config).table_row(config), config.seed)


RELEASE_AT_MAPPINGS_SHARE = 0.5  # of the kernel's limit on a process's memory mappings


@contextlib.contextmanager
def releasing_compiled_programs() -> Iterator[None]:
    """Frees every compiled XLA program when a run's training or evaluation ends with the process past
    `RELEASE_AT_MAPPINGS_SHARE` of the kernel's limit on memory mappings (Linux's vm.max_map_count,
    65,530 by default). Each run compiles its own programs (hundreds of mappings each on the CPU, kept by
    JAX's caches), and a process that trains many runs (a table, a sweep, the probing gap) would otherwise
    reach the limit, where the next compilation aborts it. Below the share, programs that later runs reuse
    stay compiled."""
    try:
        yield
    finally:
        if _memory_mappings_share() > RELEASE_AT_MAPPINGS_SHARE:
            jax.clear_caches()


def _memory_mappings_share() -> float:
    """The share of the kernel's limit on memory mappings this process holds; 0 where the system has no
    such limit to read."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f) / limit
    except (OSError, ValueError):
        return 0.0


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (non-finite loss or gradients, mismatched workdir)."""


def zoo_path(config: ml_collections.ConfigDict) -> str:
    """The configured zoo path, or its default location in the zoo cache."""
    if config.zoo.path:
        return config.zoo.path
    cache = os.environ.get("WEIGHTSPACE_ZOOS", DEFAULT_ZOO_CACHE)
    return os.path.join(cache, f"{config.zoo.dataset}_{config.zoo.preset}", "zoo")


def run_zoo_path(workdir: str) -> str:
    """The zoo a run was trained on (recorded at its start, so a later WEIGHTSPACE_ZOOS does not matter).

    Raises:
      TrainingError: when the zoo at the recorded path is no longer the one the run was trained on.
    """
    recorded = _recorded_zoo(workdir)
    if recorded is None:
        return zoo_path(read_config(workdir))
    current = zoo.identity(recorded["path"]) if zoo.is_complete(recorded["path"]) else {"path": recorded["path"]}
    if current != recorded:
        raise _zoo_mismatch(workdir, recorded, current)
    return recorded["path"]


def _recorded_zoo(workdir: str) -> dict[str, Any] | None:
    """The zoo identity a run recorded at its start (None before it started); one from before identities
    were recorded (only the path) is refused, naming the command that upgrades it (`experiments.upgrade`)."""
    path = layout.run_file(workdir, layout.ZOO_RECORD)
    if not os.path.exists(path):
        return None
    recorded = files.read_json(path)
    if set(recorded) == {"path"}:
        raise TrainingError(
            f"{path} records only its zoo's path, as runs did before zoo identities. Upgrade it once, in place "
            f"(it records the identity of the zoo at that path): python -m experiments.upgrade --path={workdir}"
        )
    return recorded


def check_zoo(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """The identity of the run's zoo (`zoo.identity`, the zoo built first if missing); a resumed run must
    have the recorded zoo."""
    recorded = _recorded_zoo(workdir)
    path = os.path.abspath(zoo_path(config))
    if recorded is not None and os.path.abspath(recorded["path"]) != path:
        # Refused before the other zoo is built: it may not exist yet.
        current = zoo.identity(path) if zoo.is_complete(path) else {"path": path}
        raise _zoo_mismatch(workdir, recorded, current)
    identity = zoo.identity(ensure_zoo(config))
    if identity["family"] != config.zoo.dataset:
        raise TrainingError(
            f"The zoo at {identity['path']} is a {identity['family']} zoo, but the config trains on "
            f"zoo.dataset={config.zoo.dataset!r}; give a {config.zoo.dataset} zoo or the matching config."
        )
    if recorded is not None and recorded != identity:
        raise _zoo_mismatch(workdir, recorded, identity)
    return identity


def _zoo_mismatch(workdir: str, recorded: dict[str, Any], current: dict[str, Any]) -> "TrainingError":
    """The error for a resume on another zoo than the recorded one (`current` is only {"path"} when no zoo is there)."""
    differences = [] if os.path.abspath(recorded["path"]) == current["path"] else ["path"]
    if len(current) == 1:
        differences.append("no complete zoo is there")
    else:
        differences += [
            f"{key} {recorded[key]!r} -> {current.get(key)!r}"
            for key in recorded
            if key != "path" and recorded[key] != current.get(key)
        ]
    where = layout.run_file(workdir, layout.ZOO_RECORD)
    return TrainingError(
        f"{workdir} was trained on the zoo at {recorded['path']} (recorded in {where}), "
        f"but this run would use the zoo at {current['path']}; they differ in: {'; '.join(differences)}. "
        "Resume with the recorded zoo (--config.zoo.path or WEIGHTSPACE_ZOOS), or use a new workdir."
    )


def ensure_zoo(config: ml_collections.ConfigDict) -> str:
    """Returns the zoo's path, building the zoo first (zoo builder, matching preset) if it is missing; a complete
    one is checked first (`zoo.verify`: a corrupt zoo is refused, never reused)."""
    path = zoo_path(config)
    if zoo.is_complete(path):
        zoo.verify(path)
        return path
    if config.zoo.path:
        raise FileNotFoundError(f"No complete zoo at zoo.path={path!r}.")
    logging.info(
        "No %s zoo at %s yet: building it with the zoo builder's %r preset.",
        config.zoo.dataset,
        path,
        config.zoo.preset,
    )
    return zoo_builder.build_zoo(config.zoo.dataset, config.zoo.preset, os.path.dirname(path))


def _recorded_config(workdir: str) -> dict:
    """The config a workdir recorded (as JSON); one written before fields were added is refused, naming the
    command that upgrades it (`experiments.upgrade`)."""
    path = layout.run_file(workdir, layout.CONFIG)
    saved = files.read_json(path)
    missing = upgrade.missing_fields(saved)
    if missing:
        raise TrainingError(
            f"{path} was written before the config fields {', '.join(missing[:4])}"
            f"{' and more' if len(missing) > 4 else ''} existed. Upgrade it once, in place (it trains and "
            f"evaluates as before): python -m experiments.upgrade --path={workdir}"
        )
    return saved


# Config keys (and sub-configs) that a resumed run may change: logging and checkpoint cadence, the
# length of the run, where the zoo is read from (the same batches either way), and the downstream
# evaluation that follows it.
_RESUMABLE_KEYS = (
    "train.log_every_steps",
    "train.checkpoint_every_steps",
    "train.num_steps",
    "train.zoo_on_disk",
    "evaluate",
)


def check_config(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """The config to record (as JSON); a resumed run must have the recorded one, up to `_RESUMABLE_KEYS`."""
    path = layout.run_file(workdir, layout.CONFIG)
    current = json.loads(config.to_json())
    if os.path.exists(path):
        changed = files.config_changes(_recorded_config(workdir), current, _RESUMABLE_KEYS)
        if changed:
            raise TrainingError(
                f"{workdir} holds a run with another config ({path}); it differs in {'; '.join(changed)}. "
                "Use a new workdir, or the recorded values."
            )
    return current


def record_evaluate_settings(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Records `config.evaluate` in the config.json of the run in `workdir` (if any), which its evaluation
    reads: the downstream evaluation may change after training (`_RESUMABLE_KEYS`), and a saved evaluation
    made with other settings is then redone (`evaluate.evaluate`)."""
    path = layout.run_file(workdir, layout.CONFIG)
    if not os.path.exists(path):
        return
    saved = _recorded_config(workdir)
    if saved.get("evaluate") != config.evaluate.to_dict():
        files.write_json(path, {**saved, "evaluate": config.evaluate.to_dict()})


def check_devices(workdir: str, devices: dict[str, Any], resumed: int | None) -> None:
    """Refuses to resume a run on other devices ({"num_devices", "backend"}) than it started on.

    A data-parallel step sums its batch in another order on another device count, and another backend
    rounds differently: the resumed run would not be the uninterrupted one. Runs from before the record
    resume unchecked.
    """
    path = layout.run_file(workdir, layout.DEVICES)
    if resumed is None or not os.path.exists(path):
        return
    recorded = files.read_json(path)
    if recorded != devices:
        count, backend = recorded["num_devices"], recorded["backend"]
        raise TrainingError(
            f"The run in {workdir} started on {count} {backend} devices ({path}); resumed on "
            f"{devices['num_devices']} {devices['backend']} devices it would not be the uninterrupted run. "
            f"Resume on {count} {backend} devices (on CPU: --cpu_devices={count}), or use a new workdir."
        )


def resumed_step(workdir: str) -> int | None:
    """The step of the latest checkpoint a run in `workdir` would resume from (None: a first start)."""
    if not os.path.isdir(layout.checkpoints(workdir, "latest")):
        return None
    with _newest_checkpoint(workdir, "latest", required=False) as (step, _):
        return step


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a training workdir was run with."""
    path = layout.run_file(workdir, layout.CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} is not a training workdir: {path} is missing.")
    return ml_collections.ConfigDict(_recorded_config(workdir))


@contextlib.contextmanager
def _newest_checkpoint(
    workdir: str, which: str, required: bool = True
) -> Iterator[tuple[int | None, checkpointing.CheckpointManager]]:
    """(the newest good step, the manager) of a run's best or latest checkpoints; the manager closes after.

    With `required`, a run without one is an error naming what to do; without, its step is None.
    """
    manager = checkpointing.CheckpointManager(layout.checkpoints(workdir, which), process_local=True)
    try:
        step = manager.latest_step()
        if step is None and required:
            raise TrainingError(
                f"No {which!r} checkpoint in {workdir}: the run stopped before it saved one. Train it again "
                f"(python -m experiments.main --config=<its config> --workdir={workdir}); it resumes or starts over."
            )
        yield step, manager
    finally:
        manager.close()


def checkpoint_step(workdir: str, which: str = "best") -> int:
    """The step of a run's best (or latest) checkpoint."""
    with _newest_checkpoint(workdir, which) as (step, _):
        return step


def load_run(
    workdir: str, which: str = "best", the_zoo: zoo.Zoo | None = None
) -> tuple[context.RunContext, Model | SupervisedModel]:
    """A run's context (`RunContext.of` its config and zoo) and its model in eval mode: trained ("best" by
    eval loss, "latest"), or "init", as initialised (its config's seed, restored from nothing).

    The model is the objective's (`Objective.make_model`): a `Model` (encoder and emulator), or for a
    supervised run a `SupervisedModel` (encoder and prediction head); both have `.encoder`, which reads
    what the objective says it reads (`encoder_inputs`).

    Args:
      the_zoo: the run's zoo when the caller has it loaded; else it is loaded here, kept on disk.
    """
    config = read_config(workdir)
    the_zoo = zoo.load(run_zoo_path(workdir), on_disk=True) if the_zoo is None else the_zoo
    run = context.RunContext.of(config, the_zoo)
    model = run.objective.make_model(config, run.spec)
    if which != "init":
        with _newest_checkpoint(workdir, which) as (step, manager):
            template = initial_state(model, make_optimizer(config))
            state = manager.restore(step, checkpointing.abstract_of(template))
        nnx.update(model, state["params"], state["other"])
    model.eval()
    return run, model


def load_model(workdir: str, which: str = "best") -> Model | SupervisedModel:
    """The model of a run in eval mode (`load_run`)."""
    return load_run(workdir, which)[1]


def embed(workdir: str, the_zoo: zoo.Zoo | str, batch_size: int = 256) -> np.ndarray:
    """Embeddings [N, embedding_size] by a run's trained encoder of every snapshot of a zoo (a Zoo or its
    path; any zoo of the run's family)."""
    run, model = load_run(workdir)
    the_zoo = zoo.load(the_zoo) if isinstance(the_zoo, str) else the_zoo
    return batches.apply_in_batches(model.encoder, run.objective.encoder_inputs(the_zoo), batch_size)
