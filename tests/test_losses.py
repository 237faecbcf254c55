"""Emulation losses against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weightspace import losses

# Two distributions over 3 symbols: the emulator's p and the target's q.
P = np.array([0.2, 0.3, 0.5])
Q = np.array([0.1, 0.6, 0.3])
DISTRIBUTION_LOSSES = sorted(set(losses.LOSSES) - losses.TOKEN_LOSSES)
SYMMETRIC = ("total_variation", "jensen_shannon", "l2")


def _numpy_kl(a, b):
    return np.sum(a * np.log(a / b), axis=-1)


def _numpy_loss(name, p, q):
    """Per-position distance between distributions p and q [..., V], written out in NumPy."""
    if name == "total_variation":
        return 0.5 * np.sum(np.abs(p - q), axis=-1)
    if name == "kl":
        return _numpy_kl(q, p)
    if name == "reverse_kl":
        return _numpy_kl(p, q)
    if name == "jensen_shannon":
        m = (p + q) / 2
        return 0.5 * _numpy_kl(p, m) + 0.5 * _numpy_kl(q, m)
    if name == "l2":
        return np.sum((np.log(p) - np.log(q)) ** 2, axis=-1)
    raise AssertionError(name)


def _random_distributions(seed, shape):
    logits = np.random.default_rng(seed).normal(size=shape) * 2
    return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)


def test_hand_computed_values():
    logits, target = jnp.log(P), jnp.log(Q)
    # 0.5 * (0.1 + 0.3 + 0.2)
    np.testing.assert_allclose(losses.total_variation(logits, target), 0.3, rtol=1e-6)
    # 0.1 ln(0.1/0.2) + 0.6 ln(0.6/0.3) + 0.3 ln(0.3/0.5)
    np.testing.assert_allclose(losses.kl(logits, target), 0.1933259, rtol=1e-5)
    # 0.2 ln(0.2/0.1) + 0.3 ln(0.3/0.6) + 0.5 ln(0.5/0.3)
    np.testing.assert_allclose(losses.reverse_kl(logits, target), 0.1860980, rtol=1e-5)
    # -ln p[2]
    np.testing.assert_allclose(losses.cross_entropy(logits, jnp.array(2)), -np.log(0.5), rtol=1e-6)


@pytest.mark.parametrize("name", DISTRIBUTION_LOSSES)
def test_against_numpy(name):
    p, q = _random_distributions(0, (2, 5, 4)), _random_distributions(1, (2, 5, 4))
    expected = _numpy_loss(name, p, q).mean()
    # The emulator gives unnormalised logits, the target log-probs.
    actual = losses.get(name)(jnp.log(p) + 3.0, jnp.log(q))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


@pytest.mark.parametrize("name", DISTRIBUTION_LOSSES)
def test_target_logits_and_float16_log_probs_are_accepted(name):
    p, q = _random_distributions(2, (3, 6)), _random_distributions(3, (3, 6))
    logits = jnp.log(p)
    reference = losses.get(name)(logits, jnp.log(q))
    # Logits of q (shifted per position, as a readout's would be) give the same loss.
    shifted = jnp.log(q) + jnp.arange(3.0)[:, None] * 5
    np.testing.assert_allclose(losses.get(name)(logits, shifted), reference, rtol=1e-5)
    # float16 storage loses precision but is computed with in float32.
    half = losses.get(name)(logits, jnp.log(q).astype(jnp.float16))
    assert half.dtype == jnp.float32
    np.testing.assert_allclose(half, reference, rtol=2e-2, atol=1e-3)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_masking(name):
    p, q = _random_distributions(4, (2, 5, 4)), _random_distributions(5, (2, 5, 4))
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], bool)
    if name in losses.TOKEN_LOSSES:
        tokens = np.random.default_rng(6).integers(4, size=(2, 5))
        per_position = -np.log(np.take_along_axis(p, tokens[..., None], -1)[..., 0])
        target = garbled = jnp.array(tokens)
    else:
        per_position = _numpy_loss(name, p, q)
        target = jnp.log(q)
        # Garbage at masked positions must not leak into the mean.
        garbled = jnp.array(np.where(mask[..., None], np.log(q), np.nan))
    loss = losses.get(name)
    np.testing.assert_allclose(loss(jnp.log(p), garbled, mask), per_position[mask].mean(), rtol=1e-5)
    # A mask for one sequence is broadcast over the batch.
    np.testing.assert_allclose(loss(jnp.log(p), target, mask[1]), per_position[:, mask[1]].mean(), rtol=1e-5)
    np.testing.assert_allclose(loss(jnp.log(p), garbled, np.zeros_like(mask)), 0.0)


@pytest.mark.parametrize("name", DISTRIBUTION_LOSSES)
def test_zero_exactly_when_equal(name):
    logits = jnp.log(_random_distributions(7, (4, 5)))
    np.testing.assert_allclose(losses.get(name)(logits, logits - 1.0), 0.0, atol=1e-6)
    assert losses.get(name)(logits, logits[::-1]) > 1e-3


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric(name):
    a, b = jnp.log(_random_distributions(8, (4, 5))), jnp.log(_random_distributions(9, (4, 5)))
    np.testing.assert_allclose(losses.get(name)(a, b), losses.get(name)(b, a), rtol=1e-6)


def test_kl_is_not_symmetric():
    a, b = jnp.log(P), jnp.log(Q)
    assert abs(float(losses.kl(a, b)) - float(losses.kl(b, a))) > 1e-3
    np.testing.assert_allclose(losses.kl(a, b), losses.reverse_kl(b, a), rtol=1e-6)


def test_impossible_target_symbols():
    """A target probability of exactly 0 (log-prob -inf): KL and JS stay finite, reverse KL is infinite."""
    logits = jnp.log(jnp.array(P))
    target = jnp.array([np.log(0.4), -np.inf, np.log(0.6)])
    np.testing.assert_allclose(losses.kl(logits, target), 0.4 * np.log(2) + 0.6 * np.log(1.2), rtol=1e-5)
    assert np.isinf(losses.reverse_kl(logits, target))
    for name in ("kl", "jensen_shannon", "total_variation", "cross_entropy"):
        tokens_or_target = jnp.array(0) if name in losses.TOKEN_LOSSES else target
        grad = jax.grad(losses.get(name))(logits, tokens_or_target)
        assert np.all(np.isfinite(grad)), name


def test_bounds():
    a, b = jnp.array([[30.0, 0, 0]]), jnp.array([[0.0, 30, 0]])
    np.testing.assert_allclose(losses.total_variation(a, b), 1.0, atol=1e-6)
    np.testing.assert_allclose(losses.jensen_shannon(a, b), np.log(2), atol=1e-5)


def test_shape_errors():
    with pytest.raises(ValueError, match="one shape"):
        losses.total_variation(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="target tokens of shape"):
        losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 3), jnp.int32))


def test_registry():
    assert losses.get("total_variation") is losses.total_variation
    assert set(losses.LOSSES) >= losses.TOKEN_LOSSES
    with pytest.raises(ValueError, match=r"'tv'.*cross_entropy, jensen_shannon, kl, l2, reverse_kl, total_variation"):
        losses.get("tv")
