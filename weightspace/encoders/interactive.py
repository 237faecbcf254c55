"""Interactive probing: each probing input is chosen after seeing the last answer.

At every step the encoder LSTM's output (after it read BOS or the previous
answer) becomes the next probing inputs, the probed LSTMs take one step
(`lstm.step`, vmapped over the batch of params and the parallel sequences,
carrying their state), and their answers are the encoder LSTM's next input.
The whole dialogue is one `lax.scan`; after it the encoder LSTM reads the
last answer and EOS. See `probing.py` for the sizes.

With `prior_policy`, the probes start from a hand-written adaptive prober
instead of fixed strings: at every step the task family's `probe_policy`
(`weightspace.tasks.base.ProbePolicy`) proposes the next input from the
answers so far, and `prior_scale` times it (a learned scale) is added to the
probe MLP's logits, as the fixed strings' offsets are in `probing.py`.
"""

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from weightspace import lstm
from weightspace.encoders import probing
from weightspace.tasks.base import ProbePolicy
from weightspace.types import Params

NAME = "interactive"
GROUP = "functionalist"  # reads what the LSTM does on probing inputs

# One probing step of a batch of LSTMs, each on its `num_parallel` sequences:
# params [batch, ...], inputs [batch, parallel, in], state of [batch, parallel, layers, H].
_batched_step = jax.vmap(jax.vmap(lstm.step, in_axes=(None, 0, 0)))


def default_config() -> ml_collections.ConfigDict:
    config = probing.default_config(NAME)
    # With prior_scale > 0: the offsets added to each step's logits are `prior_scale` (then learned) times the
    # next input of the task family's probing policy (`probe_policy`, a hand-written adaptive prober: combination
    # locks' adaptive search), given the answers so far, instead of fixed strings. False (the paper's setting
    # has no prior): the fixed strings of `probe_prior`.
    config.prior_policy = False
    return config


class Interactive(probing.ProbingEncoder):
    """Encoder LSTM <-> probed LSTM dialogue -> embedding."""

    def __init__(
        self,
        spec: lstm.LSTMSpec,
        *,
        prior_scale: float,
        prior_policy: bool,
        probe_policy: ProbePolicy | None = None,
        **fields,
    ):
        """The probing encoder's modules (`probing.ProbingEncoder`), with `probe_policy` when `prior_policy`."""
        if prior_policy and prior_scale and probe_policy is None:
            raise ValueError(f"prior_policy with prior_scale={prior_scale} needs a probe_policy.")
        policy = prior_policy and bool(prior_scale)
        super().__init__(spec, prior_scale=0.0 if policy else prior_scale, **fields)
        self.policy = probe_policy if policy else None
        self.policy_scale = nnx.Param(jnp.float32(prior_scale)) if policy else None

    def _dialogue(self, params: Params) -> tuple[jax.Array, jax.Array, jax.Array, lstm.State]:
        """Runs the probing steps.

        Returns:
          (probing inputs [time, batch, parallel, input], answer vectors [time, batch, parallel * output],
          the encoder LSTM's next input (the transformed last answers) [batch, lstm_size], its state).
        """
        batch = params["weight_out"].shape[0]

        def per_sequence(tree):  # one copy for every LSTM of the batch and each of its parallel sequences
            return jax.tree.map(lambda x: jnp.broadcast_to(x, (batch, self.num_parallel, *x.shape)), tree)

        probed_state = per_sequence(lstm.initial_state(self.spec))
        # The policy's state for every sequence (None without a policy).
        search = None if self.policy is None else per_sequence(self.policy.initial_state())

        def probing_step(carry, step):
            x, state, probed_state, search = carry
            ys, state = self.lstm(x[None], state)
            offsets = None if search is None else self.policy_scale * jax.vmap(jax.vmap(self.policy.propose))(search)
            probes = self.probes(ys[0], step, offsets)
            outputs, probed_state = _batched_step(params, probes, probed_state)
            if search is not None:
                search = jax.vmap(jax.vmap(self.policy.update))(search, outputs)
            answers = self.answer_vectors(outputs)
            return (self.read_answers(answers), state, probed_state, search), (probes, answers)

        start = (self.start(batch), self.lstm.initial_state(batch), probed_state, search)
        (x, state, _, _), (probes, answers) = jax.lax.scan(probing_step, start, jnp.arange(self.probe_length))
        return probes, answers, x, state

    def probing_inputs(self, params: Params) -> jax.Array:
        return self._dialogue(params)[0]

    def encode(self, params: Params) -> jax.Array:
        _, answers, x, state = self._dialogue(params)
        return self.finish(x[None], state, answers)
