"""What reads the label of a lock LSTM at one point (m, L) without a learned encoder, and the statistics
behind every row: the references (adaptive search, best fixed sequence) with their coverage bounds, the
references' answers read by the downstream probe, which locks an encoder's probes open, and the runs,
locks, intervals and nulls of a row."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.run import context, evaluate
from weightspace import lstm, probes, statistics, zoo
from weightspace.tasks import combination_lock as cl

REFERENCES = ("adaptive", "fixed")
# The references' answers read by the downstream probe the encoders are scored with (fitted on the training
# codes): the fixed sequence's as the sequence of answers and pooled (how often each answer class occurs), the
# adaptive search's pooled. What a learned reader of each best prober reads of held-out codes, with no
# encoder: what the learned reader loses, apart from what the prober finds. A probing encoder's own trained probes
# are read the same way (`<encoder>_pooled_by_probe`, `LEARNED_READER`).
READERS = ("fixed_read_by_probe", "fixed_pooled_by_probe", "adaptive_pooled_by_probe")
LEARNED_READER = "{}_pooled_by_probe"
# The subset every number is read on: LSTMs of held-out codes that implement their lock.
SUBSET = "ood_trained"
PREDICTOR = "mlp"


def guessed(read: float, num_labels: int) -> float:
    """Accuracy of a reader that guesses uniformly where it read nothing."""
    return read + (1.0 - read) / num_labels


def reference_rows(the_zoo: zoo.Zoo, snapshots: np.ndarray, budget: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The adaptive and fixed references and their bounds on `snapshots` within `budget` symbols, and the label
    each read of each snapshot ({row: [len(snapshots)]}, -1 where it read none)."""
    family = context.zoo_family(the_zoo)
    m, size, labels = family.code_length, family.alphabet_size, family.num_labels
    params = jax.tree.map(lambda x: jnp.asarray(x[snapshots]), the_zoo.params)
    true_code, true_label = the_zoo.metadata["code"][snapshots], the_zoo.metadata["label"][snapshots]
    probe = cl.fixed_probe(size, m, budget)
    codes, code_outputs = map(jnp.asarray, cl.consistent_codes(probe, m, size, labels))

    @jax.jit
    @jax.vmap
    def read(params):
        model = lstm.Bound(params)
        adaptive_code, adaptive_label, _ = cl.adaptive_search(model, m, size, budget)
        answers = jnp.argmax(model.apply(jax.nn.one_hot(probe, size)), axis=-1)
        return {"adaptive": (adaptive_code, adaptive_label), "fixed": cl.fixed_read(answers, codes, code_outputs)}

    @jax.jit
    @jax.vmap
    def found_by_adaptive_search(code):
        return cl.adaptive_search(cl.LockAutomaton(code, jnp.int32(0), size, labels), m, size, budget)[1] == 0

    bounds = {
        "adaptive": float(np.mean(found_by_adaptive_search(codes))),
        "fixed": cl.fixed_coverage(m, size, budget),
    }
    results = jax.device_get(read(params)) if len(snapshots) else {}
    rows, predicted = [], {}
    for name in REFERENCES:
        row = dict(row=name, bound=guessed(bounds[name], labels))
        if len(snapshots):
            code, label = results[name]
            predicted[name] = np.asarray(label)
            row["label_read"] = float(np.mean(label == true_label))
            row["label_accuracy"] = guessed(row["label_read"], labels)
            row["code_accuracy"] = float(np.mean(np.all(code == true_code, axis=1)))
        rows.append(row)
    return rows, predicted


def probe_labels(run_context: context.RunContext, features: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """The labels the downstream probe (`PREDICTOR`, fitted on the train split with the evaluation's seed) reads off
    `features` [N, F] for the snapshots `subset`: [len(subset)]."""
    target = next(t for t in run_context.targets if t.name == "label")
    hidden = probes.PREDICTORS[PREDICTOR]
    probe = probes.fit(target, features, run_context.split["train"], hidden_sizes=hidden, seed=0)
    return np.asarray(probe.predict(features[subset])).reshape(len(subset))


def adaptive_answers(params, code_length: int, alphabet_size: int, budget: int) -> jax.Array:
    """Every LSTM's answers (its most likely output) along the adaptive search's `budget` symbols: [N, budget]."""
    policy = cl.AdaptiveSearch(code_length, alphabet_size)

    def answers(params):
        model = lstm.Bound(params)

        def step(carry, _):
            state, search = carry
            probe = policy.propose(search)
            logits, state = model.step(probe, state)
            return (state, policy.update(search, probe, logits)), jnp.argmax(logits)

        start = (model.initial_state(), policy.initial_state())
        return jax.lax.scan(step, start, None, length=budget)[1]

    return jax.jit(jax.vmap(answers))(params)


def reader_rows(
    run_context: context.RunContext, the_zoo: zoo.Zoo, subset: np.ndarray, budget: int
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The `READERS`: the answers of every LSTM along the fixed sequence of `budget` symbols, and along the
    adaptive search's, read by the downstream probe (`PREDICTOR`) fitted on the train split and scored on
    `subset`; and the label each read of each snapshot of `subset`."""
    family = run_context.family
    m, size = family.code_length, family.alphabet_size
    probe = jax.nn.one_hot(cl.fixed_probe(size, m, budget), size)
    answer = jax.jit(jax.vmap(lambda params: jnp.argmax(lstm.Bound(params).apply(probe), axis=-1)))
    answers = jax.nn.one_hot(np.asarray(answer(the_zoo.params)), family.output_size)  # [N, L, m + K]
    adaptive = jax.nn.one_hot(np.asarray(adaptive_answers(the_zoo.params, m, size, budget)), family.output_size)
    features = dict(zip(READERS, (answers.reshape(len(answers), -1), answers.sum(1), adaptive.sum(1)), strict=True))
    rows, predicted = [], {}
    for name, values in features.items():
        row, predicted[name] = read_features(run_context, the_zoo, subset, name, np.asarray(values))
        rows.append(row)
    return rows, predicted


def read_features(
    run_context: context.RunContext, the_zoo: zoo.Zoo, subset: np.ndarray, name: str, features: np.ndarray
) -> tuple[dict, np.ndarray]:
    """The row `name` of features [N, F] of every snapshot read by the downstream probe (`PREDICTOR`, fitted on the
    train split) on `subset` (label and exact-code accuracy), and the label it read of each snapshot of `subset`."""
    code = [t for t in run_context.targets if t.name == "code"]
    code_scores = evaluate.probe_scores(code, features, run_context.split["train"], {SUBSET: subset}, seed=0)
    predicted = probe_labels(run_context, features, subset)
    label_accuracy = float(np.mean(predicted == the_zoo.metadata["label"][subset]))
    code_accuracy = code_scores[PREDICTOR][SUBSET]["code_accuracy"]
    return dict(row=name, label_accuracy=label_accuracy, code_accuracy=code_accuracy), predicted


def label_statistics(predicted: np.ndarray, labels: np.ndarray, runs: np.ndarray, num_labels: int) -> dict:
    """The interval and the shuffled null of a row's label accuracy, from the labels it read [seeds, n] of
    snapshots of true `labels` [n] and `runs` [n] (-1: none read, a uniform guess).

    The runs are the independent units (each an LSTM trained on its own lock; its snapshots are not): the
    95 % interval resamples runs, and seeds too where there are several.
    """
    predicted = np.atleast_2d(predicted)
    hits = (predicted == labels) + (predicted < 0) / num_labels  # [seeds, n]: expected score of each read
    low, high = statistics.bootstrap_interval(statistics.per_unit(hits, runs))
    nulls = np.array([statistics.shuffled_null(p, labels) for p in predicted])  # [seeds, 2]
    return dict(label_interval=[low, high], null_mean=float(nulls[:, 0].mean()), null_q95=float(nulls[:, 1].mean()))


def point_statistics(the_zoo: zoo.Zoo, subsets: list[np.ndarray], train_subsets: list[np.ndarray]) -> dict:
    """How many independent units stand behind a point that pools the held-out snapshots `subsets` of its OOD
    folds: its snapshots, runs and their distinct locks (code and label), and the score of always answering
    their commonest label; how many distinct codes the folds hold out, and how many each fold trains on
    (`train_subsets`; their mean, rounded)."""
    subset, codes = np.concatenate(subsets), the_zoo.metadata["code"]
    first = np.unique(the_zoo.metadata["run"][subset], return_index=True)[1]  # one snapshot of each run
    locks = np.concatenate([codes[subset][first], the_zoo.metadata["label"][subset][first, None]], 1)
    return dict(
        n=len(subset),
        n_runs=len(first),
        n_locks=len(np.unique(locks, axis=0)),
        majority=statistics.majority_baseline(the_zoo.metadata["label"][subset][first]),
        train_codes=round(np.mean([len(np.unique(codes[train], axis=0)) for train in train_subsets])),
        heldout_codes=len(np.unique(codes[subset], axis=0)),
    )


def encoder_answers(encoder, params) -> np.ndarray:
    """Every LSTM's answers (its most likely output) to a probing `encoder`'s probes: [N, parallel, time].

    The probing inputs are replayed through each LSTM from its initial state (as in the dialogue), so
    these are what the encoder was shown, whatever it made of them.
    """
    probes = jnp.transpose(encoder.probing_inputs(params), (1, 2, 0, 3))  # [batch, parallel, time, input]
    logits = jax.vmap(lambda p, x: lstm.Bound(p).apply(x))(params, probes)  # [batch, parallel, time, output]
    return np.asarray(jnp.argmax(logits, axis=-1))


def opened_fraction(answers: np.ndarray, code_length: int) -> float:
    """Fraction of LSTMs whose answers [N, parallel, time] (`encoder_answers`) show a label: the lock opened."""
    return float(np.mean(np.any(answers >= code_length, axis=(1, 2))))


def pooled(answers: np.ndarray, output_size: int) -> np.ndarray:
    """How often each answer class occurs in each parallel sequence of answers [N, parallel, time]:
    [N, parallel * output_size]."""
    return np.eye(output_size, dtype=np.float32)[answers].sum(2).reshape(len(answers), -1)
