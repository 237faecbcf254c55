"""Downstream probes: small predictors fitted on frozen embeddings (design §5).

A probe maps embeddings [N, E] to a target (`weightspace.targets`): a linear
model (`hidden_sizes=()`) or an MLP with ReLU hidden layers. It is fitted on
the train split's embeddings with full-batch AdamW; a seeded held-out part of
those embeddings decides early stopping and the parameters kept. Features are
standardised with the fitting part's statistics. The whole fit is one jitted
`lax.while_loop`, so fitting many probes costs no Python loop over steps.
"""

import dataclasses
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from weightspace import targets as targets_lib

# The two predictors every evaluation reports, by name: hidden layer sizes.
PREDICTORS = {"linear": (), "mlp": (128,)}

Weights = list[tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Probe:
    """A fitted probe: `predict(features)` gives the target's values (class indices, reals or degrees)."""

    target: targets_lib.Target
    weights: Weights
    feature_mean: np.ndarray
    feature_std: np.ndarray
    # Optimisation steps taken before early stopping, and the held-out loss of the kept weights.
    steps: int
    validation_loss: float

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """Raw outputs [N, target.output_size]."""
        standardised = (np.asarray(features, np.float32) - self.feature_mean) / self.feature_std
        return np.asarray(_forward(self.weights, jnp.asarray(standardised)))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.target.decode(self.outputs(features))


def _forward(weights: Weights, x: jax.Array) -> jax.Array:
    for w, b in weights[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = weights[-1]
    return x @ w + b


def _init(key: jax.Array, sizes: Sequence[int]) -> Weights:
    """Glorot-normal kernels and zero biases for layers sizes[0] -> ... -> sizes[-1]."""
    keys = jax.random.split(key, len(sizes) - 1)
    initializer = jax.nn.initializers.glorot_normal()
    return [(initializer(k, (m, n)), jnp.zeros(n)) for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)]


@partial(jax.jit, static_argnames=("loss_fn", "learning_rate", "weight_decay", "max_steps", "patience"))
def _train(weights, x_fit, y_fit, x_held, y_held, *, loss_fn, learning_rate, weight_decay, max_steps, patience):
    """Full-batch AdamW until `max_steps` or `patience` steps without a better held-out loss."""
    optimizer = optax.adamw(learning_rate, weight_decay=weight_decay)

    def mean_loss(weights, x, y):
        return jnp.mean(loss_fn(_forward(weights, x), y))

    def cond(carry):
        _, _, _, _, step, since_best = carry
        return (step < max_steps) & (since_best < patience)

    def body(carry):
        weights, opt_state, best, best_loss, step, since_best = carry
        grads = jax.grad(mean_loss)(weights, x_fit, y_fit)
        updates, opt_state = optimizer.update(grads, opt_state, weights)
        weights = optax.apply_updates(weights, updates)
        held_loss = mean_loss(weights, x_held, y_held)
        better = held_loss < best_loss
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), weights, best)
        best_loss = jnp.where(better, held_loss, best_loss)
        since_best = jnp.where(better, 0, since_best + 1)
        return weights, opt_state, best, best_loss, step + 1, since_best

    initial_loss = mean_loss(weights, x_held, y_held)
    carry = (weights, optimizer.init(weights), weights, initial_loss, jnp.int32(0), jnp.int32(0))
    _, _, best, best_loss, step, _ = jax.lax.while_loop(cond, body, carry)
    return best, best_loss, step


def fit(
    target: targets_lib.Target,
    features: np.ndarray,
    indices: np.ndarray,
    *,
    hidden_sizes: Sequence[int] = (),
    seed: int = 0,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    max_steps: int = 5000,
    patience: int = 200,
    held_out_fraction: float = 0.2,
) -> Probe:
    """Fits a probe for `target` on `features[indices]` (features [N, E]; target values for all N).

    A seeded `held_out_fraction` of `indices` is held out for early stopping;
    the rest is fitted.
    """
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or len(features) != len(target.values):
        raise ValueError(
            f"Probe features must be [N, E] with one row per target value ({len(target.values)}), "
            f"got shape {features.shape}."
        )
    indices = np.random.default_rng(seed).permutation(np.asarray(indices))
    num_held = max(1, round(held_out_fraction * len(indices)))
    if len(indices) - num_held < 1:
        raise ValueError(f"Cannot fit target {target.name!r} on {len(indices)} examples.")
    held, fitting = indices[:num_held], indices[num_held:]
    target = target.fitted(fitting)
    mean, std = features[fitting].mean(axis=0), features[fitting].std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)  # a constant feature stays as it is
    x = (features - mean) / std
    y = target.encode()
    weights = _init(jax.random.key(seed), (features.shape[1], *hidden_sizes, target.output_size))
    best, best_loss, steps = _train(
        weights,
        jnp.asarray(x[fitting]),
        jnp.asarray(y[fitting]),
        jnp.asarray(x[held]),
        jnp.asarray(y[held]),
        loss_fn=target.loss,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        max_steps=max_steps,
        patience=patience,
    )
    return Probe(target, best, mean, std, int(steps), float(best_loss))
