"""Type aliases shared across the library."""

from typing import Any

import jax

# A pytree of arrays: the zoo LSTM's parameters are a flat dict of named tensors.
Params = dict[str, jax.Array]
# A key from `jax.random.key`.
PRNGKey = jax.Array
# A generic pytree (nested dicts, lists, tuples of arrays).
PyTree = Any
