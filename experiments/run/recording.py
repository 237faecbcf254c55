"""What a training run keeps as it goes, for every member of a sweep: the logged rows (`metrics.jsonl` and
TensorBoard side by side, both from the same row), the latest and best checkpoints, and the one-line
errors that stop a run on a non-finite number, naming where it can resume from.
"""

import contextlib
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from experiments.run import layout, workdirs
from weightspace import checkpointing, metrics, multihost, tensorboard
from weightspace.types import PyTree


def stack(trees: list[PyTree]) -> PyTree:
    """Trees of one structure stacked along a new leading (member) axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def member_state(state: PyTree, member: int) -> PyTree:
    """One member's state, as a single run's, from a sweep's state with a leading member axis."""
    return jax.tree.map(lambda x: x[member], state)


def member_name(paths: list[str], member: int) -> str:
    """ ", member <i> (<workdir>)" in a sweep's messages; nothing for a single run."""
    return f", member {member} ({paths[member]})" if len(paths) > 1 else ""


def tensorboard_scalars(row: dict[str, float]) -> dict[str, float]:
    """A metrics row as TensorBoard tags: the losses side by side under "loss/" (`train_loss` is
    "loss/train", `ood_boundary_loss` "loss/ood_boundary"), the rest under "train/" ("train/grad_norm",
    "train/steps_per_s"); the step is the events' own, and "time" is left out (events record their time)."""
    return {
        f"loss/{name.removesuffix('_loss')}" if name.endswith("_loss") else f"train/{name}": value
        for name, value in row.items()
        if name not in ("step", "time")
    }


def last_good(latest: checkpointing.CheckpointManager) -> str:
    """Where a stopped run can resume from: the latest checkpoint that exists, or that none does."""
    latest.wait()
    step = latest.latest_step()
    if step is None:
        return f"no checkpoint was saved yet ({latest.directory} is empty): rerun from the start."
    return f"the last good checkpoint is step {step} in {latest.directory}."


class Recorder(contextlib.ExitStack):
    """The files a sweep's members write while they train (a context manager: it closes them all).

    Attributes:
      latest, best: each member's checkpoint managers (`layout.checkpoints(path, "latest" | "best")`).
    """

    def __init__(self, paths: list[str]):
        """Opens the checkpoints of the members at `paths` (their event files open at `start`)."""
        super().__init__()
        self.paths = paths
        self.latest = [checkpointing.CheckpointManager(layout.checkpoints(p, "latest")) for p in paths]
        self.best = [checkpointing.CheckpointManager(layout.checkpoints(p, "best")) for p in paths]
        for manager in (*self.latest, *self.best):
            self.callback(manager.close)
        self.events = []

    def start(self, step: int) -> None:
        """Drops the logged rows after `step`, the step training starts from, and opens the event files there."""
        if multihost.is_primary():
            for path in self.paths:
                metrics.drop_after(layout.run_file(path, layout.METRICS), step)
        self.events = [
            self.enter_context(tensorboard.EventWriter(os.path.join(p, tensorboard.DIRECTORY), resumed_step=step))
            for p in self.paths
        ]

    def train_rows(self, fetched: list[dict], step: int) -> list[dict[str, float]]:
        """Each member's mean train loss, gradient norm and the terms its model records (`Trainer._train_loss`)
        over the steps of `fetched` (each {name: [M]}), refusing a non-finite one: [{"step", "train_loss",
        "grad_norm", ...}, ...]."""
        values = {k: np.stack([m[k] for m in fetched], axis=1) for k in fetched[0]}  # [M, steps]
        for member in range(len(self.paths)):
            if not all(np.all(np.isfinite(v[member])) for v in values.values()):
                raise workdirs.TrainingError(
                    f"Non-finite training loss or gradient norm before step {step}"
                    f"{member_name(self.paths, member)} (loss {values['loss'][member][-5:]}, grad norm "
                    f"{values['grad_norm'][member][-5:]}); {last_good(self.latest[member])}"
                )
        names = {"loss": "train_loss"}
        return [
            {"step": step, **{names.get(k, k): float(v[m].mean()) for k, v in values.items()}}
            for m in range(len(self.paths))
        ]

    def check_finite(self, row: dict[str, float], member: int, step: int) -> None:
        """Refuses a member's evaluated row holding a non-finite loss, naming where it can resume."""
        non_finite = [k for k, v in row.items() if not np.isfinite(v)]
        if non_finite:
            raise workdirs.TrainingError(
                f"Non-finite {', '.join(non_finite)} at step {step}{member_name(self.paths, member)}; "
                f"{last_good(self.latest[member])}"
            )

    def save_best(self, state: PyTree, rows: list[dict[str, float]], members: list[int], step: int) -> None:
        """Saves these members' states as their best, with their eval losses (`rows`)."""
        for m in members:
            self.best[m].save(step, member_state(state, m), metrics={"eval_loss": rows[m]["eval_loss"]})

    def log(self, rows: list[dict[str, float]], rate: float, eta: str, num_steps: int) -> None:
        """Appends each member's row to its `metrics.jsonl` and TensorBoard events (process 0), and logs it."""
        if multihost.is_primary():
            for member, path in enumerate(self.paths):
                row = {**rows[member], "steps_per_s": round(rate, 3), "time": time.time()}
                metrics.append(layout.run_file(path, layout.METRICS), row)
                self.events[member].scalars(row["step"], tensorboard_scalars(row))
        for member, row in enumerate(rows):
            logging.info(
                "step %d/%d | %.2f steps/s | ETA %s | %s%s",
                row["step"], num_steps, rate, eta,
                " ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "step"),
                member_name(self.paths, member),
            )  # fmt: skip

    def save_latest(self, state: PyTree, step: int) -> None:
        """Saves every member's state as its latest checkpoint."""
        for member, manager in enumerate(self.latest):
            manager.save(step, member_state(state, member))
