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
  this family (22 softmax token distributions; 50 sigmoid tiles), and
  `probe_prior(probe_length, num_parallel)`: real inputs the probes may start
  from (formal languages: one-hot strings; a family without raises), and
  `probe_policy()`: a hand-written adaptive prober (`ProbePolicy`) the
  interactive encoder's probes may start from (combination locks: the
  adaptive search; a family without raises);
* `split_fields` and `split_score(tasks)` (host): which task fields identify a
  task for the train / eval / OOD split, and the score whose highest values are
  out of distribution (formal languages: the entropy criterion; MNIST: angle);
* `emulation_data(behaviour)`: from stored behaviour with any leading axes, the
  emulator's inputs [..., time, input_size], the targets (log-probs or logits,
  [..., time, output_size]) and, where the outputs predict the next input
  token, those tokens [..., time].
  `task_positions(data)` marks the positions of that data whose targets
  depend on the task (formal languages: block boundaries and EOS), where the
  evaluation also reports the emulation loss alone ("boundary loss");
* optionally `emulation_probes()` (host): fixed inputs [K, time, input_size] the
  emulation loss may be scored on instead of the stored sequences
  (`emulate_on="probe_set"`; sequential MNIST: digits at every angle), the
  LSTM's outputs on them computed from its weights;

For downstream evaluation (design §5), a family also says

* `downstream_targets(metadata)` (host): what an embedding should predict
  about each snapshot (`weightspace.targets`), from the zoo's metadata columns;
* `performance(key, model, task, data)`: the snapshot's score on its task
  (formal languages: fraction of sampled sequences that are correct; MNIST:
  eval accuracy) for any `SequenceModel` -- the zoo LSTM itself
  (`lstm.Bound`) or an emulator conditioned on its embedding, which is how
  cloning is scored exactly like the original;
* `trained_snapshots(metadata)` (host): which snapshots count as trained, for
  the scores reported on trained snapshots only (both families: `later_half`,
  the later half of the snapshot steps);

and for the reference rows of the results tables (`experiments/analyses/references.py`),
which need no learned encoder:

* `readout(key, model, task, data)`: the downstream targets read off the
  model's behaviour by their definition, with no learning (formal languages:
  the task from the words it writes greedily; MNIST: the angle at which it
  classifies best); a target without such a definition (the training step)
  has no readout; `readout_uses_key` says whether it draws random numbers
  (formal languages score performance by sampling; MNIST's readout is
  deterministic, and is computed once for all probe seeds);
* `fixed_probe_features(model, data)`: the model's outputs on a fixed,
  hand-written set of probing inputs, as features for the same downstream
  probes that read the encoders' embeddings.

For the results tables and figures (`experiments/analyses/tables.py`, `figures.py`),
which name no family, a family also says

* `table_columns`: the evaluation metrics shown as table columns,
  (metric in evaluation.json, its name in the tables);
* `oracle_target`: the downstream target the task oracle embeds (its exact task);
* `pca_colours`: (label of `split_score`, metadata column of performance,
  its label), the two colourings of the embedding PCA;
* `output_labels`: a name per LSTM output (tokens, digits);
* `probe_image(inputs)`: a probing input sequence [probe_length, input_size]
  as an image, with a label per image row (None for none).

Everything but `sample_tasks`, `data`, `split_score`, `downstream_targets`, `trained_snapshots` and
`probe_image` must be jittable and is written for one run. Every task field becomes a per-snapshot
metadata column of the zoo.
"""

from typing import Any, Protocol

import jax
import numpy as np

from weightspace import targets
from weightspace.types import Params, PRNGKey, PyTree

Task = dict[str, jax.Array]


def later_half(steps: np.ndarray) -> np.ndarray:
    """Whether each snapshot's step [N] is in the later half of the zoo's distinct snapshot steps: [N] bool.

    Of K distinct steps the last max(1, K // 2) count: the quick zoos' 500 and
    1000 of 0/100/200/500/1000, the paper zoos' 2000 to 20000. Early snapshots
    (random init, the first few hundred steps) have not learnt their task yet,
    so a readout of the task is not defined by their behaviour.
    """
    steps = np.asarray(steps)
    unique = np.unique(steps)
    return np.isin(steps, unique[len(unique) - max(1, len(unique) // 2) :])


def check_settings(
    family: Any, minimums: dict[str, float], fractions: tuple[str, ...] = (), extra: tuple[str, ...] = ()
) -> None:
    """Refuses a family's settings below their minimums or fractions outside [0, 1], naming every one.

    Args:
      family: the family (a dataclass whose fields are its settings).
      minimums: {setting: smallest allowed value}.
      fractions: settings that must lie in [0, 1].
      extra: further problems the family found itself, each a phrase naming its setting.
    """
    problems = [f"{name}={getattr(family, name)!r} must be at least {low}" for name, low in minimums.items()]
    problems = [
        p for p, (name, low) in zip(problems, minimums.items(), strict=True) if not getattr(family, name) >= low
    ]
    problems += [f"{name}={getattr(family, name)!r} must be in [0, 1]" for name in fractions
                 if not 0.0 <= getattr(family, name) <= 1.0]  # fmt: skip
    problems += list(extra)
    if problems:
        raise ValueError(f"{family.name} settings: " + "; ".join(problems) + ".")


def task_columns(family: "TaskFamily", metadata: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every snapshot's task from a zoo's metadata columns: {task field: [N, ...]}.

    The task fields are those `sample_tasks` returns (`split_fields` may name only some of them: a
    combination lock is split by its code, but scoring it needs its label too).
    """
    fields = family.sample_tasks(0, np.zeros(1, np.uint32))
    return {name: np.asarray(metadata[name]) for name in fields}


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


class ProbePolicy(Protocol):
    """A hand-written adaptive prober: each probing input chosen from the answers so far (pure JAX, vmappable)."""

    def initial_state(self) -> PyTree:
        """The state before the first probe."""
        ...

    def propose(self, state: PyTree) -> jax.Array:
        """The next probing input [input_size]."""
        ...

    def update(self, state: PyTree, probe: jax.Array, answer: jax.Array) -> PyTree:
        """The state after the model answered `answer` (its logits [output_size]) to the input `probe`
        [input_size]: `propose(state)`, or another prober's input when the policy follows its dialogue."""
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

    def probe_prior(self, probe_length: int, num_parallel: int) -> np.ndarray:
        """Real probing inputs [probe_length, num_parallel, input_size] for probes to start from."""
        ...

    def probe_policy(self) -> ProbePolicy:
        """A hand-written adaptive prober for the interactive encoder's probes to start from."""
        ...

    def emulation_data(self, behaviour: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """{"inputs", "targets"[, "tokens"]} for the emulator from stored behaviour."""
        ...

    def task_positions(self, data: dict[str, jax.Array]) -> jax.Array:
        """[..., time] bool: where `emulation_data`'s targets depend on the task (the "boundary loss")."""
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

    def trained_snapshots(self, metadata: dict[str, np.ndarray]) -> np.ndarray:
        """Which snapshots [N] count as trained (bool), from the zoo's metadata columns."""
        ...

    readout_uses_key: bool

    def readout(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree) -> dict[str, jax.Array]:
        """Targets read off the model's behaviour without learning: {target name: prediction}.

        Predictions are what the target's `decode` gives (class indices [K], -1 for none; a real; degrees).
        `task` may be used only where a target's definition needs it (e.g. performance on the run's task).
        """
        ...

    def fixed_probe_features(self, model: SequenceModel, data: PyTree) -> jax.Array:
        """The model's outputs on the family's fixed probing inputs, as features [F]."""
        ...

    table_columns: tuple[tuple[str, str], ...]
    oracle_target: str
    pca_colours: tuple[str, str, str]
    output_labels: tuple[str, ...]

    def probe_image(self, inputs: np.ndarray) -> tuple[np.ndarray, tuple[str, ...] | None]:
        """A probing input sequence [probe_length, input_size] as an image [rows, columns] and its row labels."""
        ...
