"""Non-interactive probing: a fixed, learned sequence of probing inputs.

The probing input of step t comes from a learned 256-wide vector of its own,
so the probes do not depend on the probed LSTM and all of them are known up
front: the probed LSTMs run over the whole probing sequence at once
(`lstm.apply`, vmapped over the batch of params), then the encoder LSTM
reads BOS, the transformed answers and EOS. See `probing.py` for the sizes.
"""

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm
from weightspace.encoders import probing
from weightspace.types import Params

NAME = "noninteractive"
GROUP = "functionalist"  # reads what the LSTM does on probing inputs


def default_config() -> ml_collections.ConfigDict:
    return probing.default_config(NAME)


class NonInteractive(probing.ProbingEncoder):
    """Learned per-step vectors -> fixed probes -> probed LSTM -> encoder LSTM -> embedding."""

    def __init__(self, spec: lstm.LSTMSpec, *, rngs: nnx.Rngs, **kwargs):
        """Takes the arguments of `probing.ProbingEncoder` and adds the learned per-step vectors."""
        super().__init__(spec, rngs=rngs, **kwargs)
        self.step_vectors = nnx.Param(jax.random.normal(rngs.params(), (self.probe_length, self.bos.shape[0])))

    def _fixed_probes(self) -> jax.Array:
        """The probing inputs, the same for every LSTM: [time, parallel, input]."""
        return self.probes(self.step_vectors[...], slice(None))

    def probing_inputs(self, params: Params) -> jax.Array:
        probes = self._fixed_probes()
        return jnp.broadcast_to(probes[:, None], (probes.shape[0], params["weight_out"].shape[0], *probes.shape[1:]))

    def encode(self, params: Params) -> jax.Array:
        probes = jnp.swapaxes(self._fixed_probes(), 0, 1)  # [parallel, time, input]
        outputs, _ = jax.vmap(lstm.apply, in_axes=(0, None))(params, probes)  # [batch, parallel, time, output]
        answers = self.answer_vectors(jnp.transpose(outputs, (2, 0, 1, 3)))  # [time, batch, parallel * output]
        inputs = self.read_answers(answers)  # [time, batch, lstm_size]
        batch = answers.shape[1]
        return self.finish(jnp.concatenate([self.start(batch)[None], inputs]), self.lstm.initial_state(batch), answers)
