"""Non-interactive probing: a fixed, learned sequence of probing inputs.

The probing input of step t comes from a learned 256-wide vector of its own,
so the probes do not depend on the probed LSTM and all of them are known up
front: the probed LSTMs run over the whole probing sequence at once
(`lstm.apply`, vmapped over the batch of params), then the encoder LSTM
reads BOS, the transformed answers and EOS. See `probing.py` for the sizes.
With `probe_learning="reinforce"` each LSTM's tokens are drawn from the
per-step softmax while training (one string for all in eval mode: the argmax).
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
        if self.teacher_steps:
            raise ValueError("teacher_steps needs an encoder that reads the answers while probing (interactive).")
        self.step_vectors = nnx.Param(jax.random.normal(rngs.params(), (self.probe_length, self.bos.shape[0])))

    def _probes(self, batch: int) -> tuple[jax.Array, jax.Array]:
        """(probe logits [time, parallel, input], probing inputs [time, batch, parallel, input]): the same for
        every LSTM, except with 'reinforce' while training, where each LSTM's tokens are drawn for it."""
        logits = self.probe_logits(self.step_vectors[...], slice(None))
        if self.sampler is not None and not self.sampler.deterministic:
            every = jnp.broadcast_to(logits[:, None], (logits.shape[0], batch, *logits.shape[1:]))
            return logits, self.activate(every, self.sampler.keys(1)[0])
        probes = self.activate(logits, jnp.zeros((2,), jnp.uint32))
        return logits, jnp.broadcast_to(probes[:, None], (probes.shape[0], batch, *probes.shape[1:]))

    def probing_inputs(self, params: Params) -> jax.Array:
        return self._probes(params["weight_out"].shape[0])[1]

    def encode(self, params: Params) -> jax.Array:
        batch = params["weight_out"].shape[0]
        logits, probes = self._probes(batch)
        per_lstm = jnp.moveaxis(probes, 0, 2)  # [batch, parallel, time, input]
        outputs, _ = jax.vmap(lstm.apply)(params, per_lstm)  # [batch, parallel, time, output]
        outputs = jnp.transpose(outputs, (2, 0, 1, 3))  # [time, batch, parallel, output]
        every = jnp.broadcast_to(logits[:, None], probes.shape)
        self.learn_probes(every, probes, outputs)
        answers = self.answer_vectors(outputs)  # [time, batch, parallel * output]
        inputs = self.read_answers(answers, probes)  # [time, batch, lstm_size]
        return self.finish(jnp.concatenate([self.start(batch)[None], inputs]), self.lstm.initial_state(batch), answers)
