"""Adding a task family is one class and its registration: a toy family, defined and registered here,
goes through the whole smoke pipeline (zoo building, every objective, evaluation, reference rows,
tables and figures) with no change anywhere else.
"""

import dataclasses
import json
import os
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.analyses import tables
from weightspace import lstm, targets, tasks
from weightspace.tasks import base

NUM_DELAYS = 4
BLANK = 0


def _copy_targets(tokens: jax.Array, delay: jax.Array) -> jax.Array:
    """The tokens [..., T] delayed by `delay` steps, blank before: what a run of task `delay` outputs."""
    time = jnp.arange(tokens.shape[-1])
    delayed = jnp.take(tokens, jnp.clip(time - delay, 0), axis=-1)
    return jnp.where(time >= delay, delayed, BLANK)


@dataclasses.dataclass(frozen=True)
class DelayedCopy:
    """Toy family: an LSTM repeats its input tokens `delay` steps later (task: delay in 0 .. 3)."""

    name: ClassVar[str] = "delayed_copy"
    input_size: ClassVar[int] = 3
    output_size: ClassVar[int] = 3
    split_fields: ClassVar[tuple[str, ...]] = ("delay",)
    probe_length: ClassVar[int] = 6
    probe_activation: ClassVar[str] = "softmax"
    readout_uses_key: ClassVar[bool] = True
    table_columns: ClassVar[tuple] = (("delay_accuracy", "delay"), ("accuracy_r2", "accuracy R²"), ("cloning", "Δ"))
    oracle_target: ClassVar[str] = "delay"
    pca_colours: ClassVar[tuple] = ("delay", "accuracy", "copy accuracy")
    output_labels: ClassVar[tuple] = ("blank", "x", "y")

    length: int = 6
    batch_size: int = 8
    num_stored_sequences: int = 4

    def sample_tasks(self, seed: int, run_ids: np.ndarray) -> dict[str, np.ndarray]:
        return {"delay": (np.asarray(run_ids) + seed) % NUM_DELAYS}

    def data(self):
        return {}, {"source": "generated"}

    def split_score(self, tasks_: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(tasks_["delay"], np.float64)

    def probe_prior(self, probe_length: int, num_parallel: int) -> np.ndarray:
        raise ValueError("delayed_copy has no probing strings.")

    def emulation_data(self, behaviour):
        return {"inputs": behaviour["sequences"].astype(jnp.float32), "targets": behaviour["logits"]}

    def task_positions(self, data):
        return jnp.broadcast_to(jnp.arange(data["inputs"].shape[-2]) >= 1, data["inputs"].shape[:-1])

    def weight_decay(self, task):
        return jnp.float32(0.0)

    def _batch(self, key, delay, size: int):
        tokens = jax.random.randint(key, (size, self.length), 0, self.input_size)
        return {"inputs": jax.nn.one_hot(tokens, self.input_size), "labels": _copy_targets(tokens, delay)}

    def train_batch(self, key, task, data):
        return self._batch(key, task["delay"], self.batch_size)

    def loss(self, params, batch):
        logits, _ = lstm.apply(params, batch["inputs"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean()

    def performance(self, key, model, task, data):
        batch = self._batch(jax.random.key(7), task["delay"], 16)
        return jnp.mean(jnp.argmax(model.apply(batch["inputs"]), -1) == batch["labels"])

    def snapshot(self, key, params, task, data):
        batch = self._batch(key, task["delay"], self.num_stored_sequences)
        logits, _ = lstm.apply(params, batch["inputs"])
        behaviour = {"sequences": batch["inputs"].astype(jnp.float16), "logits": logits}
        return behaviour, {"accuracy": self.performance(key, lstm.Bound(params), task, data)}

    def downstream_targets(self, metadata):
        return [
            targets.Classes.of("delay", metadata["delay"], range(NUM_DELAYS)),
            targets.Regression("accuracy", np.asarray(metadata["accuracy"], np.float64)),
        ]

    def trained_snapshots(self, metadata):
        return base.later_half(metadata["step"])

    def readout(self, key, model, task, data):
        """The delay whose copy the model's outputs match best, and its accuracy."""
        batch = self._batch(jax.random.key(3), 0, 16)
        predicted = jnp.argmax(model.apply(batch["inputs"]), -1)
        tokens = jnp.argmax(batch["inputs"], -1)
        matches = jnp.stack([jnp.mean(predicted == _copy_targets(tokens, d)) for d in range(NUM_DELAYS)])
        return {"delay": jnp.argmax(matches)[None], "accuracy": self.performance(key, model, task, data)}

    def fixed_probe_features(self, model, data):
        tokens = jnp.arange(self.length) % self.input_size
        return jax.nn.log_softmax(model.apply(jax.nn.one_hot(tokens, self.input_size))).ravel()

    def probe_image(self, inputs):
        return np.asarray(inputs).T, self.output_labels


@pytest.mark.slow
def test_a_family_registered_from_outside_runs_the_whole_pipeline(tmp_path, monkeypatch):
    monkeypatch.setitem(tasks.FAMILIES, DelayedCopy.name, DelayedCopy)
    monkeypatch.setenv("WEIGHTSPACE_ZOOS", str(tmp_path / "zoos"))
    outdir = str(tmp_path / "tables")
    result = tables.make_tables(
        outdir,
        "smoke",
        (DelayedCopy.name,),
        seeds=1,
        encoders=("layerwise_statistics", "interactive"),
        supervised_targets=("delay",),
        oracle=True,
    )
    assert os.path.exists(tmp_path / "zoos" / "delayed_copy_smoke" / "zoo" / "COMPLETE")
    text = (tmp_path / "tables" / "tables.md").read_text()
    assert "delayed_copy, OOD split, mlp probe" in text and "accuracy R²" in text
    cells = json.loads((tmp_path / "tables" / "results.json").read_text())["cells"]
    assert set(cells) == set(result["cells"])
    ood_delay = [key for key in cells if key.startswith("delayed_copy/ood/mlp/") and key.endswith("/delay_accuracy")]
    rows = {tuple(key.split("/")[3:5]) for key in ood_delay}
    expected = {("emulation", "layerwise_statistics"), ("emulation", "interactive"), ("supervised", "interactive")}
    expected |= {("reference", "readout"), ("reference", "fixed_probe")}
    assert expected <= rows, rows
    assert all(0 <= cell["mean"] <= 1 for key, cell in cells.items() if key.endswith("/delay_accuracy"))
    assert any(key.startswith("delayed_copy/ood/mlp/oracle/delay/") for key in cells)
    assert len(result["figures"]) == 5 and all(os.path.exists(p) for p in result["figures"])
