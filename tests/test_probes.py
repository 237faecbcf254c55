"""Downstream targets, metrics and probes: hand computations and planted relations."""

import numpy as np
import pytest

from weightspace import probes, targets
from weightspace.tasks import formal_languages, sequential_mnist


def test_r2_and_mae_by_hand():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.0, 2.0, 3.0, 5.0])
    # SS_res = 1, SS_tot = 1.5**2 + .5**2 + .5**2 + 1.5**2 = 5.
    assert targets.r2(predicted, true) == pytest.approx(0.8)
    assert targets.mae(predicted, true) == pytest.approx(0.25)
    assert targets.r2(np.full(4, 2.5), true) == pytest.approx(0.0)  # predicting the mean


def test_angular_error_wraps_around():
    assert targets.angular_error([350.0], [10.0]) == pytest.approx(20.0)
    assert targets.angular_error([10.0], [350.0]) == pytest.approx(20.0)
    assert targets.angular_error([0.0, 720.0], [180.0, 0.0]) == pytest.approx(90.0)  # 180 and 0
    assert targets.angular_error([359.0], [1.0]) == pytest.approx(2.0)


def test_all_components_accuracy_by_hand():
    true = np.array([[0, 1, 2], [3, 4, 5], [0, 0, 0], [1, 1, 1]])
    predicted = np.array([[0, 1, 2], [3, 4, 0], [0, 0, 0], [2, 1, 1]])
    task = targets.Classes("task", true, tuple(range(6)), ("d1", "d2", "d3"))
    scores = task.metrics(predicted, true)
    assert scores == {"accuracy": 0.5, "d1_accuracy": 0.75, "d2_accuracy": 1.0, "d3_accuracy": 0.75}


def test_family_targets_from_metadata():
    tasks = np.array([[0, -3, 2, 0], [0, 1, 1, -1]])
    fl = formal_languages.FormalLanguages().downstream_targets({"task": tasks, "correct": np.array([0.5, 1.0])})
    assert [t.name for t in fl] == ["task", "performance"]
    np.testing.assert_array_equal(fl[0].values, [[0, 5, 3], [4, 4, 2]])  # d + 3
    metadata = {
        "angle": np.array([10.0, 300.0]),
        "accuracy": np.array([0.9, 0.5]),
        "eval_loss": np.array([0.5, 1.5]),
        "train_loss": np.array([0.25, 0.5]),
        "weight_decay": np.array([0.0, 0.01], np.float32),
    }
    mnist = {t.name: t for t in sequential_mnist.SequentialMnist().downstream_targets(metadata)}
    np.testing.assert_allclose(mnist["generalisation_gap"].values, [0.25, 1.0])
    np.testing.assert_array_equal(mnist["weight_decay"].values[:, 0], [0, 2])
    steps = {t.name: t for t in targets.step_targets(np.array([0, 100, 1000, 100]))}
    np.testing.assert_array_equal(steps["step"].values[:, 0], [0, 1, 2, 1])
    np.testing.assert_allclose(steps["log_step"].values, np.log1p([0, 100, 1000, 100]))


def test_values_outside_the_labels_are_rejected():
    with pytest.raises(ValueError, match="outside its labels"):
        targets.Classes.of("weight_decay", np.array([0.0, 0.5]), sequential_mnist.WEIGHT_DECAYS)


def test_features_are_the_true_values_as_vectors():
    """What an oracle embeds: one-hot classes per component, standardised values, (sin, cos) angles."""
    task = targets.Classes("task", np.array([[0, 5, 3], [4, 4, 2]]), tuple(range(-3, 3)), ("d1", "d2", "d3"))
    features = task.features()
    assert features.shape == (2, 18) and features.dtype == np.float32
    np.testing.assert_array_equal(features.reshape(2, 3, 6).argmax(-1), task.values)
    np.testing.assert_array_equal(features.sum(1), [3, 3])
    performance = targets.Regression("performance", np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(performance.features()[:, 0], np.array([-1.0, 0.0, 1.0]) / np.sqrt(2 / 3), rtol=1e-6)
    angle = targets.Angle("angle", np.array([0.0, 90.0, 210.0]))
    np.testing.assert_allclose(angle.features(), [[0, 1], [1, 0], [-0.5, -np.sqrt(3) / 2]], atol=1e-6)


def _planted(n=600, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 8)).astype(np.float32)
    return rng, features


def test_linear_probe_recovers_a_planted_linear_relation():
    rng, features = _planted()
    values = 3.0 + features @ rng.normal(size=8) + 0.01 * rng.normal(size=len(features))
    target = targets.Regression("y", values)
    fit, test = np.arange(400), np.arange(400, 600)
    probe = probes.fit(target, features, fit, seed=1)
    scores = target.metrics(probe.predict(features[test]), values[test])
    assert scores["r2"] > 0.999
    assert scores["mae"] < 0.05
    assert probe.steps < 5000  # early stopping ended it


@pytest.mark.slow
def test_probes_recover_planted_classes_and_angles():
    _, features = _planted(seed=2)
    fit, test = np.arange(400), np.arange(400, 600)
    # Two components: the sign of one direction, and which of three bins another falls in.
    first = (features[:, 0] > 0).astype(int)
    second = np.digitize(features[:, 1], [-0.5, 0.5])
    classes = targets.Classes("c", np.stack([first, second], axis=1), (0, 1, 2), ("a", "b"))
    for hidden in probes.PREDICTORS.values():
        probe = probes.fit(classes, features, fit, hidden_sizes=hidden)
        scores = classes.metrics(probe.predict(features[test]), classes.values[test])
        assert scores["a_accuracy"] > 0.9 and scores["b_accuracy"] > 0.85, (hidden, scores)
    angles = np.rad2deg(np.arctan2(features[:, 2], features[:, 3])) % 360
    angle = targets.Angle("angle", angles)
    probe = probes.fit(angle, features, fit, hidden_sizes=(64,), seed=3)
    assert angle.metrics(probe.predict(features[test]), angles[test])["error_degrees"] < 10.0
    # Unrelated features give chance-level angles (90 degrees on average).
    probe = probes.fit(angle, features[:, 4:], fit, seed=3)
    assert angle.metrics(probe.predict(features[test, 4:]), angles[test])["error_degrees"] > 60.0


def test_mismatched_features_are_named():
    target = targets.Regression("y", np.zeros(10))
    with pytest.raises(ValueError, match="one row per target value"):
        probes.fit(target, np.zeros((9, 4)), np.arange(9))
