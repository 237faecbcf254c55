"""Interactive probing: each probing input is chosen after seeing the last answer.

At every step the encoder LSTM's output (after it read BOS or the previous
answer) becomes the next probing inputs, the probed LSTMs take one step
(`lstm.step`, vmapped over the batch of params and the parallel sequences,
carrying their state), and their answers are the encoder LSTM's next input.
The whole dialogue is one `lax.scan`; after it the encoder LSTM reads the
last answer and EOS. See `probing.py` for the sizes.
"""

import jax
import jax.numpy as jnp
import ml_collections

from weightspace import lstm
from weightspace.encoders import probing
from weightspace.types import Params

NAME = "interactive"
GROUP = "functionalist"  # reads what the LSTM does on probing inputs

# One probing step of a batch of LSTMs, each on its `num_parallel` sequences:
# params [batch, ...], inputs [batch, parallel, in], state of [batch, parallel, layers, H].
_batched_step = jax.vmap(jax.vmap(lstm.step, in_axes=(None, 0, 0)))


def default_config() -> ml_collections.ConfigDict:
    return probing.default_config(NAME)


class Interactive(probing.ProbingEncoder):
    """Encoder LSTM <-> probed LSTM dialogue -> embedding."""

    def _dialogue(self, params: Params) -> tuple[jax.Array, jax.Array, jax.Array, lstm.State]:
        """Runs the probing steps.

        Returns:
          (probing inputs [time, batch, parallel, input], answer vectors [time, batch, parallel * output],
          the encoder LSTM's next input (the transformed last answers) [batch, lstm_size], its state).
        """
        batch = params["weight_out"].shape[0]
        probed_state = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (batch, self.num_parallel, *x.shape)), lstm.initial_state(self.spec)
        )

        def probing_step(carry, step):
            x, state, probed_state = carry
            ys, state = self.lstm(x[None], state)
            probes = self.probes(ys[0], step)
            outputs, probed_state = _batched_step(params, probes, probed_state)
            answers = self.answer_vectors(outputs)
            return (self.read_answers(answers), state, probed_state), (probes, answers)

        start = (self.start(batch), self.lstm.initial_state(batch), probed_state)
        (x, state, _), (probes, answers) = jax.lax.scan(probing_step, start, jnp.arange(self.probe_length))
        return probes, answers, x, state

    def probing_inputs(self, params: Params) -> jax.Array:
        return self._dialogue(params)[0]

    def encode(self, params: Params) -> jax.Array:
        _, answers, x, state = self._dialogue(params)
        return self.finish(x[None], state, answers)
