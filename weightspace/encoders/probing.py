"""The shared core of the probing (functionalist) encoders.

A probing encoder never looks at the weights: it runs the probed LSTM on
probing inputs of its own choosing and reads its answers. An *encoder LSTM*
(stacked, residual) reads BOS, one transformed answer per probing step, then
EOS; its last output goes through an MLP to the embedding. The two encoders
differ only in where the probing inputs come from:

* non-interactive (`noninteractive.py`): from a learned vector per step, so
  the probes are fixed after training and the same for every LSTM;
* interactive (`interactive.py`): from the encoder LSTM's output after it
  read the previous answer, so each question depends on all answers so far.

Sizes follow the paper's code. At each step, `num_parallel` probing
sequences run side by side: a 256-wide vector (the encoder LSTM's output, or
the learned per-step vector) -> linear + ReLU to `num_parallel` x 128 -> per
parallel sequence an MLP 128 -> 128 -> input size with a softmax (token
probabilities, formal languages) or sigmoid (tiles, sequential MNIST) ->
the probed LSTM, which carries its state from step to step. Its raw readouts
of all parallel sequences, concatenated -> linear -> sigmoid -> the encoder
LSTM's 256-wide input. The encoder LSTM has 2 layers of width 256 with
residual connections (each layer outputs h + its input); BOS and EOS are
learned 256-vectors; the head is an MLP 256 -> 128 -> 16.

Because only the function is probed, these encoders are invariant to the
hidden-neuron permutations (up to float rounding).

The probes are learned either through the gradient of the encoder's loss,
which reaches them through their soft activations (the paper), or as a policy
(`probe_learning="reinforce"`): each probe a token drawn from the probe
softmax while training and its argmax when evaluated, reinforced by a
label-free reward (`novelty`: answers the probed LSTM had not given yet in the
dialogue); the encoder LSTM then reads each drawn token beside its answer.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from weightspace import lstm
from weightspace.encoders import base
from weightspace.types import Params

# How a probing input is made from the probe MLP's output: a token distribution ("softmax"), values in
# (0, 1) ("sigmoid"), or a one-hot token whose gradient is the softmax's ("straight_through").
PROBE_ACTIVATIONS = ("softmax", "sigmoid", "straight_through")
# How the probes are learned: through the gradient of the encoder's loss that reaches them through their
# activations ("gradient", the paper), or as a policy ("reinforce"): each probe a token drawn from the probe softmax
# while training (its argmax in eval mode), trained by REINFORCE on a label-free reward (`novelty`).
PROBE_LEARNING = ("gradient", "reinforce")
# How the probed LSTM's readout is read: as it is ("logits"), normalised ("log_softmax"), or only its most likely
# output, one-hot with the softmax's gradient ("argmax").
ANSWERS = ("logits", "log_softmax", "argmax")


def _learned_probe_fields() -> dict:
    """The fields of `default_config` on how the probes are learned (the paper's setting)."""
    return dict(
        # 'gradient' (the paper): the probes are trained by the gradient of the encoder's loss through their
        # activations. 'reinforce' (token inputs only): each probe is a token drawn from the probe softmax while
        # training and its argmax in eval mode; the probe network is trained as a policy by REINFORCE on a
        # label-free reward, one point for each answer (the probed LSTM's most likely output) not given before
        # in the dialogue (`novelty`): probes that make the LSTM do something new. The drawn tokens pass no
        # gradient, so the encoder's own loss trains only the reader.
        probe_learning="gradient",
        # With 'reinforce': the policy loss's weight against the encoder's loss, and the entropy bonus's.
        reinforce_weight=0.1,
        entropy_weight=0.001,
        # With 'reinforce' (interactive encoder): for the first `teacher_steps` training steps the family's
        # hand-written probing policy (`probe_policy`) is a teacher: a cross-entropy pulls the probe logits towards
        # its proposal on the dialogue so far, and each probe is the teacher's with a probability of 1 over the
        # first half of `teacher_steps` (behaviour cloning), falling to 0 at `teacher_steps` (DAgger; else drawn).
        # Never in eval mode, nor after `teacher_steps`. 0: no teacher.
        teacher_steps=0,
        # With `teacher_steps`: the step by which the teacher's share of the probes reaches 0 (it is 1 over the
        # first half of this span), so that from here to `teacher_steps` the encoder enters every probe and the
        # teacher only labels them (DAgger on the encoder's own dialogues). 0: `teacher_steps` (no such phase).
        # Without a teacher (`teacher_steps` 0, e.g. the non-interactive encoder) it has no effect.
        teacher_entry_steps=0,
        # True (the paper): the encoder's loss trains the encoder LSTM through the embedding. False (with
        # 'reinforce' only): the embedding reads the LSTM's last output without training it, so the LSTM, which
        # chooses the probes, is shaped by the probe policy's loss alone and the encoder's loss trains the head.
        reader_trains_lstm=True,
        # > 0 (argmax answers): the weight of a label-free loss asking the embedding to recall which answers each
        # probing sequence drew (a multi-hot over the output classes per sequence, decoded by a linear map), so
        # what the probes found stays in the embedding where emulation on the stored sequences never shows it (a
        # lock's label, shown only once its code is entered). 0 (the paper): none.
        answer_recall_weight=0.0,
    )


def default_config(name: str) -> ml_collections.ConfigDict:
    """Paper setting for formal languages (for MNIST: probe_length=50, probe_activation='sigmoid')."""
    return base.config_with(
        name,
        # Width of the encoder LSTM (and of its inputs, BOS/EOS, and the probe codes).
        lstm_size=256,
        # Layers of the encoder LSTM.
        lstm_layers=2,
        # Each encoder-LSTM layer outputs its hidden state plus its input.
        residual=True,
        # Width of the code of one probing input, per parallel sequence.
        code_size=128,
        # Hidden widths of the MLP from a code to a probing input.
        probe_hidden_sizes=(128,),
        # Hidden widths of the MLP from the encoder LSTM's last output to the embedding.
        hidden_sizes=(128,),
        # Probing steps (22 for formal languages, 50 for sequential MNIST).
        probe_length=22,
        # Probing sequences run in parallel (the paper uses 1, 2, 4 or 8).
        num_parallel=1,
        # 'softmax': probing inputs are token distributions (the paper); 'sigmoid': values in (0, 1) (the
        # paper, MNIST); 'straight_through': one-hot tokens (the softmax's argmax) with the softmax's gradient.
        # The zoo LSTMs only ever saw one-hot tokens: they answer soft mixtures much less clearly.
        probe_activation="softmax",
        # With probe_activation 'sigmoid': the probing inputs span (low, high), low + (high - low) x the sigmoid.
        # (0, 1) (the paper): the sigmoid itself. A family's input range (sequential MNIST's normalised pixels,
        # `sequential_mnist.PIXEL_RANGE`) lets the probes be real images.
        probe_range=(0.0, 1.0),
        # 'logits': the encoder reads the probed LSTM's raw readout (the paper); 'log_softmax': its
        # log-probabilities, free of the per-position offset that raw logits carry; 'argmax': only its answer
        # (the most likely output, one-hot, with the softmax's gradient), so the encoder sees what the
        # function outputs and nothing of how sure the LSTM is (combination locks: their logits also leak the
        # label before the code is entered).
        answers="logits",
        # With answers='argmax': the answers pass back the softmax's Jacobian at logits / answer_temperature
        # (the forward pass stays one-hot). A trained LSTM's softmax is saturated, so at 1 almost no gradient
        # reaches the probes through its answers; a higher temperature lets it through.
        answer_temperature=1.0,
        # Learned offsets added to every probing step's logits, started at `prior_scale` times the one-hot
        # inputs that `encoders.build(..., probe_prior=...)` is given (a task family's hand-written probing
        # strings): probes start on real strings and training moves them from there. 0 (the paper): none.
        prior_scale=0.0,
        # The embedding also reads how often each answer was given over the probing steps (the mean of the
        # answers as the encoder reads them, beside the encoder LSTM's last output): a summary that does not
        # depend on when an answer came. Combination locks show their label at a step that depends on the
        # code, so a reader of the answer sequence trained on some codes misses it for others. False (the
        # paper): the LSTM's last output alone.
        pool_answers=False,
        **_learned_probe_fields(),
    )


def straight_through(logits: jax.Array, temperature: float = 1.0) -> jax.Array:
    """The one-hot argmax of `logits` [..., C] forward; backward, the softmax's Jacobian at `logits / temperature`.

    (The gradient of `temperature * softmax(logits / temperature)`: a higher temperature reaches through
    a saturated softmax without shrinking the gradient of an unsaturated one.)
    """
    soft = temperature * jax.nn.softmax(logits / temperature)
    hard = jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1], dtype=soft.dtype)
    return soft + jax.lax.stop_gradient(hard - soft)


def novelty(outputs: jax.Array) -> jax.Array:
    """The label-free reward of each probing step: 1 when the answer was not given before in its dialogue.

    Args:
      outputs: the probed LSTM's readouts [time, ..., output_size]; the answer is the most likely output.

    Returns:
      [time, ...]: 1.0 where that answer is new, else 0.0 (the first step's answer is always new).
    """
    answers = jax.nn.one_hot(jnp.argmax(outputs, -1), outputs.shape[-1])
    given_before = jnp.cumsum(answers, axis=0) - answers
    return jnp.sum(answers * (given_before == 0), axis=-1)


def reinforce_loss(logits: jax.Array, tokens: jax.Array, rewards: jax.Array, drawn: jax.Array) -> jax.Array:
    """REINFORCE with the batch's mean return as baseline: the surrogate whose gradient is the policy gradient.

    Args:
      logits: the probe logits [time, batch, ...,  C] the tokens were drawn from.
      tokens: the entered one-hot tokens [time, batch, ..., C].
      rewards: each step's reward [time, batch, ...].
      drawn: [time, batch, ...] true where the token was drawn from `logits` (not a teacher's): only those
        steps are reinforced.

    Returns:
      -(return-to-go - its batch mean) x log-probability of the token, averaged over time and the rest (so its
      scale does not grow with the probe length).
    """
    to_go = jnp.flip(jnp.cumsum(jnp.flip(rewards, 0), axis=0), 0)
    advantage = jax.lax.stop_gradient(to_go - to_go.mean(axis=1, keepdims=True))
    log_probability = jnp.sum(tokens * jax.nn.log_softmax(logits), axis=-1)
    return -jnp.mean(drawn * advantage * log_probability)


class TrainingSteps(nnx.Variable):
    """How many training steps a module has taken (not a parameter; counted only outside eval mode)."""


class ProbeSampler(nnx.Module):
    """Draws probe tokens from the probe softmax while training; in eval mode (`deterministic`) takes the argmax.

    Its state is a forked `rngs` stream "probes" and the count of training steps (`steps`, counted by
    `ProbingEncoder.learn_probes`; it schedules the teacher). Keys are drawn outside any scan (`keys`), since the
    stream's counter is mutable state.
    """

    def __init__(self, *, rngs: nnx.Rngs):
        self.deterministic = False
        self.rngs = rngs["probes"].fork()
        self.steps = TrainingSteps(jnp.int32(0))

    def keys(self, num: int) -> jax.Array:
        """`num` keys for one forward pass ([num, 2]; unused in eval mode)."""
        if self.deterministic:
            return jnp.zeros((num, 2), jnp.uint32)
        return jax.random.split(self.rngs(), num)

    def __call__(self, key: jax.Array, logits: jax.Array) -> jax.Array:
        """One-hot tokens [..., C] drawn from `logits` [..., C] (their argmax in eval mode); no gradient."""
        choice = jnp.argmax(logits, -1) if self.deterministic else jax.random.categorical(key, logits)
        return jax.nn.one_hot(choice, logits.shape[-1], dtype=logits.dtype)


class EncoderLSTM(nnx.Module):
    """A stacked LSTM of one width, gate order i, f, g, o, optionally residual.

    It runs through `lstm.run_layers` (the zoo LSTM's code, with its fast backward pass) over a
    whole sequence; stepping it one step at a time is a sequence of length 1.
    """

    def __init__(self, size: int, num_layers: int, residual: bool, *, rngs: nnx.Rngs):
        # Uniform in +-1/sqrt(size) as PyTorch's LSTM (one bias stands for PyTorch's two).
        bound = 1.0 / math.sqrt(size)

        def uniform(shape: tuple[int, ...]) -> nnx.Param:
            return nnx.Param(jax.random.uniform(rngs.params(), shape, minval=-bound, maxval=bound))

        self.w_ih = uniform((num_layers, 4 * size, size))
        self.w_hh = uniform((num_layers, 4 * size, size))
        self.bias = uniform((num_layers, 4 * size))
        self.residual = residual

    def initial_state(self, batch: int) -> lstm.State:
        """Zero state `(h, c)`, each [num_layers, batch, size]."""
        zeros = jnp.zeros((self.w_hh.shape[0], batch, self.w_hh.shape[2]))
        return zeros, zeros

    def __call__(self, xs: jax.Array, state: lstm.State) -> tuple[jax.Array, lstm.State]:
        """Runs over a sequence.

        Args:
          xs: [time, batch, size].
          state: `(h, c)`, each [num_layers, batch, size].

        Returns:
          (last layer's outputs [time, batch, size], final state).
        """
        layers = [(self.w_ih[k], self.w_hh[k], (self.bias[k],)) for k in range(self.w_hh.shape[0])]
        return lstm.run_layers(layers, xs, state, residual=self.residual)


def _check_settings(encoder: "ProbingEncoder") -> None:
    """Raises a ValueError naming the first setting of a probing encoder out of its range or against another."""
    e = encoder
    if e.probe_activation not in PROBE_ACTIVATIONS:
        raise ValueError(f"probe_activation must be one of {PROBE_ACTIVATIONS}, got {e.probe_activation!r}.")
    if e.answers not in ANSWERS:
        raise ValueError(f"answers must be one of {ANSWERS}, got {e.answers!r}.")
    if e.probe_length < 1 or e.num_parallel < 1:
        raise ValueError(f"probe_length and num_parallel must be positive, got {e.probe_length}, {e.num_parallel}.")
    if len(e.probe_range) != 2 or not e.probe_range[0] < e.probe_range[1]:
        raise ValueError(f"probe_range must be (low, high) with low < high, got {e.probe_range}.")
    if not e.answer_temperature > 0:
        raise ValueError(f"answer_temperature must be positive, got {e.answer_temperature}.")
    if e.probe_learning not in PROBE_LEARNING:
        raise ValueError(f"probe_learning must be one of {PROBE_LEARNING}, got {e.probe_learning!r}.")
    if e.probe_learning == "reinforce" and e.probe_activation == "sigmoid":
        raise ValueError(
            "probe_learning='reinforce' draws tokens: it needs token inputs, not probe_activation='sigmoid'."
        )
    if e.teacher_steps and e.probe_learning != "reinforce":
        raise ValueError(f"teacher_steps={e.teacher_steps} needs probe_learning='reinforce'.")
    if e.teacher_steps and not 0 <= e.teacher_entry_steps <= e.teacher_steps:
        raise ValueError(
            f"teacher_entry_steps must lie in [0, teacher_steps={e.teacher_steps}], got {e.teacher_entry_steps}."
        )
    if not e.reader_trains_lstm and e.probe_learning != "reinforce":
        raise ValueError("reader_trains_lstm=False needs probe_learning='reinforce' (else nothing trains the LSTM).")
    if e.answer_recall_weight and e.answers != "argmax":
        raise ValueError(
            f"answer_recall_weight recalls which answers were drawn: it needs answers='argmax', not {e.answers!r}."
        )


def _scaled_prior(prior_scale: float, probe_prior: jax.Array | None, shape: tuple[int, ...]) -> nnx.Param | None:
    """The prior offsets `prior_scale * probe_prior` [*shape] as a parameter; None at scale 0."""
    if not prior_scale:
        return None
    if probe_prior is None or tuple(probe_prior.shape) != shape:
        got = None if probe_prior is None else tuple(probe_prior.shape)
        raise ValueError(f"prior_scale={prior_scale} needs probe_prior of shape {shape}, got {got}.")
    return nnx.Param(prior_scale * jnp.asarray(probe_prior, jnp.float32))


class ProbingEncoder(base.Encoder):
    """The modules both probing encoders share; subclasses define `encode`."""

    def __init__(
        self,
        spec: lstm.LSTMSpec,
        *,
        embedding_size: int,
        normalize: bool,
        lstm_size: int,
        lstm_layers: int,
        residual: bool,
        code_size: int,
        probe_hidden_sizes: Sequence[int],
        hidden_sizes: Sequence[int],
        probe_length: int,
        num_parallel: int,
        probe_activation: str,
        probe_range: tuple[float, float],
        answers: str,
        answer_temperature: float,
        prior_scale: float,
        pool_answers: bool,
        probe_learning: str,
        reinforce_weight: float,
        entropy_weight: float,
        teacher_steps: int,
        teacher_entry_steps: int,
        reader_trains_lstm: bool,
        answer_recall_weight: float,
        rngs: nnx.Rngs,
        probe_prior: jax.Array | None = None,
    ):
        """Modules of the paper's sizes (fields of `default_config`); `probe_prior`: inputs [probe_length,
        num_parallel, input_size] the probes start near when `prior_scale` > 0 (e.g. the family's strings)."""
        super().__init__(spec, embedding_size=embedding_size, normalize=normalize)
        self.probe_length = probe_length
        self.num_parallel = num_parallel
        self.probe_activation = probe_activation
        self.probe_range = tuple(probe_range)
        self.answers = answers
        self.answer_temperature = answer_temperature
        self.probe_learning = probe_learning
        self.reader_trains_lstm = reader_trains_lstm
        self.reinforce_weight = reinforce_weight
        self.entropy_weight = entropy_weight
        self.teacher_steps = teacher_steps
        self.teacher_entry_steps = teacher_entry_steps
        self.answer_recall_weight = answer_recall_weight
        self.deterministic = False  # eval mode (`model.eval()`): no loss is recorded
        _check_settings(self)
        self.sampler = ProbeSampler(rngs=rngs) if probe_learning == "reinforce" else None
        self.prior = _scaled_prior(prior_scale, probe_prior, (probe_length, num_parallel, spec.input_size))
        self.code = nnx.Linear(lstm_size, num_parallel * code_size, rngs=rngs)
        self.probe_mlp = base.MLP([code_size, *probe_hidden_sizes, spec.input_size], rngs=rngs)
        answered = num_parallel * spec.output_size  # the width of one step's answer vectors
        # Drawn probes are not a function of what the encoder LSTM has read, so it reads them beside the answers.
        asked = num_parallel * spec.input_size if self.sampler is not None else 0
        self.read = nnx.Linear(answered + asked, lstm_size, rngs=rngs)
        self.bos = nnx.Param(jnp.zeros((lstm_size,)))
        self.eos = nnx.Param(jnp.zeros((lstm_size,)))
        self.lstm = EncoderLSTM(lstm_size, lstm_layers, residual, rngs=rngs)
        self.pool_answers = pool_answers
        self.head = base.MLP([lstm_size + pool_answers * answered, *hidden_sizes, embedding_size], rngs=rngs)
        self.recall = nnx.Linear(embedding_size, answered, rngs=rngs) if answer_recall_weight else None

    def probing_inputs(self, params: Params) -> jax.Array:
        """The probing inputs each LSTM is given: [probe_length, batch, num_parallel, input_size]."""
        raise NotImplementedError

    def dialogue_novelty(self, params: Params) -> jax.Array:
        """How many different answers each LSTM gives to its probes: `novelty` summed over the probing steps,
        averaged over the parallel sequences, [batch]. Label-free (the LSTMs' own answers), so training can keep
        the checkpoint whose probes find the most (`eval.select_by='novelty'`)."""
        return novelty(self.probe_answers(params)).sum(0).mean(-1)

    def probe_answers(self, params: Params) -> jax.Array:
        """The probed LSTMs' outputs on the encoder's probes (`probing_inputs`), replayed in one `lstm.apply`:
        [probe_length, batch, num_parallel, output_size]. An interactive dialogue's probes are what the
        answers gave, so replaying them gives those answers back."""
        probes = jnp.moveaxis(self.probing_inputs(params), 0, 2)  # [batch, parallel, time, input]
        outputs, _ = jax.vmap(lstm.apply)(params, probes)  # [batch, parallel, time, output]
        return jnp.moveaxis(outputs, 2, 0)

    def probe_diversity(self, params: Params) -> jax.Array:
        """How differently the LSTMs of a batch are probed: a scalar in [0, 1], 0 when all get the same probes.

        The distance between two LSTMs' probing inputs, averaged over steps, parallel sequences and all pairs
        of LSTMs in `params` (batch >= 2): total variation for token distributions, the mean absolute
        difference over `probe_range`'s width for sigmoid values. A non-interactive encoder's is 0 by
        construction.
        """
        probes = self.probing_inputs(params)  # [time, batch, parallel, input]
        difference = jnp.abs(probes[:, :, None] - probes[:, None, :])  # [time, batch, batch, parallel, input]
        low, high = self.probe_range
        sigmoid = self.probe_activation == "sigmoid"
        distance = difference.mean(-1) / (high - low) if sigmoid else 0.5 * difference.sum(-1)
        batch = probes.shape[1]
        return distance.mean((0, 3)).sum() / (batch * (batch - 1))

    def probe_logits(self, x: jax.Array, step: jax.Array | slice, offsets: jax.Array | None = None) -> jax.Array:
        """Probe logits from 256-wide vectors: [..., lstm_size] -> [..., num_parallel, input_size].

        `step` selects the probing step(s) of the learned prior offsets: an index, or a slice when `x` is
        [probe_length, lstm_size] (all steps at once). `offsets` [..., num_parallel, input_size], if given,
        are added too (the interactive encoder's policy prior).
        """
        codes = nnx.relu(self.code(x)).reshape(*x.shape[:-1], self.num_parallel, -1)
        logits = self.probe_mlp(codes)
        if self.prior is not None:
            logits = logits + self.prior[step]
        return logits if offsets is None else logits + offsets

    def activate(self, logits: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Probing inputs from probe logits [..., input_size]: drawn tokens with 'reinforce' (from `key`), else
        `probe_activation`'s."""
        if self.sampler is not None:
            return self.sampler(key, logits)
        if self.probe_activation == "sigmoid":
            low, high = self.probe_range
            return low + (high - low) * jax.nn.sigmoid(logits)
        return jax.nn.softmax(logits) if self.probe_activation == "softmax" else straight_through(logits)

    def teacher_share(self) -> tuple[jax.Array, jax.Array]:
        """(the probability that a probe is the teacher's, the weight of its cross-entropy) at this training step:
        the share is 1 over the first half of `teacher_entry_steps` (behaviour cloning) and falls to 0 there
        (DAgger: the teacher labels more and more of the encoder's own dialogues, then all of them until
        `teacher_steps`); the weight is 1 until `teacher_steps`; both are 0 after, and in eval mode."""
        if not self.teacher_steps or self.sampler.deterministic:
            return jnp.float32(0.0), jnp.float32(0.0)
        steps = self.sampler.steps[...]
        entry = self.teacher_entry_steps or self.teacher_steps
        share = jnp.clip(2.0 - 2.0 * steps / entry, 0.0, 1.0)
        return share, (steps < self.teacher_steps).astype(jnp.float32)

    def learn_probes(
        self,
        logits: jax.Array,
        tokens: jax.Array,
        outputs: jax.Array,
        proposals: jax.Array | None = None,
        drawn: jax.Array | None = None,
    ) -> None:
        """With 'reinforce', outside eval mode: records the probe policy's loss and mean reward (`nnx.sow`, as
        `probe_loss` and `probe_novelty`) for the training step to add and log.

        Args:
          logits, tokens: the probe logits and the entered tokens [time, batch, parallel, input].
          outputs: the probed LSTMs' readouts [time, batch, parallel, output].
          proposals: the teacher's inputs [time, batch, parallel, input] (with `teacher_steps`), imitated with
            `teacher_share`'s weight.
          drawn: [time, batch, parallel], true where the token was drawn, not the teacher's (default: all).
        """
        if self.sampler is None or self.sampler.deterministic:
            return
        rewards = novelty(outputs)
        drawn = jnp.ones(rewards.shape, bool) if drawn is None else drawn
        probabilities = jax.nn.softmax(logits)
        entropy = -jnp.sum(probabilities * jax.nn.log_softmax(logits), -1).mean()
        loss = self.reinforce_weight * reinforce_loss(logits, tokens, rewards, drawn) - self.entropy_weight * entropy
        if proposals is not None:
            loss = loss - self.teacher_share()[1] * jnp.mean(jnp.sum(proposals * jax.nn.log_softmax(logits), -1))
        self.sow(nnx.Intermediate, "probe_loss", loss)
        self.sow(nnx.Intermediate, "probe_novelty", rewards.sum(0).mean())
        self.sampler.steps[...] = self.sampler.steps[...] + 1  # one more training step (the teacher's schedule)

    def answer_vectors(self, outputs: jax.Array) -> jax.Array:
        """The answers as the encoder reads them (`answers`): [..., parallel, output_size] -> [..., parallel * out]."""
        if self.answers == "log_softmax":
            outputs = jax.nn.log_softmax(outputs)
        elif self.answers == "argmax":
            outputs = straight_through(outputs, self.answer_temperature)
        return outputs.reshape(*outputs.shape[:-2], -1)

    def read_answers(self, answers: jax.Array, probes: jax.Array) -> jax.Array:
        """Encoder-LSTM inputs from answer vectors (`answer_vectors`) [..., parallel * out] and, with 'reinforce'
        (whose probes are drawn), the probes they answer [..., parallel, input]: -> [..., lstm_size]."""
        if self.sampler is not None:
            answers = jnp.concatenate([answers, probes.reshape(*probes.shape[:-2], -1)], axis=-1)
        return jax.nn.sigmoid(self.read(answers))

    def start(self, batch: int) -> jax.Array:
        """The BOS input for a batch: [batch, lstm_size]."""
        return jnp.broadcast_to(self.bos[...], (batch, self.bos.shape[0]))

    def finish(self, xs: jax.Array, state: lstm.State, answers: jax.Array) -> jax.Array:
        """Reads the remaining inputs `xs` [time, batch, lstm_size] and EOS from `state`; -> embedding [batch, E].

        `answers` [probe_length, batch, parallel * out] are every step's answer vectors, pooled into the
        embedding with `pool_answers`.
        """
        eos = jnp.broadcast_to(self.eos[...], xs.shape[1:])
        ys, _ = self.lstm(jnp.concatenate([xs, eos[None]]), state)
        last = ys[-1] if self.reader_trains_lstm else jax.lax.stop_gradient(ys[-1])
        embedding = self.head(jnp.concatenate([last, answers.mean(0)], axis=-1) if self.pool_answers else last)
        self.recall_answers(answers, embedding)
        return embedding

    def recall_answers(self, answers: jax.Array, embedding: jax.Array) -> None:
        """With `answer_recall_weight`, outside eval mode: records (`nnx.sow`, "answer_loss") how well the
        embedding [batch, E] recalls which answers each probing sequence drew: the answer vectors [probe_length,
        batch, parallel * out] (one-hot argmaxes) maxed over time, a multi-hot target, against a linear decoding
        of the embedding (binary cross-entropy, mean over sequences and classes)."""
        if self.recall is None or self.deterministic:
            return
        drawn = jax.lax.stop_gradient(answers.max(0))  # [batch, parallel * out], in {0, 1}
        logits = self.recall(embedding)
        loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, drawn))
        self.sow(nnx.Intermediate, "answer_loss", self.answer_recall_weight * loss)
