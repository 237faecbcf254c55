"""Perm specs and permutations as data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weightspace import lstm, symmetry

SPEC = lstm.LSTMSpec(3, 4, 2, 2)


def test_block_permutation_moves_each_gate_block():
    params = lstm.init(jax.random.key(0), SPEC)
    perm = jnp.array([2, 0, 3, 1])
    out = symmetry.permute(params, lstm.perm_spec(SPEC), {"hidden_0": perm})
    for block in range(4):
        np.testing.assert_array_equal(
            out["bias_ih_l0"][4 * block : 4 * block + 4], params["bias_ih_l0"][4 * block + perm]
        )
    np.testing.assert_array_equal(out["weight_hh_l0"][:4], params["weight_hh_l0"][perm][:, perm])
    np.testing.assert_array_equal(out["weight_ih_l1"], params["weight_ih_l1"][:, perm])
    np.testing.assert_array_equal(out["weight_out"], params["weight_out"])


def test_inverse_permutation_restores_the_params():
    params = lstm.init(jax.random.key(0), SPEC)
    spec = lstm.perm_spec(SPEC)
    perms = symmetry.random_permutations(jax.random.key(1), params, spec)
    inverse = {name: jnp.argsort(p) for name, p in perms.items()}
    back = symmetry.permute(symmetry.permute(params, spec, perms), spec, inverse)
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])


def test_perm_sizes_and_unknown_names():
    params = lstm.init(jax.random.key(0), SPEC)
    spec = lstm.perm_spec(SPEC)
    assert symmetry.perm_sizes(params, spec) == {"hidden_0": 4, "hidden_1": 4}
    with pytest.raises(KeyError, match="hidden_7"):
        symmetry.permute(params, spec, {"hidden_7": jnp.arange(4)})


def test_leading_batch_axes_share_the_permutation():
    params = jax.vmap(lstm.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 3), SPEC)
    perm = jnp.array([1, 0, 3, 2])
    out = symmetry.permute(params, lstm.perm_spec(SPEC), {"hidden_1": perm})
    np.testing.assert_array_equal(out["weight_out"], params["weight_out"][:, :, perm])
