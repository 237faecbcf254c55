"""Emulation losses: how far the emulator's next-step distributions are from the zoo LSTM's.

Every loss maps the emulator's logits [..., time, vocab] and a target to a
scalar: a per-position distance, averaged over the positions that `mask`
[..., time] keeps (all when None) and over the batch.

The distribution losses take the target as log-probabilities or as logits:
`log_softmax` is always applied to it, which leaves log-probabilities
unchanged, so the formal-language zoo's stored log-softmax and the MNIST zoo's
stored readout logits are both accepted as they are. Everything is computed
in (at least) float32, so float16 stored targets lose nothing further. The
token cross-entropy takes integer target tokens [..., time] instead (formal
languages: `sequences[..., 1:]`); `TOKEN_LOSSES` names the losses that do.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

# (emulator logits [..., T, V], target [..., T, V] or tokens [..., T], mask [..., T] | None) -> scalar.
Loss = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def _log_probs(emulator_logits: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Both arguments as normalised log-probabilities in (at least) float32."""
    if emulator_logits.shape != target.shape:
        raise ValueError(f"Emulator logits {emulator_logits.shape} and target {target.shape} must have one shape.")
    dtype = jnp.promote_types(emulator_logits.dtype, jnp.float32)
    return jax.nn.log_softmax(emulator_logits.astype(dtype)), jax.nn.log_softmax(target.astype(dtype))


def _masked_mean(per_position: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Mean of `per_position` [..., T] over the positions `mask` keeps; 0 when it keeps none."""
    if mask is None:
        return jnp.mean(per_position)
    mask = jnp.broadcast_to(mask, per_position.shape).astype(bool)
    # `where`, not a product: a masked position holding inf (reverse KL
    # against an impossible symbol) must not turn the mean into NaN.
    total = jnp.sum(jnp.where(mask, per_position, 0.0))
    return total / jnp.maximum(jnp.sum(mask), 1)


def _kl(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
    """KL(p || q) over the last axis, with 0 log 0 = 0: [...]."""
    p = jnp.exp(log_p)
    # The `where` sits inside the product so that a zero p (a symbol the
    # target rules out: log p = -inf) gives 0 and a zero gradient, not NaN.
    return jnp.sum(p * jnp.where(p > 0, log_p - log_q, 0.0), axis=-1)


def total_variation(emulator_logits: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Total-variation distance 0.5 * sum |p - q| (the paper's loss), in [0, 1].

    The other distribution losses take the same arguments.

    Args:
      emulator_logits: [..., time, vocab].
      target: the zoo LSTM's log-probabilities or logits, [..., time, vocab]; any float dtype.
      mask: [..., time] (or broadcastable to it), true at the positions to average over; None for all.

    Returns:
      The mean distance over the kept positions, a float32 scalar (0 when none are kept).
    """
    log_p, log_q = _log_probs(emulator_logits, target)
    return _masked_mean(0.5 * jnp.sum(jnp.abs(jnp.exp(log_p) - jnp.exp(log_q)), axis=-1), mask)


def kl(emulator_logits: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """KL(target || emulator): the target's expected log-likelihood ratio (mass-covering)."""
    log_p, log_q = _log_probs(emulator_logits, target)
    return _masked_mean(_kl(log_q, log_p), mask)


def reverse_kl(emulator_logits: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """KL(emulator || target) (mode-seeking); infinite where the target gives a symbol probability 0."""
    log_p, log_q = _log_probs(emulator_logits, target)
    return _masked_mean(_kl(log_p, log_q), mask)


def jensen_shannon(emulator_logits: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Jensen-Shannon divergence 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2; in [0, log 2]."""
    log_p, log_q = _log_probs(emulator_logits, target)
    # log m in log space, so that tiny probabilities do not underflow to log 0.
    log_m = jnp.logaddexp(log_p, log_q) - jnp.log(2.0)
    return _masked_mean(0.5 * (_kl(log_p, log_m) + _kl(log_q, log_m)), mask)


def l2(emulator_logits: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Squared Euclidean distance between the log-probability vectors, summed over the vocabulary."""
    log_p, log_q = _log_probs(emulator_logits, target)
    return _masked_mean(jnp.sum(jnp.square(log_p - log_q), axis=-1), mask)


def cross_entropy(emulator_logits: jax.Array, target_tokens: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Cross-entropy of the emulator to the stored sequence's next tokens.

    Args:
      emulator_logits: [..., time, vocab].
      target_tokens: integer tokens [..., time] (formal languages: `sequences[..., 1:]`).
      mask: [..., time] (or broadcastable to it), true at the positions to average over; None for all.

    Returns:
      The mean negative log-likelihood over the kept positions, a float32 scalar.
    """
    if emulator_logits.shape[:-1] != target_tokens.shape:
        raise ValueError(
            f"Emulator logits {emulator_logits.shape} need target tokens of shape {emulator_logits.shape[:-1]}, "
            f"got {target_tokens.shape}."
        )
    log_p = jax.nn.log_softmax(emulator_logits.astype(jnp.promote_types(emulator_logits.dtype, jnp.float32)))
    picked = jnp.take_along_axis(log_p, target_tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return _masked_mean(-picked, mask)


LOSSES: dict[str, Loss] = {
    "total_variation": total_variation,
    "kl": kl,
    "reverse_kl": reverse_kl,
    "jensen_shannon": jensen_shannon,
    "l2": l2,
    "cross_entropy": cross_entropy,
}
# Losses whose target is the stored sequence's next tokens rather than the zoo LSTM's log-probs or logits.
TOKEN_LOSSES = frozenset({"cross_entropy"})


def get(name: str) -> Loss:
    """The loss called `name`; raises ValueError naming the valid names otherwise."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}.")
    return LOSSES[name]
