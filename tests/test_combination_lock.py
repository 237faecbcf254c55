"""The combination-lock family: its automaton against hand-worked streams, the two reference probers
(adaptive search, de Bruijn), the typist's streams and the split."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weightspace import dataset, encoders, lstm, tasks, zoo
from weightspace.tasks import combination_lock as cl

A, B, C, D = range(4)


def outputs(code, label, stream, alphabet_size=4):
    return np.asarray(cl.lock_outputs(jnp.asarray(code), jnp.int32(label), jnp.asarray(stream), alphabet_size))


def test_the_lock_against_hand_worked_streams():
    # Code abc, label 2 (class 3 + 2 = 5): progress 1, 2, then open; a wrong symbol drops to 1 if it is a, else 0.
    assert outputs((A, B, C), 2, (A, B, C, A, B, C)).tolist() == [1, 2, 5, 1, 2, 5]
    assert outputs((A, B, C), 2, (A, B, A, B, D, A, B, B, C)).tolist() == [1, 2, 1, 2, 0, 1, 2, 0, 0]
    assert outputs((A, B, C), 0, (C, A, A, B, C, C)).tolist() == [0, 1, 1, 2, 3, 0]
    # A code that repeats its own prefix keeps the longer match: aab after aa-a is still at aa.
    assert outputs((A, A, B), 1, (A, A, A, B)).tolist() == [1, 2, 2, 4]
    assert outputs((A, B, A, C), 0, (A, B, A, B, A, C)).tolist() == [1, 2, 3, 2, 3, 4]
    # m = 1: every entry of the code opens the lock.
    assert outputs((D,), 3, (D, A, D, D)).tolist() == [4, 0, 4, 4]


def test_without_repeated_prefixes_the_reset_is_to_one_or_zero():
    rng = np.random.default_rng(0)
    for code in itertools.permutations(range(4), 3):  # distinct symbols: no code repeats its own prefix
        stream = rng.integers(4, size=40)
        progress, expected = 0, []
        for symbol in stream:
            if symbol == code[progress]:
                progress += 1
            else:
                progress = 1 if symbol == code[0] else 0
            expected.append(3 + 1 if progress == 3 else progress)
            progress %= 3
        assert outputs(code, 1, stream).tolist() == expected


def automaton(code, label=1, alphabet_size=4, num_labels=4):
    return cl.LockAutomaton(jnp.asarray(code), jnp.int32(label), alphabet_size, num_labels)


@pytest.mark.parametrize(
    ("code", "expected_symbols"),
    [
        ((A, B, C), 1 + 2 + 6),  # a | a (at a: ruled out), b | a, b, b (at nothing), a, b, c
        ((D, D, D), 21),  # the worst case: 3 wrong guesses per position, each re-entering the prefix
        ((A, A, B), 4),  # a, a, a (still at aa: rules out a), b
        ((A,), 1),
        ((C,), 3),
    ],
)
def test_the_adaptive_search_finds_the_code_in_the_predicted_number_of_symbols(code, expected_symbols):
    found, label, used = cl.adaptive_search(automaton(code, label=3), len(code), 4, budget=30)
    assert found.tolist() == list(code) and int(label) == 3 and int(used) == expected_symbols


@pytest.mark.parametrize(("code_length", "alphabet_size"), [(1, 4), (2, 3), (3, 4), (4, 2)])
def test_the_adaptive_search_reads_every_lock_within_its_budget(code_length, alphabet_size):
    budget = cl.adaptive_budget(code_length, alphabet_size)
    codes = np.array(list(itertools.product(range(alphabet_size), repeat=code_length)))
    search = jax.vmap(lambda c: cl.adaptive_search(automaton(c, 2, alphabet_size), code_length, alphabet_size, budget))
    found, labels, used = search(jnp.asarray(codes))
    np.testing.assert_array_equal(found, codes)
    assert np.all(labels == 2) and int(used.max()) == budget  # the bound is reached by the all-last-symbol code


@pytest.mark.parametrize("code_length", [3, 4])
@pytest.mark.slow
def test_the_search_follows_another_probers_symbols_and_takes_over_from_them(code_length):
    """As a teacher, the policy's state follows symbols it did not propose: after 12 random symbols (whatever
    they confirmed or ruled out), what it knows is a prefix of the code, and following its own proposals from
    there it opens every lock within its budget."""
    budget = cl.adaptive_budget(code_length, 4)
    policy = cl.AdaptiveSearch(code_length, 4)
    codes = np.array(list(itertools.product(range(4), repeat=code_length)))
    random_symbols = jax.nn.one_hot(np.random.default_rng(0).integers(4, size=(len(codes), 12)), 4)

    def search(code, symbols):
        lock = automaton(code, 2)

        def step(carry, probe):
            state, search = carry
            probe = jnp.where(jnp.isnan(probe[0]), policy.propose(search), probe)  # NaN rows: the policy's turn
            logits, state = lock.step(probe, state)
            return (state, policy.update(search, probe, logits)), search["found"]

        taken_over = jnp.concatenate([symbols, jnp.full((budget, 4), jnp.nan)])
        (_, search), found = jax.lax.scan(step, (lock.initial_state(), policy.initial_state()), taken_over)
        return search, found

    final, found = jax.vmap(search)(jnp.asarray(codes), random_symbols)
    known_after_random = np.asarray(found[:, 12])
    assert known_after_random.max() >= 1  # the random symbols did confirm some symbols: not a vacuous check
    np.testing.assert_array_equal(np.asarray(final["known"]), codes)
    np.testing.assert_array_equal(np.asarray(final["label"]), 2)


def test_the_de_bruijn_sequence_holds_every_code_once():
    for alphabet_size, order in [(4, 1), (4, 2), (4, 3), (2, 5), (3, 3)]:
        sequence = cl.de_bruijn(alphabet_size, order)
        assert len(sequence) == alphabet_size**order
        unrolled = np.concatenate([sequence, sequence[: order - 1]])
        windows = {tuple(unrolled[i : i + order]) for i in range(len(sequence))}
        assert len(windows) == alphabet_size**order


@pytest.mark.parametrize("code_length", [1, 2, 3])
@pytest.mark.slow
def test_the_fixed_probe_reads_the_locks_it_covers(code_length):
    alphabet_size, num_labels = 4, 4
    codes = np.array(list(itertools.product(range(alphabet_size), repeat=code_length)))
    for budget in (alphabet_size**code_length + code_length - 1, 12):
        probe = cl.fixed_probe(alphabet_size, code_length, budget)
        table = cl.consistent_codes(probe, code_length, alphabet_size, num_labels)

        def read(code, probe=probe, table=table):
            answers = jnp.argmax(automaton(code, 2, alphabet_size, num_labels).apply(jax.nn.one_hot(probe, 4)), -1)
            return cl.fixed_read(answers, *map(jnp.asarray, table))

        found, labels = jax.vmap(read)(jnp.asarray(codes))
        coverage = cl.fixed_coverage(code_length, alphabet_size, budget)
        assert np.mean(labels == 2) == pytest.approx(coverage)
        assert np.all(labels[labels >= 0] == 2)
        opened = np.asarray(labels) == 2
        np.testing.assert_array_equal(np.asarray(found)[opened], codes[opened])  # an opened lock's code is known
        if coverage == 1.0:
            assert np.all(opened)


def test_typist_streams_hold_the_code_and_label_the_openings():
    family = cl.CombinationLock(code_length=4, length=40, batch_size=64)
    task = {"code": jnp.array([2, 0, 3, 3]), "label": jnp.int32(1)}
    batch = family.train_batch(jax.random.key(0), task)
    assert batch["symbols"].shape == batch["outputs"].shape == (64, 40)
    np.testing.assert_array_equal(batch["outputs"][3], outputs((2, 0, 3, 3), 1, batch["symbols"][3]))
    openings = np.asarray(batch["outputs"] == 4 + 1).sum(1)
    assert openings.mean() > 1.5 and np.all(np.asarray(batch["outputs"]) <= 5)
    # Cut-short prefixes too: streams reach progress 2 or 3 without opening next.
    assert np.any((batch["outputs"][:, :-1] == 3) & (batch["outputs"][:, 1:] < 3))


def test_the_reference_automaton_scores_perfectly_and_implements_its_lock():
    family = cl.CombinationLock(code_length=3, num_scored_sequences=64, num_stored_sequences=8)
    task = {"code": jnp.array([1, 1, 2]), "label": jnp.int32(0)}
    _, _, accuracy, at_openings = family._scores(jax.random.key(1), automaton((1, 1, 2), 0), task)
    assert float(accuracy) == 1.0 and float(at_openings) == 1.0
    wrong = automaton((1, 1, 2), 3)
    assert float(family.performance(jax.random.key(1), wrong, task)) < 1.0


def test_the_split_holds_out_whole_codes():
    family = cl.CombinationLock(code_length=2)
    sampled = family.sample_tasks(0, np.arange(300))
    steps = np.zeros(300, np.int32)
    metadata = {**sampled, "run": np.arange(300), "step": steps}
    the_zoo = zoo.Zoo(params={}, behaviour={}, metadata=metadata, spec=None, info={})
    split = dataset.task_split(the_zoo, family, seed=0)
    codes = {name: {tuple(c) for c in sampled["code"][i]} for name, i in split.items()}
    assert codes["ood"] and not codes["ood"] & (codes["train"] | codes["eval"])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"code_length=0 must be at least 1.*abort_probability=2"):
        cl.CombinationLock(code_length=0, abort_probability=2.0)
    assert tasks.make("combination_lock", {"code_length": 2}).output_size == 2 + 4


@pytest.mark.slow
def test_a_zoo_lstm_runs_as_the_family_says():
    family = cl.CombinationLock(code_length=2, num_stored_sequences=4, num_scored_sequences=8, length=10)
    spec = lstm.LSTMSpec(family.input_size, 8, 1, family.output_size)
    params = lstm.init(jax.random.key(0), spec)
    task = {k: v[0] for k, v in family.sample_tasks(0, np.arange(1)).items()}
    behaviour, metrics = family.snapshot(jax.random.key(2), params, task)
    assert behaviour["sequences"].shape == (4, 10) and behaviour["log_probs"].shape == (4, 10, 6)
    assert set(metrics) == {"accuracy", "opening_accuracy", "implements"}
    data = family.emulation_data(behaviour)
    assert data["inputs"].shape == (4, 10, 4) and family.task_positions(data).shape == (4, 10)
    assert np.isfinite(float(family.loss(params, family.train_batch(jax.random.key(3), task))))


def test_the_generic_family_config_builds_any_registered_family():
    from zoo_builder.configs import family

    config = family.get_config("combination_lock,quick")
    assert config.task.name == "combination_lock" and config.num_runs == 128
    assert config.task.settings.code_length == cl.CombinationLock.code_length
    assert family.get_config("combination_lock").num_runs == 1000  # the paper preset
    with pytest.raises(ValueError, match="needs a task family name"):
        family.get_config("locks,quick")


@pytest.mark.slow
def test_the_interactive_encoder_with_the_policy_prior_probes_as_the_adaptive_search():
    family = cl.CombinationLock(code_length=3)
    spec = lstm.LSTMSpec(family.input_size, 8, 1, family.output_size)
    params = jax.vmap(lambda k: lstm.init(k, spec))(jax.random.split(jax.random.key(0), 3))
    # Random LSTMs that answer with progress classes and read their input strongly, so they answer variously.
    params["weight_out"] = 10.0 * params["weight_out"]
    params["weight_ih_l0"] = 10.0 * params["weight_ih_l0"]
    params["bias_out"] = params["bias_out"].at[:, 3:].add(-100.0)
    config = encoders.default_config("interactive")
    config.update(lstm_size=8, lstm_layers=1, code_size=8, probe_hidden_sizes=(8,), hidden_sizes=(8,))
    config.update(probe_length=12, probe_activation="straight_through", prior_scale=100.0, prior_policy=True)
    encoder = encoders.build(config, spec, probe_policy=family.probe_policy())
    probed = np.argmax(np.asarray(encoder.probing_inputs(params))[:, :, 0], axis=-1)  # [time, batch]

    policy = family.probe_policy()  # run step by step on each LSTM, independently of the encoder's scan
    for i in range(3):
        model = lstm.Bound(jax.tree.map(lambda x, i=i: x[i], params))
        search, state, symbols = policy.initial_state(), model.initial_state(), []
        for _ in range(12):
            x = policy.propose(search)
            logits, state = model.step(x, state)
            search = policy.update(search, x, logits)
            symbols.append(int(np.argmax(x)))
        np.testing.assert_array_equal(probed[:, i], symbols)
    assert len(set(map(tuple, probed.T))) > 1  # the LSTMs answer differently, so they are probed differently


def test_a_policy_prior_without_a_policy_is_named():
    config = encoders.default_config("interactive")
    config.update(prior_scale=3.0, prior_policy=True)
    with pytest.raises(ValueError, match="needs a probe_policy"):
        encoders.build(config, lstm.LSTMSpec(4, 8, 1, 7))
    with pytest.raises(ValueError, match="keep prior_policy False"):
        tasks.make("formal_languages").probe_policy()


@pytest.mark.parametrize("entry_steps, entered_to", [(0, 100), (40, 40)])
def test_the_teacher_enters_probes_until_its_entry_steps_and_labels_them_until_its_last_step(entry_steps, entered_to):
    """The teacher's share of the probes is 1 over the first half of `teacher_entry_steps` (default:
    `teacher_steps`) and falls linearly to 0 there; its cross-entropy weighs 1 until `teacher_steps`, then 0."""
    family = cl.CombinationLock(code_length=3)
    config = encoders.default_config("interactive")
    config.update(lstm_size=8, lstm_layers=1, code_size=8, probe_hidden_sizes=(8,), hidden_sizes=(8,))
    config.update(probe_learning="reinforce", answers="argmax", teacher_steps=100, teacher_entry_steps=entry_steps)
    spec = lstm.LSTMSpec(family.input_size, 8, 1, family.output_size)
    encoder = encoders.build(config, spec, probe_policy=family.probe_policy())

    def schedule(step):
        encoder.sampler.steps[...] = jnp.asarray(step, encoder.sampler.steps[...].dtype)
        return tuple(float(x) for x in encoder.teacher_share())

    half = entered_to // 2
    assert schedule(0) == schedule(half) == (1.0, 1.0)
    assert schedule((half + entered_to) // 2)[0] == pytest.approx(0.5, abs=0.03)
    assert schedule(entered_to)[0] == 0.0
    assert schedule(99) == (pytest.approx(max(0.0, 2 - 2 * 99 / entered_to)), 1.0)
    assert schedule(100) == (0.0, 0.0)
    encoder.eval()
    assert schedule(10) == (0.0, 0.0)  # never when evaluated
    config.teacher_entry_steps = 101
    with pytest.raises(ValueError, match=r"teacher_entry_steps must lie in \[0, teacher_steps=100\], got 101"):
        encoders.build(config, spec, probe_policy=family.probe_policy())
    plain = encoders.default_config("noninteractive")  # without a teacher it has no effect
    plain.update(lstm_size=8, lstm_layers=1, code_size=8, probe_hidden_sizes=(8,), hidden_sizes=(8,))
    plain.update(probe_learning="reinforce", answers="argmax", teacher_entry_steps=2000)
    assert encoders.build(plain, spec).teacher_share() == (0.0, 0.0)
