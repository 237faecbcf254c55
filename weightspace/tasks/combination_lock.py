"""Combination locks: the task family on which interactive probing provably beats any fixed probe.

A run's task is a lock: a secret code `s` of `code_length` (m) symbols over an alphabet of
`alphabet_size` (|Σ|) symbols, and a label `c` in `0 .. num_labels - 1`. Fed one symbol per step
(one-hot), the lock outputs at every step how much of the code the symbols since its last opening
match: the length of the longest suffix of them that is a prefix of `s` (0 .. m - 1, the progress of
the Knuth-Morris-Pratt automaton of `s`). When the whole code has been entered it outputs the label
instead and starts again from 0. A wrong symbol therefore drops the progress to 1 when it starts the
code and to 0 otherwise, except for codes that repeat their own prefix (e.g. `aab` after `aa`), where
KMP keeps the longer match: with this rule the lock opens exactly when the last m symbols are `s`, so a
sequence holding every code (a de Bruijn sequence) opens every lock. Output classes: progress 0 .. m - 1,
then label c as class m + c (`output_size = m + num_labels`).

Why it separates the two kinds of probing encoder: the label shows only when the code is entered.
A fixed probing sequence shows it only for the codes it contains, so to read every lock it must hold
all |Σ|^m codes (`|Σ|^m + m - 1` symbols). A prober that reads the progress after each symbol can
find the code one symbol at a time (`adaptive_search`), in at most `adaptive_budget(m, |Σ|)` =
(|Σ| - 1) m (m + 1) / 2 + m symbols. With |Σ| = 4 and 64 symbols, a fixed sequence reads every lock
up to m = 2, the adaptive one up to m = 5.

The LSTMs learn their lock from streams typed by a *typist* (`typist_stream`): at rest it starts
typing the code with probability `start_probability`, else types a random symbol; while typing it
types the code's next symbol, or with probability `abort_probability` a random one and comes to rest.
So the streams hold the whole code often (the label), its prefixes cut short (the fallbacks), and
random symbols between them. Every snapshot records on fresh (held-out) streams its per-step
accuracy, its accuracy at the openings, and whether it implements its lock (both at least
`implements_threshold`); only those that do count as trained snapshots, where the tables report.
"""

import dataclasses
import itertools
import string

import jax
import jax.numpy as jnp
import numpy as np
import optax

from weightspace import lstm, targets
from weightspace.tasks.base import SequenceModel, Task, check_settings
from weightspace.types import Params, PRNGKey, PyTree


def adaptive_budget(code_length: int, alphabet_size: int) -> int:
    """Most symbols `adaptive_search` needs for any lock: (|Σ| - 1) m (m + 1) / 2 + m.

    Finding symbol j + 1 (j known) costs one symbol per wrong guess plus re-entering at most j
    symbols of the prefix after it, |Σ| - 1 wrong guesses at most, and one symbol for the right one.
    """
    return (alphabet_size - 1) * code_length * (code_length + 1) // 2 + code_length


def de_bruijn(alphabet_size: int, order: int) -> np.ndarray:
    """The lexicographically least de Bruijn sequence B(|Σ|, m), cyclic: [|Σ|^m] int32.

    Read cyclically, every one of the |Σ|^m codes of length m appears exactly once among its windows
    of m symbols (it is the concatenation of the Lyndon words whose length divides m, in order).
    """
    k, n = alphabet_size, order
    sequence: list[int] = []
    word = [0] * (k * n)

    def extend(t: int, p: int) -> None:  # Fredricksen-Kessler-Maiorana: Lyndon words in order
        if t > n:
            if n % p == 0:
                sequence.extend(word[1 : p + 1])
            return
        word[t] = word[t - p]
        extend(t + 1, p)
        for symbol in range(word[t - p] + 1, k):
            word[t] = symbol
            extend(t + 1, t)

    extend(1, 1)
    return np.asarray(sequence, np.int32)


def fixed_probe(alphabet_size: int, code_length: int, budget: int) -> np.ndarray:
    """The best fixed probing sequence of `budget` symbols: the de Bruijn sequence read cyclically: [budget].

    Its first |Σ|^m + m - 1 symbols hold every code; a shorter prefix holds `fixed_coverage` of them.
    """
    return np.resize(de_bruijn(alphabet_size, code_length), budget)


def fixed_coverage(code_length: int, alphabet_size: int, budget: int) -> float:
    """Fraction of codes that a de Bruijn prefix of `budget` symbols contains (its distinct windows)."""
    return min(1.0, max(0, budget - code_length + 1) / alphabet_size**code_length)


def transitions(code: jax.Array, alphabet_size: int) -> jax.Array:
    """The lock's automaton: next progress [m, |Σ|] from progress j on symbol x (m: the lock opens).

    Next progress = the longest k <= j + 1 with code[:k] a suffix of code[:j] + x.
    """
    m = code.shape[0]
    j = jnp.arange(m)[:, None, None, None]  # current progress
    x = jnp.arange(alphabet_size)[None, :, None, None]  # symbol entered
    k = jnp.arange(1, m + 1)[None, None, :, None]  # candidate match length
    i = jnp.arange(m)[None, None, None, :]  # position within the candidate
    position = jnp.clip(j + 1 - k + i, 0, m - 1)  # where code[i] must sit in code[:j] + x
    typed = jnp.where(position < j, code[position], x)
    matches = jnp.all((i >= k) | (typed == code[i]), axis=-1) & (k[..., 0] <= j[..., 0] + 1)
    return jnp.max(jnp.where(matches, k[..., 0], 0), axis=-1).astype(jnp.int32)


def lock_outputs(code: jax.Array, label: jax.Array, symbols: jax.Array, alphabet_size: int) -> jax.Array:
    """The lock's output class at every step of `symbols` [time]: progress 0 .. m - 1, or m + label: [time]."""
    code = jnp.asarray(code)
    m = code.shape[0]
    table = transitions(code, alphabet_size)

    def step(progress, symbol):
        after = table[progress, symbol]
        opened = after == m
        return jnp.where(opened, 0, after), jnp.where(opened, m + label, after)

    return jax.lax.scan(step, jnp.int32(0), symbols)[1]


@dataclasses.dataclass(frozen=True)
class LockAutomaton:
    """A lock as a `SequenceModel` (the reference the probers are tested on): one-hot logits of its outputs.

    A probing input is read as its most likely symbol (argmax).
    """

    code: jax.Array  # [m] int
    label: jax.Array  # [] int
    alphabet_size: int
    num_labels: int

    def initial_state(self) -> jax.Array:
        return jnp.int32(0)

    def step(self, x: jax.Array, state: jax.Array) -> tuple[jax.Array, jax.Array]:
        m = self.code.shape[0]
        after = transitions(self.code, self.alphabet_size)[state, jnp.argmax(x)]
        opened = after == m
        output = jnp.where(opened, m + self.label, after)
        return 10.0 * jax.nn.one_hot(output, m + self.num_labels), jnp.where(opened, 0, after)

    def apply(self, inputs: jax.Array) -> jax.Array:
        symbols = jnp.argmax(inputs, axis=-1)
        outputs = jnp.vectorize(
            lambda s: lock_outputs(self.code, self.label, s, self.alphabet_size), signature="(t)->(t)"
        )(symbols)
        return 10.0 * jax.nn.one_hot(outputs, self.code.shape[0] + self.num_labels)


@dataclasses.dataclass(frozen=True)
class AdaptiveSearch:
    """The adaptive search as a probing policy (`tasks.base.ProbePolicy`): the next symbol from the answers so far.

    With j symbols of the code known and the lock at progress p (its last answer): when p < j it enters
    the known symbol p (back towards j); when p == j it tries the first symbol not yet tried as symbol
    j + 1. An answer of j + 1 to a symbol entered at p == j confirms it, a label answer (class >= m)
    confirms the last symbol and gives the label, anything else rules that symbol out. Once the label
    has shown it enters symbol 0. The state follows the symbols actually entered, so it also tracks
    another prober's dialogue (as a teacher).

    State: {"known": [m] the code found so far (-1 where not), "found": [] how many symbols are known,
    "progress": [] the lock's last answered progress, "tried": [|Σ|] the symbols ruled out as the next one,
    "label": [] (-1 until it shows)}.
    """

    code_length: int
    alphabet_size: int

    def initial_state(self) -> dict[str, jax.Array]:
        zero = jnp.int32(0)
        known = jnp.full((self.code_length,), -1, jnp.int32)
        tried = jnp.zeros((self.alphabet_size,), bool)
        return {"known": known, "found": zero, "progress": zero, "tried": tried, "label": jnp.int32(-1)}

    def propose(self, state: dict[str, jax.Array]) -> jax.Array:
        """The next probing input: a one-hot symbol [|Σ|]."""
        known = state["known"][jnp.clip(state["progress"], 0, self.code_length - 1)]
        untried = jnp.argmin(state["tried"])  # the first False
        symbol = jnp.where(state["progress"] < state["found"], known, untried)
        return jax.nn.one_hot(jnp.where(state["label"] >= 0, 0, symbol), self.alphabet_size)

    def update(self, state: dict[str, jax.Array], probe: jax.Array, answer: jax.Array) -> dict[str, jax.Array]:
        """The state after the lock answered `answer` (its output logits [m + K]) to the symbol `probe` [|Σ|]."""
        m, found, progress = self.code_length, state["found"], state["progress"]
        done = state["label"] >= 0
        symbol = jnp.argmax(probe).astype(jnp.int32)
        answer = jnp.argmax(answer).astype(jnp.int32)
        trying = (progress == found) & ~done
        confirmed = trying & ((answer == found + 1) | (answer >= m))
        tried = state["tried"] | (trying & (jnp.arange(self.alphabet_size) == symbol))
        # A lock confirms one of the |Σ| symbols; a model that is not one gets them all again.
        tried = jnp.where(confirmed | jnp.all(tried), False, tried)
        return {
            "known": jnp.where(confirmed & (jnp.arange(m) == found), symbol, state["known"]),
            "found": found + confirmed,
            "progress": jnp.where(done, progress, jnp.where(answer >= m, 0, answer)),
            "tried": tried,
            "label": jnp.where(~done & (answer >= m), answer - m, state["label"]),
        }


def adaptive_search(
    model: SequenceModel, code_length: int, alphabet_size: int, budget: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Finds a lock's code and label by reading its progress after every symbol (no learning).

    Runs `AdaptiveSearch` for `budget` symbols (`lax.scan`); it stops reading when the label shows.

    Returns:
      (code [m] with -1 where not found, label [] (-1 if not found), symbols entered before the label
      showed (`budget` if it did not)).
    """
    policy = AdaptiveSearch(code_length, alphabet_size)

    def step(carry, _):
        state, search = carry
        probe = policy.propose(search)
        logits, state = model.step(probe, state)
        return (state, policy.update(search, probe, logits)), search["label"] < 0

    (_, search), searching = jax.lax.scan(step, (model.initial_state(), policy.initial_state()), None, length=budget)
    label = search["label"]
    return search["known"], label, jnp.where(label >= 0, jnp.sum(searching), budget)


def consistent_codes(
    probe: np.ndarray, code_length: int, alphabet_size: int, num_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every code's answers along a fixed probing sequence, to decode an LSTM's answers with no learning.

    Args:
      probe: symbols [L].

    Returns:
      (all codes [|Σ|^m, m] in lexicographic order, each code's output classes along `probe` with any
      label shown as m, [|Σ|^m, L]).
    """
    codes = np.array(list(itertools.product(range(alphabet_size), repeat=code_length)), np.int32)
    outputs = jax.vmap(lambda c: lock_outputs(c, jnp.int32(0), jnp.asarray(probe), alphabet_size))(codes)
    return codes, np.asarray(outputs)


def fixed_read(answers: jax.Array, codes: jax.Array, code_outputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """What a fixed probing sequence's answers show with no learning: (code [m] or -1s, label [] or -1).

    Args:
      answers: the model's output classes along the probe [L].
      codes, code_outputs: `consistent_codes` of the probe.

    The code is the first (lexicographic) of the codes whose answers match the model's (labels compared
    as "opened"), so it is right when the answers single the code out; the label is the first label shown.
    """
    m = codes.shape[1]
    opened = answers >= m
    fits = jnp.all(jnp.where(opened, m, answers)[None] == code_outputs, axis=-1)
    code = jnp.where(jnp.any(fits), codes[jnp.argmax(fits)], -1)
    label = jnp.where(jnp.any(opened), answers[jnp.argmax(opened)] - m, -1)
    return code, label


def typist_stream(
    key: PRNGKey, code: jax.Array, length: int, alphabet_size: int, start: float, abort: float
) -> jax.Array:
    """A training stream of `length` symbols typed at a lock of code `code` [m] (module docstring): [length]."""
    code = jnp.asarray(code)
    m = code.shape[0]
    coin_key, symbol_key = jax.random.split(key)
    coins = jax.random.uniform(coin_key, (length,))
    randoms = jax.random.randint(symbol_key, (length,), 0, alphabet_size)

    def step(position, inputs):
        coin, random = inputs
        typing = jnp.where(position > 0, coin >= abort, coin < start)
        symbol = jnp.where(typing, code[position], random)
        return jnp.where(typing, (position + 1) % m, 0), symbol

    return jax.lax.scan(step, jnp.int32(0), (coins, randoms))[1].astype(jnp.int32)


# A fixed pseudo-random order of the codes for the train / eval / OOD split (the same for every zoo).
_SPLIT_SEED = 20240311


@dataclasses.dataclass(frozen=True)
class CombinationLock:
    """The combination-lock task family (see the module docstring)."""

    # |Σ|: symbols of the alphabet (one-hot inputs).
    alphabet_size: int = 4
    # m: symbols of the code.
    code_length: int = 3
    # K: labels a lock can hold (shown when it opens).
    num_labels: int = 4
    # Symbols per stream (training, stored and scored).
    length: int = 32
    # Streams per training batch.
    batch_size: int = 32
    # The typist at rest starts typing the code with this probability, else types a random symbol.
    start_probability: float = 0.5
    # While typing, it types a random symbol instead of the code's next one (and comes to rest) with this.
    abort_probability: float = 0.2
    # AdamW weight decay of every run.
    weight_decay_value: float = 1e-4
    # Streams kept per snapshot (with the LSTM's log-probabilities).
    num_stored_sequences: int = 100
    # Fresh streams per snapshot to score the LSTM (per-step accuracy, accuracy at the openings).
    num_scored_sequences: int = 256
    # A snapshot implements its lock when both accuracies on the scored streams reach this.
    implements_threshold: float = 0.99

    name = "combination_lock"
    split_fields = ("code",)
    probe_activation = "straight_through"
    # The adaptive search's symbols depend on no random draw.
    readout_uses_key = False
    table_columns = (
        ("label_accuracy", "label"),
        ("code_accuracy", "code"),
        ("lock_accuracy", "code and label"),
        ("accuracy_r2", "accuracy R²"),
        ("step_accuracy", "step acc"),
        ("cloning", "cloning Δ"),
        ("loss", "emulation loss"),
        ("boundary_loss", "opening loss"),
    )
    oracle_target = "lock"
    pca_colours = ("code order", "accuracy", "per-step accuracy")

    def __post_init__(self):
        minimums = dict(alphabet_size=2, code_length=1, num_labels=2, length=1, batch_size=1, num_stored_sequences=1)
        extra = []
        if self.alphabet_size > len(string.ascii_lowercase):
            extra.append(f"alphabet_size={self.alphabet_size} must be at most {len(string.ascii_lowercase)}")
        if self.num_stored_sequences > self.num_scored_sequences:
            extra.append("num_stored_sequences must not exceed num_scored_sequences")
        if self.code_length >= self.length:
            extra.append(
                f"code_length={self.code_length} must be less than length={self.length} (a stream must hold "
                "the whole code and the label it opens)"
            )
        fractions = ("start_probability", "abort_probability", "implements_threshold")
        check_settings(self, {**minimums, "weight_decay_value": 0.0}, fractions, tuple(extra))

    @property
    def input_size(self) -> int:
        return self.alphabet_size

    @property
    def output_size(self) -> int:
        return self.code_length + self.num_labels

    @property
    def probe_length(self) -> int:
        """The probing encoders' default budget: what the adaptive search needs for any lock."""
        return adaptive_budget(self.code_length, self.alphabet_size)

    @property
    def symbol_names(self) -> tuple[str, ...]:
        return tuple(string.ascii_lowercase[: self.alphabet_size])

    @property
    def output_labels(self) -> tuple[str, ...]:
        return (*(f"p{j}" for j in range(self.code_length)), *(f"c{c}" for c in range(self.num_labels)))

    def probe_image(self, inputs: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """Symbol probabilities [symbols, probing steps], a row per symbol."""
        return np.asarray(inputs).T, self.symbol_names

    def sample_tasks(self, seed: int, run_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Each run's code [runs, m] and label [runs], uniform, from (seed, run id) alone."""
        draws = [np.random.default_rng([seed, int(run)]) for run in np.asarray(run_ids, np.int64)]
        codes = [rng.integers(self.alphabet_size, size=self.code_length) for rng in draws]
        labels = [rng.integers(self.num_labels) for rng in draws]
        return {
            "code": np.asarray(codes, np.int32).reshape(-1, self.code_length),
            "label": np.asarray(labels, np.int32).reshape(-1),
        }

    def split_score(self, tasks: dict[str, np.ndarray]) -> np.ndarray:
        """A fixed pseudo-random score per code: OOD is a random 15 % of the codes, never trained on."""
        index = np.asarray(tasks["code"], np.int64) @ (self.alphabet_size ** np.arange(self.code_length)[::-1])
        return np.random.default_rng(_SPLIT_SEED).random(self.alphabet_size**self.code_length)[index]

    def probe_prior(self, probe_length: int, num_parallel: int) -> np.ndarray:
        """The fixed probe (`fixed_probe`) cut into `num_parallel` parts, one-hot [probe_length, num_parallel, |Σ|]."""
        sequence = fixed_probe(self.alphabet_size, self.code_length, num_parallel * probe_length)
        return np.eye(self.alphabet_size, dtype=np.float32)[sequence.reshape(num_parallel, probe_length).T]

    def probe_policy(self) -> AdaptiveSearch:
        """The adaptive search, which opens any lock within `adaptive_budget` symbols."""
        return AdaptiveSearch(self.code_length, self.alphabet_size)

    def emulation_data(self, behaviour: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """One-hot symbols [..., time, |Σ|] and the LSTM's log-probabilities after each [..., time, m + K]."""
        return {
            "inputs": jax.nn.one_hot(behaviour["sequences"].astype(jnp.int32), self.alphabet_size),
            "targets": behaviour["log_probs"].astype(jnp.float32),
        }

    def task_positions(self, data: dict[str, jax.Array]) -> jax.Array:
        """Where the LSTM shows its label (its most likely output is a label): [..., time] bool."""
        return jnp.argmax(data["targets"], axis=-1) >= self.code_length

    def data(self) -> tuple[dict, dict]:
        return {}, {}  # streams are typed on device

    def weight_decay(self, task: Task) -> jax.Array:
        return jnp.float32(self.weight_decay_value)

    def streams(self, key: PRNGKey, task: Task, num: int) -> dict[str, jax.Array]:
        """`num` typist streams at the run's lock: {"symbols": [num, length], "outputs": [num, length]}."""
        keys = jax.random.split(key, num)
        start, abort = self.start_probability, self.abort_probability
        symbols = jax.vmap(lambda k: typist_stream(k, task["code"], self.length, self.alphabet_size, start, abort))(
            keys
        )
        outputs = jax.vmap(lambda s: lock_outputs(task["code"], task["label"], s, self.alphabet_size))(symbols)
        return {"symbols": symbols, "outputs": outputs}

    def train_batch(self, key: PRNGKey, task: Task, data: PyTree = None) -> dict[str, jax.Array]:
        return self.streams(key, task, self.batch_size)

    def loss(self, params: Params, batch: dict[str, jax.Array]) -> jax.Array:
        """Cross-entropy of the lock's output at every step."""
        logits, _ = lstm.apply(params, jax.nn.one_hot(batch["symbols"], self.alphabet_size))
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["outputs"]).mean()

    def _scores(self, key: PRNGKey, model: SequenceModel, task: Task) -> tuple[dict, jax.Array, jax.Array, jax.Array]:
        """Fresh streams, the model's logits on them, its per-step accuracy and its accuracy at the openings."""
        streams = self.streams(key, task, self.num_scored_sequences)
        logits = model.apply(jax.nn.one_hot(streams["symbols"], self.alphabet_size))
        right = jnp.argmax(logits, axis=-1) == streams["outputs"]
        opening = streams["outputs"] >= self.code_length
        at_openings = jnp.sum(right & opening) / jnp.maximum(jnp.sum(opening), 1)
        return streams, logits, jnp.mean(right), at_openings

    def performance(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree = None) -> jax.Array:
        """Per-step accuracy on `num_scored_sequences` fresh streams."""
        return self._scores(key, model, task)[2]

    def snapshot(
        self, key: PRNGKey, params: Params, task: Task, data: PyTree = None
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """Scores the LSTM on fresh streams; keeps the first `num_stored_sequences` with its log-probabilities."""
        streams, logits, accuracy, at_openings = self._scores(key, lstm.Bound(params), task)
        kept = slice(0, self.num_stored_sequences)
        behaviour = {
            "sequences": streams["symbols"][kept].astype(jnp.int16),
            "log_probs": jax.nn.log_softmax(logits[kept]).astype(jnp.float16),
        }
        implements = (accuracy >= self.implements_threshold) & (at_openings >= self.implements_threshold)
        metrics = {"accuracy": accuracy, "opening_accuracy": at_openings, "implements": implements.astype(jnp.float32)}
        return behaviour, metrics

    def downstream_targets(self, metadata: dict[str, np.ndarray]) -> list[targets.Target]:
        """The label (K-way), the code (m components, |Σ|-way), both together, and the per-step accuracy."""
        code, label = np.asarray(metadata["code"]), np.asarray(metadata["label"])
        positions = tuple(f"s{j + 1}" for j in range(self.code_length))
        both = np.concatenate([code.reshape(len(code), -1), label.reshape(-1, 1)], axis=1)
        return [
            targets.Classes.of("label", label, range(self.num_labels)),
            targets.Classes.of("code", code, range(self.alphabet_size), positions),
            targets.Classes.of("lock", both, range(max(self.alphabet_size, self.num_labels)), (*positions, "c")),
            targets.Regression("accuracy", np.asarray(metadata["accuracy"], np.float64)),
        ]

    def trained_snapshots(self, metadata: dict[str, np.ndarray]) -> np.ndarray:
        """The snapshots that implement their lock (recorded at the snapshot, on fresh streams)."""
        return np.asarray(metadata["implements"]) > 0.5

    def readout(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree = None) -> dict[str, jax.Array]:
        """The code and label found by `adaptive_search` within `probe_length` symbols (no use of `task`)."""
        code, label, _ = adaptive_search(model, self.code_length, self.alphabet_size, self.probe_length)
        return {"code": code, "label": label[None], "lock": jnp.concatenate([code, label[None]])}

    def fixed_probe_features(self, model: SequenceModel, data: PyTree = None) -> jax.Array:
        """The model's answers (one-hot output classes) along `fixed_probe` of `probe_length` symbols: [L * (m + K)].

        Answers, not log-probabilities: a trained LSTM's logits already lean towards its label before its
        code has been entered, which would let a fixed probe read what the lock does not show.
        """
        probe = fixed_probe(self.alphabet_size, self.code_length, self.probe_length)
        logits = model.apply(jax.nn.one_hot(probe, self.alphabet_size))
        return jax.nn.one_hot(jnp.argmax(logits, axis=-1), self.output_size).ravel()
