"""Downstream targets: what an embedding of θ should reveal about the LSTM θ (design §5).

A target holds one value per zoo snapshot and knows how a predictor's raw
outputs are trained on it (`encode`, and `loss`, a static function of the
outputs and encoded values only, so jitted training compiles once per kind),
read back (`decode`) and scored (`metrics`); `features` gives its true values
as real vectors, the input of the oracle baseline's embedding. Three kinds
cover the paper's tables:

* `Classes`: one or more categorical components, e.g. the formal-language task
  as (d1, d2, d3), each 6-way; scored by the accuracy of getting every
  component right and, with several components, each one's accuracy;
* `Regression`: a real number (performance, log step, generalisation gap),
  standardised for training; scored by R² and mean absolute error;
* `Angle`: degrees on the circle (the MNIST rotation), predicted as (sin, cos);
  scored by the mean absolute angular error with wrap-around.

Families name their own targets (`TaskFamily.downstream_targets`); the
training step is a target of every zoo (`step_targets`).
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def accuracy(predicted: np.ndarray, true: np.ndarray) -> float:
    """Fraction of rows [N, ...] where every entry is right."""
    predicted, true = np.asarray(predicted), np.asarray(true)
    return float(np.mean(np.all((predicted == true).reshape(len(true), -1), axis=1)))


def r2(predicted: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (SS_tot about the true values' own mean)."""
    predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    total = np.sum((true - true.mean()) ** 2)
    residual = np.sum((true - predicted) ** 2)
    return float(1.0 - residual / total) if total > 0 else float("nan")


def mae(predicted: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, np.float64) - np.asarray(true, np.float64))))


def angular_distance(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Absolute differences of angles in degrees, the short way round the circle (each in [0, 180])."""
    difference = np.asarray(predicted, np.float64) - np.asarray(true, np.float64)
    return np.abs((difference + 180.0) % 360.0 - 180.0)


def angular_error(predicted: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute difference of angles in degrees, the short way round the circle (in [0, 180])."""
    return float(np.mean(angular_distance(predicted, true)))


# Metric names (as the evaluation reports them) for which lower is better: errors and losses.
LOWER_IS_BETTER = ("_mae", "_degrees", "cloning", "loss")


def lower_is_better(metric: str) -> bool:
    return metric.endswith(LOWER_IS_BETTER)


def _squared_error(outputs: jax.Array, encoded: jax.Array) -> jax.Array:
    """Mean squared error per example: outputs, encoded [B, D] -> [B]."""
    return jnp.mean((outputs - encoded) ** 2, axis=-1)


@dataclasses.dataclass(frozen=True)
class Classes:
    """Categorical target with `len(components)` components, each `len(labels)`-way.

    Attributes:
      values: class indices [N, K] into `labels`.
      labels: the value each class index stands for (e.g. the step of each class).
      components: names of the K components (e.g. ("d1", "d2", "d3")).
    """

    name: str
    values: np.ndarray
    labels: tuple
    components: tuple[str, ...]

    @classmethod
    def of(cls, name: str, values: np.ndarray, labels: Sequence, components: Sequence[str] = ()) -> "Classes":
        """The target from raw values [N] or [N, K] that each appear in `labels`."""
        values = np.asarray(values).reshape(len(values), -1)
        labels = np.asarray(labels)
        index = np.argmin(np.abs(values[..., None] - labels), axis=-1)
        if not np.allclose(labels[index], values):
            raise ValueError(f"Target {name!r} has values outside its labels {labels.tolist()}.")
        return cls(name, index.astype(np.int32), tuple(labels.tolist()), tuple(components) or (name,))

    @property
    def output_size(self) -> int:
        return len(self.components) * len(self.labels)

    def fitted(self, indices: np.ndarray) -> "Classes":
        return self

    def encode(self) -> np.ndarray:
        return self.values

    def features(self) -> np.ndarray:
        """Every component's class one-hot: [N, K * C] float32."""
        return np.eye(len(self.labels), dtype=np.float32)[self.values].reshape(len(self.values), -1)

    @staticmethod
    def loss(outputs: jax.Array, encoded: jax.Array) -> jax.Array:
        """Cross-entropy averaged over components: outputs [B, K * C], encoded [B, K] -> [B]."""
        logits = outputs.reshape(*encoded.shape, outputs.shape[-1] // encoded.shape[-1])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, encoded), axis=-1)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Predicted class indices [N, K]."""
        outputs = np.asarray(outputs)
        return np.argmax(outputs.reshape(len(outputs), len(self.components), len(self.labels)), axis=-1)

    def metrics(self, predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
        scores = {"accuracy": accuracy(predicted, true)}
        if len(self.components) > 1:
            for k, component in enumerate(self.components):
                scores[f"{component}_accuracy"] = accuracy(predicted[:, k], true[:, k])
        return scores


@dataclasses.dataclass(frozen=True)
class Regression:
    """A real-valued target [N], standardised by the mean and std of the fitting set."""

    name: str
    values: np.ndarray
    mean: float = 0.0
    std: float = 1.0

    output_size = 1

    def fitted(self, indices: np.ndarray) -> "Regression":
        fit = np.asarray(self.values[indices], np.float64)
        return dataclasses.replace(self, mean=float(fit.mean()), std=float(fit.std()) or 1.0)

    def encode(self) -> np.ndarray:
        return ((np.asarray(self.values, np.float32) - self.mean) / self.std)[:, None]

    def features(self) -> np.ndarray:
        """The values standardised over all snapshots: [N, 1] float32."""
        return self.fitted(np.arange(len(self.values))).encode()

    loss = staticmethod(_squared_error)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs)[:, 0] * self.std + self.mean

    def metrics(self, predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
        return {"r2": r2(predicted, true), "mae": mae(predicted, true)}


@dataclasses.dataclass(frozen=True)
class Angle:
    """An angle target in degrees [N], predicted as (sin, cos)."""

    name: str
    values: np.ndarray

    output_size = 2

    def fitted(self, indices: np.ndarray) -> "Angle":
        return self

    def encode(self) -> np.ndarray:
        radians = np.deg2rad(np.asarray(self.values, np.float64))
        return np.stack([np.sin(radians), np.cos(radians)], axis=-1).astype(np.float32)

    def features(self) -> np.ndarray:
        """(sin, cos) of each angle: [N, 2] float32."""
        return self.encode()

    loss = staticmethod(_squared_error)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        outputs = np.asarray(outputs, np.float64)
        return np.rad2deg(np.arctan2(outputs[:, 0], outputs[:, 1])) % 360.0

    def metrics(self, predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
        return {"error_degrees": angular_error(predicted, true)}


Target = Classes | Regression | Angle


def step_targets(steps: np.ndarray) -> list[Target]:
    """The training step of every snapshot: which of the zoo's snapshot steps (classes) and log(1 + step)."""
    steps = np.asarray(steps)
    return [
        Classes.of("step", steps, np.unique(steps)),
        Regression("log_step", np.log1p(steps.astype(np.float64))),
    ]


def downstream(family, metadata: dict[str, np.ndarray]) -> list[Target]:
    """Every downstream target of a zoo of `family` (a `TaskFamily`), from its metadata columns: the
    family's own, then the training step."""
    return [*family.downstream_targets(metadata), *step_targets(metadata["step"])]


def subset_scores(target: Target, predicted: np.ndarray, subsets: dict[str, np.ndarray]) -> dict[str, dict]:
    """{subset: {"<target>_<metric>": value}} of predictions for every snapshot [N, ...] (an empty subset: {})."""
    scores = {}
    for s, i in subsets.items():
        metrics = target.metrics(predicted[i], target.values[i]) if len(i) else {}
        scores[s] = {f"{target.name}_{k}": v for k, v in metrics.items()}
    return scores
