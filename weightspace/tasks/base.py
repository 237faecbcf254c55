"""The interface through which a family of tasks plugs into the zoo builder.

A zoo is made of *runs*: each run trains one LSTM on one task of a family. The
builder knows nothing about any particular family; it calls only this
interface, vmapped over the runs of a group:

* `sample_tasks(seed, run_ids)` (host, NumPy): the task of every run, as a dict
  of arrays with a leading run axis. A run's task depends only on `seed` and
  its run id, so a zoo can be rebuilt with any grouping or device count.
* `weight_decay(task)`: the run's AdamW weight decay (a family may draw it
  per run and keep it in the task).
* `data()` (host): `(arrays, info)`: arrays the jitted functions read, e.g. a
  family's images, which the builder places once on every device and passes
  back as `data` (an empty dict when a family needs none), and a JSON-able
  description of them that the zoo records (e.g. the data source).
* `train_batch(key, task, data)` and `loss(params, batch)`: one training batch
  for a run's task, made on device inside the jitted step, and its loss.
* `snapshot(key, params, task, data)`: the behaviour and metrics kept for a snapshot:
  `(behaviour, metrics)`, two dicts of arrays (behaviour: sequences and the
  LSTM's outputs on them; metrics: scalars such as the fraction correct).
* `input_size` / `output_size`: the sizes of the LSTM the family trains.

For encoder training on a finished zoo, a family also says

* `probe_length` and `probe_activation`: the probing encoders' defaults for
  this family (22 softmax token distributions; 50 sigmoid tiles);
* `split_fields` and `split_score(tasks)` (host): which task fields identify a
  task for the train / eval / OOD split, and the score whose highest values are
  out of distribution (formal languages: the entropy criterion; MNIST: angle);
* `emulation_data(behaviour)`: from stored behaviour with any leading axes, the
  emulator's inputs [..., time, input_size], the targets (log-probs or logits,
  [..., time, output_size]) and, where the outputs predict the next input
  token, those tokens [..., time].

For downstream evaluation (design §5), a family also says

* `downstream_targets(metadata)` (host): what an embedding should predict
  about each snapshot (`weightspace.targets`), from the zoo's metadata columns;
* `performance(key, model, task, data)`: the snapshot's score on its task
  (formal languages: fraction of sampled sequences that are correct; MNIST:
  eval accuracy) for any `SequenceModel` -- the zoo LSTM itself
  (`lstm.Bound`) or an emulator conditioned on its embedding, which is how
  cloning is scored exactly like the original.

Everything but `sample_tasks`, `data`, `split_score` and `downstream_targets` must be jittable and is written for
one run. Every task field becomes a per-snapshot metadata column of the zoo.
"""

from typing import Any, Protocol

import jax
import numpy as np

from weightspace import targets
from weightspace.types import Params, PRNGKey, PyTree

Task = dict[str, jax.Array]


class SequenceModel(Protocol):
    """A recurrent model a family can score: `lstm.Bound` or `emulator.Conditioned`."""

    def initial_state(self) -> Any:
        """The state of one sequence before its first input."""
        ...

    def step(self, x: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        """One sequence, one step: input [input_size] -> (logits [output_size], new state)."""
        ...

    def apply(self, inputs: jax.Array) -> jax.Array:
        """Logits [..., time, output_size] on inputs [..., time, input_size], from the initial state."""
        ...


class TaskFamily(Protocol):
    """A family of related tasks that a zoo's runs are drawn from."""

    name: str
    input_size: int
    output_size: int

    def sample_tasks(self, seed: int, run_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Task of each run in `run_ids` [runs]: arrays with leading axis [runs]."""
        ...

    def data(self) -> tuple[PyTree, dict]:
        """Host arrays that `train_batch` and `snapshot` read (replicated on every device), and their description."""
        ...

    split_fields: tuple[str, ...]
    probe_length: int
    probe_activation: str

    def split_score(self, tasks: dict[str, np.ndarray]) -> np.ndarray:
        """Score [num_tasks] of unique tasks (`split_fields`, leading axis [num_tasks]); the highest are OOD."""
        ...

    def emulation_data(self, behaviour: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """{"inputs", "targets"[, "tokens"]} for the emulator from stored behaviour."""
        ...

    def weight_decay(self, task: Task) -> jax.Array:
        """The run's AdamW weight decay, a scalar."""
        ...

    def train_batch(self, key: PRNGKey, task: Task, data: PyTree) -> PyTree:
        """One training batch for the run's task."""
        ...

    def loss(self, params: Params, batch: PyTree) -> jax.Array:
        """Mean training loss of the run's LSTM on `batch`, a scalar."""
        ...

    def snapshot(
        self, key: PRNGKey, params: Params, task: Task, data: PyTree
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """(behaviour, metrics) of the run's LSTM at a snapshot."""
        ...

    def downstream_targets(self, metadata: dict[str, np.ndarray]) -> list[targets.Target]:
        """The family's targets for downstream evaluation (the training step is added for every family)."""
        ...

    def performance(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree) -> jax.Array:
        """The model's score on the task, a scalar (the snapshot metric the family records)."""
        ...
