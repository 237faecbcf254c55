"""Formal-language tasks against hand-worked examples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weightspace import lstm, tasks
from weightspace.tasks import formal_languages as fl

B, E = fl.BOS, fl.EOS


def _seq(n, task, length):
    return np.asarray(fl.string_sequence(jnp.int32(n), jnp.array(task), length)).tolist()


def test_there_are_216_distinct_tasks():
    assert fl.ALL_TASKS.shape == (216, 4)
    assert len(np.unique(fl.ALL_TASKS, axis=0)) == 216
    assert set(fl.ALL_TASKS[:, 1:].ravel()) == set(range(-3, 3))
    assert np.all(fl.ALL_TASKS[:, 0] == 0)


def test_string_sequences_by_hand():
    assert _seq(2, (0, -1, 1, 0), 12) == [B, 0, 0, 1, 2, 2, 2, 3, 3, E, E, E]
    # Negative differences: n = 3 is the smallest n for d = -3.
    assert _seq(3, (0, -3, -3, -3), 6) == [B, 0, 0, 0, E, E]
    assert _seq(0, (0, 2, 0, 1), 6) == [B, 1, 1, 3, E, E]
    # Too long for 41 tokens: cut off, no EOS.
    long = _seq(9, (0, 2, 2, 2), 42)
    assert len(long) == 42 and E not in long and long[-1] == 3 and long.count(0) == 9


@pytest.mark.slow
def test_is_correct_by_hand():
    def correct(tokens, task):
        return bool(fl.is_correct(jnp.array(tokens), jnp.array(task)))

    assert correct([0, 0, 1, 2, 2, 2, 3, 3, E, E], (0, -1, 1, 0))
    assert correct([0, 0, 1, 2, 2, 2, 3, 3, E, 0, B, 2], (0, -1, 1, 0))  # after the first EOS: ignored
    assert correct([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, E], (0, 0, 0, 0))  # n = 3: any n fits
    assert correct([E, 1], (0, 0, 0, 0))  # the empty word, n = 0
    assert correct([1, 1, 3, E], (0, 2, 0, 1))
    assert not correct([0, 0, 1, 2, 2, 2, 3, 3, 3, 3], (0, -1, 1, 0))  # no EOS
    assert not correct([0, 1, 0, 2, 2, 2, 3, 3, E], (0, -1, 1, 0))  # wrong order
    assert not correct([0, 0, 1, 2, 2, 3, 3, E], (0, -1, 1, 0))  # a count off by one
    assert not correct([0, 0, 1, B, 2, 2, 2, 3, 3, E], (0, -1, 1, 0))  # BOS inside
    assert not correct([E], (0, -1, 0, 0))  # n = 0 would need -1 b's


def test_training_batches_are_words_of_the_task():
    family = fl.FormalLanguages(batch_size=256)
    for task in ([0, -3, 2, 1], [0, 2, 2, 2], [0, 0, -1, -2]):
        batch = family.train_batch(jax.random.key(0), {"task": jnp.array(task)})
        assert batch.shape == (256, 42) and np.all(batch[:, 0] == B)
        n = np.sum(np.asarray(batch) == 0, axis=1)
        low = max(0, -min(task))
        assert n.min() == low and n.max() == 9  # uniform over [low, 10): both ends show up
        ok = jax.vmap(fl.is_correct, in_axes=(0, None))(batch[:, 1:], jnp.array(task))
        fits = np.asarray(n) * 4 + sum(task) < 41  # the string and its EOS fit in 41 tokens
        np.testing.assert_array_equal(np.asarray(ok), fits)


def test_task_assignment_cycles_and_ignores_grouping():
    family = fl.FormalLanguages(cycle_tasks=True)
    first = family.sample_tasks(7, np.arange(216))["task"]
    assert len(np.unique(first, axis=0)) == 216
    second = family.sample_tasks(7, np.arange(216, 432))["task"]
    assert len(np.unique(second, axis=0)) == 216 and not np.array_equal(first, second)
    np.testing.assert_array_equal(family.sample_tasks(7, np.array([5, 300]))["task"], [first[5], second[84]])
    drawn = fl.FormalLanguages().sample_tasks(7, np.arange(216))["task"]
    assert len(np.unique(drawn, axis=0)) < 216  # with replacement


def test_check_tasks_rejects_out_of_range():
    fl.check_tasks(fl.ALL_TASKS)
    with pytest.raises(ValueError, match=r"\[0, 3, 0, 0\]"):
        fl.check_tasks(np.array([[0, 0, 0, 0], [0, 3, 0, 0]]))
    with pytest.raises(ValueError, match="4 entries"):
        fl.check_tasks(np.zeros((2, 3)))


def test_task_entropy_by_hand():
    np.testing.assert_allclose(fl.task_entropy(np.array([0, 0, 0, 0])), np.log(4))
    p = np.array([4, 1, 6, 5]) / 16  # 1 + d - min(d) for (0, -3, 2, 1)
    np.testing.assert_allclose(fl.task_entropy(np.array([0, -3, 2, 1])), -(p * np.log(p)).sum())


def test_split_of_the_216_tasks():
    entropy = fl.task_entropy(fl.ALL_TASKS)
    split = tasks.splits.split_by_score(entropy, seed=0)
    sizes = {name: len(ids) for name, ids in split.items()}
    assert sizes == {"train": 152, "eval": 32, "ood": 32}
    assert len(np.unique(np.concatenate(list(split.values())))) == 216
    assert entropy[split["ood"]].min() >= entropy[np.concatenate([split["train"], split["eval"]])].max()
    again = tasks.splits.split_by_score(entropy, seed=0)
    other = tasks.splits.split_by_score(entropy, seed=1)
    np.testing.assert_array_equal(split["eval"], again["eval"])
    assert not np.array_equal(split["eval"], other["eval"])
    np.testing.assert_array_equal(split["ood"], other["ood"])


def test_ood_folds_hold_out_disjoint_bands_of_the_score():
    """Fold 0 is the paper's split; fold f holds out the f-th next 32 tasks down the entropy order, none of
    which any other fold holds out, and trains on the rest."""
    entropy = fl.task_entropy(fl.ALL_TASKS)
    order = np.lexsort((np.arange(216), -entropy))
    folds = [tasks.splits.split_by_score(entropy, seed=0, ood_fold=f) for f in range(6)]
    paper = tasks.splits.split_by_score(entropy, seed=0)
    assert all(np.array_equal(folds[0][name], paper[name]) for name in paper)
    for f, split in enumerate(folds):
        np.testing.assert_array_equal(split["ood"], np.sort(order[32 * f : 32 * (f + 1)]))
        assert len(np.unique(np.concatenate(list(split.values())))) == 216 and len(split["eval"]) == 32
    assert len(np.unique(np.concatenate([split["ood"] for split in folds]))) == 6 * 32
    with pytest.raises(ValueError, match="OOD fold 7 needs 256 items in the score order, but there are 216"):
        tasks.splits.split_by_score(entropy, seed=0, ood_fold=7)


def test_sampled_log_probs_match_running_the_lstm_on_the_samples():
    spec = lstm.LSTMSpec(6, 32, 2, 6)
    params = lstm.init(jax.random.key(0), spec)
    tokens, log_probs = fl.sample(jax.random.key(1), lstm.Bound(params), 5, 42)
    assert tokens.shape == (5, 42) and log_probs.shape == (5, 41, 6)
    assert np.all(tokens[:, 0] == B)
    logits, _ = jax.vmap(lstm.apply, in_axes=(None, 0))(params, jax.nn.one_hot(tokens[:, :-1], 6))
    np.testing.assert_allclose(log_probs, jax.nn.log_softmax(logits), atol=1e-5)


@pytest.mark.slow
def test_snapshot_scores_a_perfect_sampler():
    """An LSTM that always says EOS is correct exactly on tasks that admit the empty word."""
    spec = lstm.LSTMSpec(6, 4, 1, 6)
    params = jax.tree.map(jnp.zeros_like, lstm.init(jax.random.key(0), spec))
    params["bias_out"] = jnp.array([0, 0, 0, 0, 0, 50.0])
    family = fl.FormalLanguages(num_stored_sequences=3, num_scored_sequences=20)
    for task, expected in (([0, 0, 0, 0], 1.0), ([0, 0, -1, 0], 0.0)):
        behaviour, metrics = family.snapshot(jax.random.key(0), params, {"task": jnp.array(task)})
        assert float(metrics["correct"]) == expected
    assert behaviour["sequences"].shape == (3, 42) and behaviour["sequences"].dtype == jnp.int16
    assert behaviour["log_probs"].shape == (3, 41, 6) and behaviour["log_probs"].dtype == jnp.float16


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="formal_languages"):
        tasks.make("regular_languages")


def test_task_positions_are_block_boundaries_and_the_end():
    family = tasks.make("formal_languages")
    sequence = jnp.array(_seq(2, (0, -1, 1, 0), 12))  # B a a b c c c d d E E E
    data = family.emulation_data({"sequences": sequence, "log_probs": jnp.zeros((11, fl.VOCAB_SIZE))})
    # Inputs B a a b c c c d d E E predict a a b c c c d d E E E: new blocks after a, b, c and the end after d.
    expected = [False, False, True, True, False, False, True, False, True, False, False]
    np.testing.assert_array_equal(family.task_positions(data), expected)
