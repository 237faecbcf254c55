"""Random hidden-neuron permutation augmentation for encoders that see raw weights.

A permuted LSTM computes the same function with other weights, so training
an encoder that is not built invariant (flat, parameter transformer) on
freshly permuted copies teaches it the symmetry. Pure JAX: it runs inside the
jitted train step.
"""

import jax

from weightspace import lstm, symmetry
from weightspace.types import Params, PRNGKey


def augment(key: PRNGKey, params: Params, spec: lstm.LSTMSpec) -> Params:
    """Permutes every batch element's hidden neurons (every layer) independently.

    Args:
      key: fresh for every call (e.g. `jax.random.fold_in(key, step)`).
      params: zoo-LSTM params, every tensor [batch, ...].
      spec: their sizes.

    Returns:
      Params of the same shapes, each model under its own uniformly random
      permutation of each layer's hidden neurons.
    """
    batch = lstm.check_params(params, spec)
    if len(batch) != 1:
        raise ValueError(f"augment takes params with one leading batch axis, got batch shape {batch}.")
    perm_spec = lstm.perm_spec(spec)
    keys = jax.random.split(key, batch[0])
    return jax.vmap(lambda k, p: symmetry.random_permute(k, p, perm_spec))(keys, params)
