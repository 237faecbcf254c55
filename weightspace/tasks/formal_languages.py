"""Counting languages over a, b, c, d (the paper's formal-language zoo).

A task is a vector of occurrence differences `(0, d1, d2, d3)` with every
`d in {-3, ..., 2}` (216 tasks). Its language is
`a^n b^(n+d1) c^(n+d2) d^(n+d3)`, n >= max(0, -min(d)); training strings use n
uniform in `[max(0, -min(d)), max_n)`. Sequences are BOS followed by
`length - 1` tokens: the string, EOS, then EOS padding (cut off at the end,
without EOS, when the string is too long). Tokens: a=0, b=1, c=2, d=3, BOS=4,
EOS=5; inputs are one-hot.
"""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from weightspace import lstm, targets
from weightspace.tasks.base import SequenceModel, Task, check_settings, later_half
from weightspace.types import Params, PRNGKey, PyTree

NUM_LETTERS = 4
BOS = 4
EOS = 5
VOCAB_SIZE = 6
TOKEN_NAMES = ("a", "b", "c", "d", "BOS", "EOS")
DIFFERENCES = tuple(range(-3, 3))
# All 216 tasks, [216, 4], in lexicographic order of (d1, d2, d3).
ALL_TASKS = np.array([(0, *d) for d in itertools.product(DIFFERENCES, repeat=3)], np.int32)
# Block lengths (#a, #b, #c, #d) of the strings the probing encoders' probes may start from
# (`probe_prior`): the a-block fixes n, and the b-block of the first one spans every d1 (P(c) along it
# peaks where #b = n + d1).
PRIOR_BLOCKS = ((4, 6, 6, 6), (4, 2, 2, 2), (3, 5, 4, 5), (5, 4, 6, 3))
# The readout's prompts BOS a^n, in order of preference on ties. Every task's training strings have n in
# [max(0, -min d), max_n), which holds 3, 4 and 5 for every task (-min d <= 3 < 5 < max_n = 10), so each
# prompt has a correct continuation whatever the task; three prompts let a majority outvote one slip.
READOUT_PROMPTS = (4, 3, 5)
# The fixed probe's strings (#a, #b, #c, #d), BOS first and EOS-padded to FIXED_PROBE_LENGTH tokens:
# a^4 b^(4+d) c^(4+d) d^(4+d) for every difference d. Along them each block's length sweeps 4 + every
# difference, so where the LSTM expects a block to end (the next letter or EOS) shows its task's difference
# there, as far as the blocks before were right for it. Of the designs tried on the quick zoo's train / eval
# split (up to 16 strings: four mixed strings, one block swept with the others fixed, grids and Latin
# squares of (#b, #c), this diagonal for n = 3, 4 and 5), it read (d1, d2, d3) best or within noise of the
# best with the fewest strings. d3 stays hard for any small set: a string shows d3 only when both its b- and
# c-blocks are right for the task (36 combinations).
FIXED_PROBE_BLOCKS = tuple((4, 4 + d, 4 + d, 4 + d) for d in DIFFERENCES)
FIXED_PROBE_LENGTH = 30


def check_tasks(tasks: np.ndarray) -> np.ndarray:
    """Validates tasks [..., 4] on the host; returns them as int32."""
    tasks = np.asarray(tasks)
    if tasks.shape[-1:] != (NUM_LETTERS,):
        raise ValueError(f"A formal-language task has {NUM_LETTERS} entries, got shape {tasks.shape}.")
    bad = (tasks[..., 0] != 0) | np.any((tasks < DIFFERENCES[0]) | (tasks > DIFFERENCES[-1]), axis=-1)
    if np.any(bad):
        first = tasks.reshape(-1, NUM_LETTERS)[np.flatnonzero(bad.reshape(-1))[0]]
        raise ValueError(
            f"Task {first.tolist()} out of range: tasks are (0, d1, d2, d3) with d in {list(DIFFERENCES)}."
        )
    return tasks.astype(np.int32)


def task_entropy(tasks: np.ndarray) -> np.ndarray:
    """The split criterion: entropy of `1 + d - min(d)` normalised, [...]."""
    v = 1.0 + tasks - tasks.min(axis=-1, keepdims=True)
    p = v / v.sum(axis=-1, keepdims=True)
    return -(p * np.log(p)).sum(axis=-1)


def string_sequence(n: jax.Array, task: jax.Array, length: int) -> jax.Array:
    """BOS + the string of `task` with parameter `n`, EOS-padded/cut to `length`: [length]."""
    ends = jnp.cumsum(n + task)  # [4] end position of each letter's block
    position = jnp.arange(length - 1)
    letter = jnp.sum(position[:, None] >= ends[None, :], axis=1)  # 4 once past the last block
    tokens = jnp.where(letter == NUM_LETTERS, EOS, letter)
    return jnp.concatenate([jnp.array([BOS]), tokens]).astype(jnp.int32)


def parse_word(tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The block counts of the word in `tokens` [time] (after BOS), and whether it is one.

    A word is the tokens before the first EOS when there is an EOS and they
    are letters in order a*b*c*d*.

    Returns:
      (counts of a, b, c, d before the first EOS [4], whether the tokens form a word []).
    """
    is_eos = tokens == EOS
    has_eos = jnp.any(is_eos)
    before = jnp.arange(tokens.shape[0]) < jnp.argmax(is_eos)
    letters_only = jnp.all(jnp.where(before, tokens < NUM_LETTERS, True))
    ordered = jnp.all(jnp.where(before[1:], tokens[1:] >= tokens[:-1], True))
    counts = jnp.sum(before[:, None] & (tokens[:, None] == jnp.arange(NUM_LETTERS)), axis=0)
    return counts, has_eos & letters_only & ordered


def is_correct(tokens: jax.Array, task: jax.Array) -> jax.Array:
    """Whether sampled `tokens` [time] (after BOS) form a word of the task's language.

    Correct means: a word (`parse_word`) whose counts are `n + task` for one
    n >= 0 (which also keeps every count non-negative).
    """
    counts, is_word = parse_word(tokens)
    return is_word & jnp.all(counts - task == counts[0] - task[0])


def _unroll(model: SequenceModel, num: int, length: int, choose, per_step: PyTree = None) -> tuple[jax.Array, ...]:
    """Runs `num` sequences of a model from BOS, each next token picked by `choose`.

    Args:
      choose: (position of the token [], the model's log-softmax [num, vocab], this step's `per_step`) ->
        tokens [num]; positions run from 1 to length - 1.
      per_step: a pytree with leading axis [length - 1], one entry per step (e.g. sampling keys).

    Returns:
      tokens [num, length] (BOS first) and the model's log-softmax at every
      input position [num, length - 1, vocab].
    """
    step = jax.vmap(model.step)
    state = jax.tree.map(lambda s: jnp.broadcast_to(s, (num, *s.shape)), model.initial_state())

    def one_step(carry, inputs):
        token, state = carry
        logits, state = step(jax.nn.one_hot(token, VOCAB_SIZE), state)
        log_probs = jax.nn.log_softmax(logits)
        token = choose(*inputs, log_probs).astype(jnp.int32)
        return (token, state), (token, log_probs)

    bos = jnp.full((num,), BOS, jnp.int32)
    positions = jnp.arange(1, length)
    _, (tokens, log_probs) = jax.lax.scan(one_step, (bos, state), (positions, per_step))
    tokens = jnp.concatenate([bos[None], tokens]).T
    return tokens, jnp.swapaxes(log_probs, 0, 1)


def sample(key: PRNGKey, model: SequenceModel, num: int, length: int) -> tuple[jax.Array, jax.Array]:
    """Samples `num` sequences from a model (e.g. `lstm.Bound(params)`) autoregressively, starting at BOS.

    Returns:
      tokens [num, length] (BOS first) and the model's log-softmax at every
      input position [num, length - 1, vocab].
    """
    choose = lambda position, step_key, log_probs: jax.random.categorical(step_key, log_probs)
    return _unroll(model, num, length, choose, jax.random.split(key, length - 1))


def greedy_words(model: SequenceModel, num_a: jax.Array, length: int) -> jax.Array:
    """The model's greedy (argmax) continuation of BOS a^n for every n in `num_a` [P]: tokens [P, length].

    Tokens 1..n are forced to `a`; every later one is the model's most likely next token.
    """
    choose = lambda position, _, log_probs: jnp.where(position <= num_a, 0, jnp.argmax(log_probs, axis=-1))
    return _unroll(model, num_a.shape[0], length, choose)[0]


def read_task(model: SequenceModel, length: int) -> jax.Array:
    """The task a model's greedy words show: class indices [3] of (d1, d2, d3) into `DIFFERENCES`, -1 for none.

    For each prompt BOS a^n of `READOUT_PROMPTS` the model writes its greedy
    continuation (`length` tokens with BOS); the word before its first EOS
    gives (#b - #a, #c - #a, #d - #a). A continuation that is not a word
    a*b*c*d* followed by EOS gives nothing. The answer is the differences that
    most prompts agree on, ties going to the earlier prompt in
    `READOUT_PROMPTS`; a difference outside `DIFFERENCES` (or no word at all)
    is -1, which no class matches.
    """
    tokens = greedy_words(model, jnp.asarray(READOUT_PROMPTS), length)
    counts, is_word = jax.vmap(parse_word)(tokens[:, 1:])  # [P, 4], [P]
    differences = counts[:, 1:] - counts[:, :1]  # [P, 3]
    agree = jnp.all(differences[:, None] == differences[None], axis=-1) & is_word[:, None] & is_word[None]
    votes = jnp.sum(agree, axis=1)  # 0 for a prompt without a word
    choice = jnp.argmax(votes)  # the first of the most agreed-on
    index = differences[choice] - DIFFERENCES[0]
    valid = (votes[choice] > 0) & (index >= 0) & (index < len(DIFFERENCES))
    return jnp.where(valid, index, -1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class FormalLanguages:
    """The formal-language task family (see the module docstring)."""

    # Sequence length including BOS.
    length: int = 42
    # Training strings use n uniform in [max(0, -min(d)), max_n).
    max_n: int = 10
    # Strings per training batch.
    batch_size: int = 32
    # AdamW weight decay of every run.
    weight_decay_value: float = 1e-4
    # Sequences kept per snapshot (with their log-probs).
    num_stored_sequences: int = 100
    # Sequences sampled per snapshot to measure the fraction correct.
    num_scored_sequences: int = 1000
    # Assign tasks by cycling through a freshly shuffled list of all tasks
    # (as many distinct tasks as runs allow) instead of drawing each run's
    # task independently.
    cycle_tasks: bool = False

    name = "formal_languages"
    input_size = VOCAB_SIZE
    output_size = VOCAB_SIZE
    split_fields = ("task",)
    # Probing encoders: probing steps, and how a probing input is made (a distribution over tokens).
    probe_length = 22
    probe_activation = "softmax"
    # The readout samples from the LSTM to score its performance.
    readout_uses_key = True
    # Results tables and figures (`experiments/report/runs.py` marks each column ↑ or ↓).
    table_columns = (
        ("task_accuracy", "task acc"),
        ("task_d1_accuracy", "d1 acc"),
        ("task_d2_accuracy", "d2 acc"),
        ("task_d3_accuracy", "d3 acc"),
        ("performance_r2", "performance R²"),
        ("performance_mae", "performance MAE"),
        ("step_accuracy", "step acc"),
        ("log_step_r2", "log step R²"),
        ("cloning", "cloning Δ"),
        ("good_clones", "good clones"),
        ("loss", "emulation loss"),
        ("boundary_loss", "boundary loss"),
    )
    oracle_target = "task"
    pca_colours = ("task entropy", "correct", "fraction correct")
    output_labels = TOKEN_NAMES

    def probe_image(self, inputs: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """Token probabilities [tokens, probing steps], a row per token."""
        return np.asarray(inputs).T, TOKEN_NAMES

    def __post_init__(self):
        minimums = dict(length=2, max_n=1, batch_size=1, num_stored_sequences=1, weight_decay_value=0.0)
        extra = ("num_stored_sequences must not exceed num_scored_sequences",)
        check_settings(self, minimums, extra=extra if self.num_stored_sequences > self.num_scored_sequences else ())

    def sample_tasks(self, seed: int, run_ids: np.ndarray) -> dict[str, np.ndarray]:
        tasks = []
        for run in np.asarray(run_ids, np.int64):
            if self.cycle_tasks:
                cycle, position = divmod(int(run), len(ALL_TASKS))
                order = np.random.default_rng([seed, cycle]).permutation(len(ALL_TASKS))
                tasks.append(ALL_TASKS[order[position]])
            else:
                tasks.append(ALL_TASKS[np.random.default_rng([seed, int(run)]).integers(len(ALL_TASKS))])
        return {"task": np.stack(tasks).reshape(-1, NUM_LETTERS)}

    def split_score(self, tasks: dict[str, np.ndarray]) -> np.ndarray:
        return task_entropy(check_tasks(tasks["task"]))

    def probe_prior(self, probe_length: int, num_parallel: int) -> np.ndarray:
        """One-hot real strings for probes to start from: [probe_length, num_parallel, VOCAB_SIZE].

        Parallel sequence p is BOS + a^n b^m c^k d^l of `PRIOR_BLOCKS[p % 4]`, EOS-padded or cut.
        """
        strings = [
            string_sequence(jnp.int32(0), jnp.asarray(PRIOR_BLOCKS[p % len(PRIOR_BLOCKS)]), probe_length)
            for p in range(num_parallel)
        ]
        return np.eye(VOCAB_SIZE, dtype=np.float32)[np.stack(strings, axis=1)]

    def probe_policy(self):
        """Not defined: no hand-written adaptive prober (the probes may start from `probe_prior`)."""
        raise ValueError("Formal languages have no probing policy to start probes from: keep prior_policy False.")

    def emulation_data(self, behaviour: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """One-hot inputs at positions 0..L-2, the LSTM's log-probs there, and the next tokens."""
        sequences = behaviour["sequences"].astype(jnp.int32)
        return {
            "inputs": jax.nn.one_hot(sequences[..., :-1], VOCAB_SIZE),
            "targets": behaviour["log_probs"].astype(jnp.float32),
            "tokens": sequences[..., 1:],
        }

    def task_positions(self, data: dict[str, jax.Array]) -> jax.Array:
        """Where the next-token distribution depends on the task: [..., time] bool.

        Those are the positions whose next token (in `emulation_data`) starts a new block or ends the word.
        Everywhere else a trained LSTM continues its block whatever its task (and BOS is always followed by a).
        """
        current = jnp.argmax(data["inputs"], axis=-1)
        return (data["tokens"] != current) & (current != BOS)

    def data(self) -> tuple[dict, dict]:
        return {}, {}  # strings are generated on device

    def weight_decay(self, task: Task) -> jax.Array:
        return jnp.float32(self.weight_decay_value)

    def train_batch(self, key: PRNGKey, task: Task, data: PyTree = None) -> jax.Array:
        """[batch_size, length] token sequences of the task's language."""
        task = task["task"]
        low = jnp.maximum(0, -jnp.min(task))
        n = jax.random.randint(key, (self.batch_size,), low, self.max_n)
        return jax.vmap(string_sequence, in_axes=(0, None, None))(n, task, self.length)

    def loss(self, params: Params, batch: jax.Array) -> jax.Array:
        """Next-token cross-entropy over all positions after BOS."""
        inputs = jax.nn.one_hot(batch[:, :-1], VOCAB_SIZE)
        logits, _ = lstm.apply(params, inputs)
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_probs, batch[:, 1:, None], axis=-1))

    def downstream_targets(self, metadata: dict[str, np.ndarray]) -> list[targets.Target]:
        """The exact task (d1, d2, d3, each 6-way) and the performance (fraction correct)."""
        return [
            targets.Classes.of("task", np.asarray(metadata["task"])[:, 1:], DIFFERENCES, ("d1", "d2", "d3")),
            targets.Regression("performance", np.asarray(metadata["correct"], np.float64)),
        ]

    def performance(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree = None) -> jax.Array:
        """Fraction of `num_scored_sequences` sequences sampled from the model that are correct."""
        return self._sample_and_score(key, model, task)[2]

    def trained_snapshots(self, metadata: dict[str, np.ndarray]) -> np.ndarray:
        """The later half of the snapshot steps (`base.later_half`)."""
        return later_half(metadata["step"])

    def readout(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree = None) -> dict[str, jax.Array]:
        """The task from the model's greedy words (`read_task`, no use of `task`), and its performance.

        Performance is read by its definition: `performance` with `key` (on the
        run's task, which that definition needs).
        """
        return {"task": read_task(model, self.length), "performance": self.performance(key, model, task)}

    def fixed_probe_features(self, model: SequenceModel, data: PyTree = None) -> jax.Array:
        """The model's next-token log-probabilities along the strings of `FIXED_PROBE_BLOCKS`: [S * 30 * 6].

        Each string is BOS a^n b^m c^k d^l, EOS-padded to `FIXED_PROBE_LENGTH` tokens, one-hot.
        """
        blocks = jnp.asarray(FIXED_PROBE_BLOCKS)
        tokens = jax.vmap(string_sequence, in_axes=(None, 0, None))(jnp.int32(0), blocks, FIXED_PROBE_LENGTH)
        return jax.nn.log_softmax(model.apply(jax.nn.one_hot(tokens, VOCAB_SIZE))).ravel()

    def _sample_and_score(self, key: PRNGKey, model: SequenceModel, task: Task) -> tuple[jax.Array, ...]:
        tokens, log_probs = sample(key, model, self.num_scored_sequences, self.length)
        correct = jax.vmap(is_correct, in_axes=(0, None))(tokens[:, 1:], task["task"])
        return tokens, log_probs, jnp.mean(correct.astype(jnp.float32))

    def snapshot(
        self, key: PRNGKey, params: Params, task: Task, data: PyTree = None
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """Samples `num_scored_sequences` to score the LSTM; keeps the first `num_stored_sequences`."""
        tokens, log_probs, correct = self._sample_and_score(key, lstm.Bound(params), task)
        kept = slice(0, self.num_stored_sequences)
        behaviour = {"sequences": tokens[kept].astype(jnp.int16), "log_probs": log_probs[kept].astype(jnp.float16)}
        return behaviour, {"correct": correct}
