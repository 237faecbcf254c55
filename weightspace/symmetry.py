"""Permutation symmetries of weight spaces, described as data.

A *perm spec* mirrors a params dict: for each tensor it gives, per axis, either
`None` (the axis is not permuted) or a `PermAxis` naming the permutation that
acts on it. An axis made of `blocks` consecutive groups that are permuted
identically (the four gate blocks of an LSTM matrix) says so with `blocks`.
Equivariant code and tests read the spec instead of hard-coding indices.
"""

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from weightspace.types import Params, PRNGKey


class PermAxis(NamedTuple):
    """One tensor axis acted on by a named permutation."""

    # Name of the permutation, e.g. "hidden_0".
    perm: str
    # The axis is `blocks` consecutive copies of the permuted range.
    blocks: int = 1


# Per tensor, one entry per (trailing) axis.
PermSpec = dict[str, tuple[PermAxis | None, ...]]


def perm_sizes(params: Params, spec: PermSpec) -> dict[str, int]:
    """Size of every permutation in `spec`, read off the tensor shapes."""
    sizes: dict[str, int] = {}
    for name, axes in spec.items():
        shape = params[name].shape[-len(axes) :]
        for axis, dim in zip(axes, shape, strict=True):
            if axis is None:
                continue
            size, remainder = divmod(dim, axis.blocks)
            if remainder or sizes.setdefault(axis.perm, size) != size:
                raise ValueError(
                    f"Tensor {name!r} with shape {shape} does not fit permutation "
                    f"{axis.perm!r} of size {sizes.get(axis.perm, size)} in {axis.blocks} blocks."
                )
    return sizes


def _block_index(perm: jax.Array, blocks: int) -> jax.Array:
    """Index that applies `perm` [n] to each of `blocks` consecutive ranges: [blocks * n]."""
    n = perm.shape[0]
    return (jnp.arange(blocks)[:, None] * n + perm[None, :]).reshape(-1)


def permute(params: Params, spec: PermSpec, perms: Mapping[str, jax.Array]) -> Params:
    """Applies the permutations `perms` (name -> index array [n]) to `params`.

    The new tensor's entry i along a permuted axis is the old entry `perm[i]`.
    Permutations absent from `perms` are left alone. Leading axes beyond those
    in the spec (e.g. a batch of models) share the same permutation; vmap for
    per-model permutations.
    """
    unknown = set(perms) - {a.perm for axes in spec.values() for a in axes if a is not None}
    if unknown:
        raise KeyError(f"Unknown permutation(s) {sorted(unknown)}; the spec names {sorted(perm_sizes(params, spec))}.")
    out = dict(params)
    for name, axes in spec.items():
        x = params[name]
        for i, axis in enumerate(axes):
            if axis is not None and axis.perm in perms:
                index = _block_index(jnp.asarray(perms[axis.perm]), axis.blocks)
                x = jnp.take(x, index, axis=x.ndim - len(axes) + i)
        out[name] = x
    return out


def random_permutations(key: PRNGKey, params: Params, spec: PermSpec) -> dict[str, jax.Array]:
    """Draws an independent uniform permutation for every permutation in `spec`."""
    sizes = perm_sizes(params, spec)
    keys = jax.random.split(key, len(sizes))
    return {name: jax.random.permutation(k, size) for k, (name, size) in zip(keys, sorted(sizes.items()), strict=True)}


def random_permute(key: PRNGKey, params: Params, spec: PermSpec) -> Params:
    """`params` under fresh random permutations: the same function, other weights."""
    return permute(params, spec, random_permutations(key, params, spec))
