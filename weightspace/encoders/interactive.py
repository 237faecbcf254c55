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

With `probe_learning="reinforce"` each probe is a token drawn from the probe
softmax (its argmax in eval mode) and the probe network learns as a policy
(`probing.ProbingEncoder.learn_probes`); with `teacher_steps` the family's
`probe_policy` follows the dialogue as a teacher of the probe logits only,
annealed away, and never enters the forward pass.
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
        teacher_steps: int,
        probe_policy: ProbePolicy | None = None,
        **fields,
    ):
        """The probing encoder's modules (`probing.ProbingEncoder`), with `probe_policy` when `prior_policy`
        (as a prior) or `teacher_steps` (as a teacher)."""
        prior = prior_policy and bool(prior_scale)
        if (prior or teacher_steps) and probe_policy is None:
            raise ValueError(f"prior_policy with prior_scale={prior_scale}, or teacher_steps, needs a probe_policy.")
        super().__init__(spec, prior_scale=0.0 if prior else prior_scale, teacher_steps=teacher_steps, **fields)
        self.policy = probe_policy if prior or teacher_steps else None
        self.policy_scale = nnx.Param(jnp.float32(prior_scale)) if prior else None

    def _dialogue(self, params: Params, learn: bool = True) -> tuple[jax.Array, jax.Array, jax.Array, lstm.State]:
        """Runs the probing steps (and with `learn`, records the probe policy's training terms: `learn_probes`).

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

        teach = self.teacher_share()[0] if self.teacher_steps else None

        def probing_step(carry, inputs):
            x, state, probed_state, search = carry
            step, key = inputs
            ys, state = self.lstm(x[None], state)
            proposal = None if search is None else jax.vmap(jax.vmap(self.policy.propose))(search)
            offsets = None if self.policy_scale is None else self.policy_scale * proposal
            logits = self.probe_logits(ys[0], step, offsets)
            draw_key, teach_key = (key, key) if self.sampler is None else jax.random.split(key)
            probes = self.activate(logits, draw_key)
            drawn = jnp.ones(probes.shape[:-1], bool)
            if teach is not None:  # the teacher enters its own symbol with probability `teach`
                drawn = ~jax.random.bernoulli(teach_key, teach, drawn.shape)
                probes = jnp.where(drawn[..., None], probes, proposal)
            outputs, probed_state = _batched_step(params, probes, probed_state)
            if search is not None:
                search = jax.vmap(jax.vmap(self.policy.update))(search, probes, outputs)
            answers = self.answer_vectors(outputs)
            dialogue = (logits, probes, outputs, answers, proposal, drawn)
            return (self.read_answers(answers, probes), state, probed_state, search), dialogue

        start = (self.start(batch), self.lstm.initial_state(batch), probed_state, search)
        keys = (
            jnp.zeros((self.probe_length, 2), jnp.uint32)
            if self.sampler is None
            else self.sampler.keys(self.probe_length)
        )
        (x, state, _, _), (logits, probes, outputs, answers, proposals, drawn) = jax.lax.scan(
            probing_step, start, (jnp.arange(self.probe_length), keys)
        )
        if learn:
            self.learn_probes(logits, probes, outputs, proposals if self.teacher_steps else None, drawn)
        return probes, answers, x, state

    def probing_inputs(self, params: Params) -> jax.Array:
        return self._dialogue(params, learn=False)[0]

    def encode(self, params: Params) -> jax.Array:
        _, answers, x, state = self._dialogue(params)
        return self.finish(x[None], state, answers)
