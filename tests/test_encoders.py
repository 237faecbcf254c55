"""The six weight encoders: shapes, gradients, jitting, and the hidden-neuron symmetry."""

import functools
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from weightspace import encoders, lstm, symmetry
from weightspace.encoders import augment, base, dwsnet, layerwise_statistics, parameter_transformer, probing

# A small zoo LSTM for speed; the paper's formal-language LSTM for sizes.
SPEC = lstm.LSTMSpec(6, 8, 2, 6)
PAPER_SPEC = lstm.LSTMSpec(6, 32, 2, 6)
BATCH = 3
_PROBING = dict(lstm_size=16, code_size=8, probe_hidden_sizes=(8,), hidden_sizes=(16,), probe_length=3, num_parallel=2)
# Small sizes for every encoder (everything else at the paper's setting).
TINY = {
    "layerwise_statistics": dict(hidden_sizes=(16,)),
    "flat": dict(hidden_sizes=(16, 16)),
    "parameter_transformer": dict(width=16, num_layers=1, num_heads=2, mlp_size=32),
    "dwsnet": dict(channels=8, num_layers=2, hidden_sizes=(16,)),
    "noninteractive": _PROBING,
    "interactive": _PROBING,
}
# Encoders whose embedding depends only on the LSTM up to hidden-neuron permutations.
INVARIANT = ("layerwise_statistics", "dwsnet", "noninteractive", "interactive")


# Jitted once per shape: run op by op, these would compile every random primitive.
_init_batch = jax.jit(lambda keys, spec: jax.vmap(lstm.init, in_axes=(0, None))(keys, spec), static_argnums=1)
_augment = jax.jit(augment.augment, static_argnums=2)


def _params(seed=0, spec=SPEC, batch=BATCH):
    return _init_batch(jax.random.split(jax.random.key(seed), batch), spec)


def _permute_each_model(params, seed=5):
    """Every model under its own random hidden permutations: the same functions."""
    return _augment(jax.random.key(seed), params, lstm.spec_of(params))


def _config(name, **overrides):
    config = encoders.default_config(name)
    config.update(TINY[name])
    config.update(overrides)
    return config


def _build(name, spec=SPEC, seed=0, **overrides):
    return encoders.build(_config(name, **overrides), spec, seed=seed)


def test_registry_and_default_configs():
    assert encoders.NAMES == (
        "layerwise_statistics",
        "flat",
        "parameter_transformer",
        "dwsnet",
        "noninteractive",
        "interactive",
    )
    for name in encoders.NAMES:
        config = encoders.default_config(name)
        assert (config.name, config.embedding_size, config.normalize) == (name, 16, True)
        assert config.augment == (name in ("flat", "parameter_transformer"))
    with pytest.raises(KeyError, match="dwsnet"):
        encoders.build("dwsnett", SPEC)
    config = encoders.default_config("flat")
    config.hiden_sizes = (4,)
    with pytest.raises(ValueError, match="hiden_sizes"):
        encoders.build(config, SPEC)


@functools.cache
def _embed_and_grad(name):
    """A tiny encoder `name` and its pure jitted `(weights, rest, params) -> (grads, embeddings)`.

    The training loop's functional pattern: split once, merge inside the
    jitted function (with `copy=True` under `jax.grad`, see the package
    docstring). Shared by the tests, and traced only once.

    Returns:
      (the encoder's weights (its `nnx.Param` state), the rest of its state, the function).
    """
    graphdef, weights, rest = nnx.split(_build(name), nnx.Param, ...)
    target = jax.random.normal(jax.random.key(2), (BATCH, 16))
    # The trace counter is keyed by the function's code, which every encoder's function shares.
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def embed_and_grad(weights, rest, params):
        def loss(weights):
            embeddings = nnx.merge(graphdef, weights, rest, copy=True)(params)
            return jnp.sum(embeddings * target), embeddings

        return jax.grad(loss, has_aux=True)(weights)

    return weights, rest, embed_and_grad


@pytest.mark.parametrize("name", encoders.NAMES)
def test_smoke(name):
    """Shapes, unit norm, finite gradients for every weight, invariance, one trace for new param values."""
    weights, rest, embed_and_grad = _embed_and_grad(name)
    grads, first = embed_and_grad(weights, rest, _params(0))
    _, second = embed_and_grad(weights, rest, _params(1))
    _, permuted = embed_and_grad(weights, rest, _permute_each_model(_params(0)))
    assert first.shape == second.shape == (BATCH, 16)
    np.testing.assert_allclose(jnp.linalg.norm(first, axis=-1), 1.0, atol=1e-5)
    assert not np.allclose(first, second, atol=1e-3)
    if name in INVARIANT:
        np.testing.assert_allclose(permuted, first, atol=1e-5)
    for path, grad in jax.tree.leaves_with_path(grads):
        assert np.all(np.isfinite(grad)), jax.tree_util.keystr(path)
        assert np.any(grad != 0), f"{jax.tree_util.keystr(path)} gets no gradient"


def test_unnormalised_embedding():
    params = _params()
    raw = _build("flat", normalize=False)(params)
    assert not np.allclose(jnp.linalg.norm(raw, axis=-1), 1.0)
    np.testing.assert_allclose(base.unit_normalize(raw), _build("flat")(params), atol=1e-6)


def test_layerwise_statistics_match_numpy():
    params = _params()
    quantiles = (0.0, 0.25, 0.5, 0.75, 1.0)
    features = jax.jit(layerwise_statistics.statistics, static_argnums=(1, 2))(params, SPEC, quantiles)
    # 7 statistics of each of the 10 tensors of a 2-layer LSTM.
    assert features.shape == (BATCH, 70)
    expected = []
    for name in SPEC.shapes():
        x = np.asarray(params[name]).reshape(BATCH, -1)
        expected += [x.mean(1, keepdims=True), x.var(1, ddof=1, keepdims=True), np.quantile(x, quantiles, axis=1).T]
    np.testing.assert_allclose(features, np.concatenate(expected, axis=1), rtol=1e-5, atol=1e-7)


def test_flat_reads_every_parameter():
    assert _build("flat", spec=PAPER_SPEC).mlp.layers[0].in_features == 13_766


def test_parameter_transformer_tokens_and_dropout():
    assert parameter_transformer.num_tokens(PAPER_SPEC) == 518
    encoder = _build("parameter_transformer")
    params = _params()
    # The summary token, then one token per row of every weight matrix.
    assert encoder.tokens(params).shape == (BATCH, 1 + 4 * 4 * SPEC.hidden_size + SPEC.output_size, 16)
    # Dropout is on in training mode (the default) and off in evaluation mode.
    assert not np.allclose(encoder(params), encoder(params))
    encoder.eval()
    np.testing.assert_array_equal(encoder(params), encoder(params))


def test_parameter_transformer_layer_matches_pytorch():
    """In evaluation mode a layer is `nn.TransformerEncoderLayer` (post-norm, ReLU), whose outputs
    tests/torch_reference/make.py stored; the last layer's summary-only path gives the first token's output."""
    case = np.load(pathlib.Path(__file__).parent / "torch_reference" / "transformer_layer.npz")
    width, heads = 16, 2
    layer = parameter_transformer.EncoderLayer(width, heads, 32, 0.1, rngs=nnx.Rngs(0))
    layer.eval()
    attention = layer.attention
    q, k, v = np.split(case["param/self_attn.in_proj_weight"], 3)
    q_bias, k_bias, v_bias = np.split(case["param/self_attn.in_proj_bias"], 3)
    # PyTorch's Linear weights are [out, in]; Flax kernels [in, out], split into heads.
    for module, weight, bias in (
        (attention.query, q, q_bias),
        (attention.key, k, k_bias),
        (attention.value, v, v_bias),
    ):
        module.kernel[...] = weight.T.reshape(width, heads, width // heads)
        module.bias[...] = bias.reshape(heads, width // heads)
    attention.out.kernel[...] = case["param/self_attn.out_proj.weight"].T.reshape(heads, width // heads, width)
    attention.out.bias[...] = case["param/self_attn.out_proj.bias"]
    for module, name in ((layer.mlp_in, "linear1"), (layer.mlp_out, "linear2")):
        module.kernel[...] = case[f"param/{name}.weight"].T
        module.bias[...] = case[f"param/{name}.bias"]
    for module, name in ((layer.attention_norm, "norm1"), (layer.mlp_norm, "norm2")):
        module.scale[...] = case[f"param/{name}.weight"]
        module.bias[...] = case[f"param/{name}.bias"]
    x, expected = jnp.asarray(case["x"]), case["outputs"]
    np.testing.assert_allclose(layer(x), expected, atol=1e-5)
    np.testing.assert_allclose(layer(x, num_outputs=1), expected[:, :1], atol=1e-5)


def test_dropout_masks():
    x = jnp.ones((64, 2, 100, 100))
    dropped = np.asarray(parameter_transformer.dropout(x, 0.1, jax.random.key(0)))
    # Inverted dropout: kept entries are scaled by 1 / (1 - rate); about 10% are dropped, independently per entry.
    assert set(np.unique(dropped)) == {0.0, np.float32(1 / 0.9)}
    assert abs(np.mean(dropped == 0) - 0.1) < 0.002
    assert not np.array_equal(dropped[0] == 0, dropped[1] == 0)
    assert not np.array_equal(dropped[:, 0] == 0, dropped[:, 1] == 0)
    other = np.asarray(parameter_transformer.dropout(x, 0.1, jax.random.key(1)))
    assert abs(np.mean((dropped == 0) & (other == 0)) - 0.01) < 0.001  # masks of two keys are unrelated


def test_augment_keeps_the_function_and_differs_per_model():
    one = lstm.init(jax.random.key(0), SPEC)
    params = jax.tree.map(lambda x: jnp.broadcast_to(x, (BATCH, *x.shape)), one)
    permuted = _augment(jax.random.key(1), params, SPEC)
    inputs = jax.random.normal(jax.random.key(2), (9, SPEC.input_size))
    apply = jax.jit(jax.vmap(lambda p: lstm.apply(p, inputs)[0]))
    np.testing.assert_allclose(apply(permuted), apply(params), atol=1e-5)
    flats = np.asarray(lstm.to_flat(permuted))
    assert not np.allclose(flats[0], lstm.to_flat(one))
    for i in range(BATCH):
        for j in range(i):
            assert not np.allclose(flats[i], flats[j])


def test_dwsnet_layers_are_equivariant():
    encoder = _build("dwsnet")
    params = _params()
    perms = symmetry.random_permutations(jax.random.key(4), params, lstm.perm_spec(SPEC))
    feature_spec = dwsnet.feature_perm_spec(SPEC)
    permute = lambda features: symmetry.permute(features, feature_spec, perms)
    features = dwsnet.to_features(params, SPEC)
    chex.assert_trees_all_close(
        dwsnet.to_features(symmetry.permute(params, lstm.perm_spec(SPEC), perms), SPEC), permute(features)
    )
    for layer in encoder.layers:
        graphdef, state = nnx.split(layer)
        apply = jax.jit(lambda state, features, graphdef=graphdef: nnx.merge(graphdef, state)(features))
        out = apply(state, features)
        chex.assert_trees_all_close(apply(state, permute(features)), permute(out), atol=1e-5)
        features = jax.tree.map(jax.nn.relu, out)


def test_dwsnet_is_invariant_before_and_after_training():
    """Invariant to each model's own permutations, not to a partial one, also after training."""
    weights, rest, embed_and_grad = _embed_and_grad("dwsnet")
    params = _params()
    perm = jax.random.permutation(jax.random.key(3), SPEC.hidden_size)
    # Only the rows of layer 0's recurrent matrix: a different function.
    partial = symmetry.permute(
        params, {"weight_hh_l0": (symmetry.PermAxis("hidden_0", blocks=4), None)}, {"hidden_0": perm}
    )

    def check(weights):
        grads, out = embed_and_grad(weights, rest, params)
        np.testing.assert_allclose(embed_and_grad(weights, rest, _permute_each_model(params))[1], out, atol=1e-5)
        assert np.max(np.abs(embed_and_grad(weights, rest, partial)[1] - out)) > 1e-4
        return grads, out

    optimizer = optax.adam(1e-2)

    @jax.jit
    def adam_step(weights, grads, opt_state):
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(weights, updates), opt_state

    grads, before = check(weights)
    opt_state = jax.jit(optimizer.init)(weights)
    for _ in range(3):
        weights, opt_state = adam_step(weights, grads, opt_state)
        grads, after = check(weights)
    assert not np.allclose(after, before)


@pytest.mark.parametrize(("name", "activation"), [("noninteractive", "sigmoid"), ("interactive", "softmax")])
def test_probing_inputs(name, activation):
    """Interactive probes (after the first) depend on the probed LSTM; non-interactive ones never do."""
    encoder = _build(name, probe_activation=activation)
    probes = np.asarray(encoder.probing_inputs(_params()))
    assert probes.shape == (3, BATCH, 2, SPEC.input_size)
    if activation == "softmax":
        np.testing.assert_allclose(probes.sum(-1), 1.0, rtol=1e-5)
    assert np.all((probes > 0) & (probes < 1))
    np.testing.assert_array_equal(probes[0, 1:], probes[0, :-1])
    assert np.allclose(probes[1:, 1:], probes[1:, :-1]) == (name == "noninteractive")


def _prior(num_parallel=2, length=3):
    """One-hot strings [length, parallel, 6]: token (t + p) mod 6 at step t of parallel sequence p."""
    tokens = (np.arange(length)[:, None] + np.arange(num_parallel)[None]) % SPEC.input_size
    return np.eye(SPEC.input_size, dtype=np.float32)[tokens]


@pytest.mark.parametrize("name", ["noninteractive", "interactive"])
@pytest.mark.slow
def test_straight_through_probes_are_tokens_with_softmax_gradients(name):
    encoder = _build(name, probe_activation="straight_through")
    params = _params()
    probes = np.asarray(encoder.probing_inputs(params))
    np.testing.assert_array_equal(probes.sum(-1), 1.0)
    np.testing.assert_array_equal(probes.max(-1), 1.0)
    graphdef, weights = nnx.split(encoder)
    grads = jax.grad(lambda w: jnp.sum(nnx.merge(graphdef, w)(params) ** 3))(weights)
    # The argmax has no gradient: the probe MLP learns only through the softmax's.
    assert np.any(np.asarray(grads["probe_mlp"]["layers"][0]["kernel"][...]) != 0)


@pytest.mark.parametrize("name", ["noninteractive", "interactive"])
def test_probes_start_on_the_prior_strings(name):
    prior = _prior()
    encoder = encoders.build(
        _config(name, probe_activation="straight_through", prior_scale=50.0), SPEC, probe_prior=prior
    )
    probes = np.asarray(encoder.probing_inputs(_params()))  # [time, batch, parallel, input]
    np.testing.assert_array_equal(probes, np.broadcast_to(prior[:, None], probes.shape))
    with pytest.raises(ValueError, match="probe_prior of shape"):
        encoders.build(_config(name, prior_scale=1.0), SPEC, probe_prior=prior[:2])


def _without_probe_mlp(encoder):
    """`encoder` with its probe MLP's last layer zeroed: its probing logits are the prior offsets alone."""
    last = encoder.probe_mlp.layers[-1]
    last.kernel[...] = jnp.zeros_like(last.kernel[...])
    last.bias[...] = jnp.zeros_like(last.bias[...])
    return encoder


@pytest.mark.parametrize("name", ["noninteractive", "interactive"])
def test_sigmoid_probes_span_the_probe_range_and_start_on_the_prior(name):
    low, high = -0.5, 2.5
    prior = np.random.default_rng(0).normal(size=(3, 2, SPEC.input_size)).astype(np.float32)
    fields = dict(probe_activation="sigmoid", probe_range=(low, high), prior_scale=1.0)
    encoder = encoders.build(_config(name, **fields), SPEC, probe_prior=prior)
    probes = np.asarray(encoder.probing_inputs(_params()))
    assert np.all((probes > low) & (probes < high)) and probes.min() < 0 and probes.max() > 1
    probes = np.asarray(_without_probe_mlp(encoder).probing_inputs(_params()))
    expected = low + (high - low) / (1 + np.exp(-prior))
    np.testing.assert_allclose(probes, np.broadcast_to(expected[:, None], probes.shape), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="probe_range"):
        _build(name, probe_activation="sigmoid", probe_range=(1.0, 0.0))


@pytest.mark.parametrize("answers", ["logits", "log_softmax"])
def test_log_softmax_answers_ignore_a_shift_of_every_logit(answers):
    """Adding a constant to every readout logit leaves the LSTM's distributions, and log-softmax answers, unchanged."""
    encoder = _build("interactive", answers=answers)
    params = _params()
    shifted = {**params, "bias_out": params["bias_out"] + 3.0}
    same = np.allclose(encoder(params), encoder(shifted), atol=1e-5)
    assert same == (answers == "log_softmax")


@pytest.mark.parametrize("name", ["noninteractive", "interactive"])
def test_probe_diversity(name):
    encoder = _build(name)
    params = _params()
    probes = np.asarray(encoder.probing_inputs(params))
    pairs = [(i, j) for i in range(BATCH) for j in range(BATCH) if i != j]
    expected = np.mean([0.5 * np.abs(probes[:, i] - probes[:, j]).sum(-1).mean() for i, j in pairs])
    np.testing.assert_allclose(encoder.probe_diversity(params), expected, rtol=1e-5, atol=1e-7)
    assert (expected == 0) == (name == "noninteractive")


@pytest.mark.parametrize("answers", ["logits", "argmax"])
@pytest.mark.slow
def test_argmax_answers_read_only_the_most_likely_output(answers):
    """Scaling the readout keeps every answer's argmax: argmax answers, and only they, leave the embedding alone."""
    encoder = _build("interactive", answers=answers)
    params = _params()
    scaled = {**params, "weight_out": 3.0 * params["weight_out"], "bias_out": 3.0 * params["bias_out"]}
    same = np.allclose(encoder(params), encoder(scaled), atol=1e-6)
    assert same == (answers == "argmax")
    grads = jax.grad(lambda e: jnp.sum(e(params) ** 2 * jnp.arange(16)))(encoder)
    assert np.any(np.asarray(grads.code.kernel[...]) != 0)  # the answers pass the softmax's gradient to the probes


@pytest.mark.slow
def test_a_higher_answer_temperature_lets_gradient_through_saturated_answers():
    params = _params()
    saturated = {**params, "weight_out": 30.0 * params["weight_out"], "bias_out": 30.0 * params["bias_out"]}

    def probe_gradient(temperature):
        encoder = _build("interactive", answers="argmax", answer_temperature=temperature)
        grads = jax.grad(lambda e: jnp.sum(e(saturated) ** 2 * jnp.arange(16)))(encoder)
        return float(jnp.linalg.norm(grads.code.kernel[...])), np.asarray(encoder(saturated))

    (cold, embedding), (warm, same) = probe_gradient(1.0), probe_gradient(10.0)
    np.testing.assert_array_equal(embedding, same)  # the forward pass does not see the temperature
    assert warm > 3 * cold


@pytest.mark.parametrize("name", ["noninteractive", "interactive"])
@pytest.mark.slow
def test_pooled_answers_are_how_often_each_answer_was_given(name):
    """With `pool_answers` the head also reads the mean one-hot answer over the probing steps: with its weights
    on the encoder LSTM's output zeroed, the embedding is the head of that mean, computed here independently
    by running each LSTM on its probes."""
    encoder = _build(name, answers="argmax", pool_answers=True, normalize=False)
    first = encoder.head.layers[0].kernel
    first[...] = first[...].at[: _PROBING["lstm_size"]].set(0.0)
    params = _params()
    probes = np.asarray(encoder.probing_inputs(params))  # [time, batch, parallel, input]
    run = jax.vmap(jax.vmap(lstm.apply, in_axes=(None, 1), out_axes=1), in_axes=(0, 1), out_axes=1)
    outputs, _ = run(params, jnp.asarray(probes))  # [time, batch, parallel, output]
    counts = jax.nn.one_hot(jnp.argmax(outputs, -1), SPEC.output_size).mean(0).reshape(BATCH, -1)
    expected = encoder.head(jnp.concatenate([jnp.zeros((BATCH, _PROBING["lstm_size"])), counts], axis=-1))
    np.testing.assert_allclose(encoder(params), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(counts[0], counts[1])  # the LSTMs answer differently: the check is not vacuous


def test_novelty_rewards_each_answer_the_first_time_it_is_given():
    answers = np.array([0, 0, 1, 0, 2, 1, 3])  # one dialogue's most likely outputs, step by step
    outputs = jax.nn.one_hot(answers, 4)[:, None] * 5.0  # [time, batch=1, output]
    np.testing.assert_array_equal(probing.novelty(outputs)[:, 0], [1, 0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("name", ["noninteractive", "interactive"])
def test_dialogue_novelty_counts_the_different_answers_each_lstm_gives_its_probes(name):
    """Against a count written out: each LSTM run on its probes independently, the distinct argmax outputs of
    each parallel sequence counted, averaged over the sequences."""
    encoder = _build(name, probe_length=6)
    encoder.eval()
    params = _params()
    probes = np.asarray(encoder.probing_inputs(params))  # [time, batch, parallel, input]
    expected = np.zeros(BATCH)
    for b in range(BATCH):
        model = jax.tree.map(lambda x, b=b: x[b], params)
        for p in range(probes.shape[2]):
            outputs, _ = lstm.apply(model, jnp.asarray(probes[:, b, p])[None])  # [1, time, output]
            expected[b] += len(set(np.argmax(np.asarray(outputs[0]), -1).tolist())) / probes.shape[2]
    np.testing.assert_allclose(encoder.dialogue_novelty(params), expected, rtol=1e-6)
    assert expected.min() >= 1 and expected.max() <= 6


def test_the_reinforce_surrogate_has_the_policy_gradient():
    """Against the gradient written out: -(G_t - mean_b G_t) (onehot - softmax) for the drawn steps only."""
    logits = jax.random.normal(jax.random.key(0), (3, 4, 5))  # [time, batch, tokens]
    tokens = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (3, 4), 0, 5), 5)
    rewards = jax.random.uniform(jax.random.key(2), (3, 4))
    drawn = jnp.array([[True] * 4, [True, False, True, True], [True] * 4])
    grad = jax.grad(probing.reinforce_loss)(logits, tokens, rewards, drawn)
    to_go = np.cumsum(np.asarray(rewards)[::-1], 0)[::-1]
    advantage = (to_go - to_go.mean(1, keepdims=True)) * np.asarray(drawn)
    expected = -advantage[..., None] * (np.asarray(tokens) - np.asarray(jax.nn.softmax(logits))) / 12
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def _recorded(encoder, params):
    """The embedding and the terms the encoder records for its training ({name: value})."""
    embedding, state = nnx.capture(lambda m, p: m(p), nnx.Intermediate)(encoder, params)
    return embedding, {path[-1]: variable.get_value()[0] for path, variable in nnx.to_flat_state(state)}


@pytest.mark.parametrize("name", ["noninteractive", "interactive"])
@pytest.mark.slow
def test_reinforce_probes_are_drawn_while_training_and_the_argmax_when_evaluated(name):
    encoder = _build(name, probe_learning="reinforce", answers="argmax", probe_length=6)
    params = _params()
    first, second = (np.asarray(encoder.probing_inputs(params)) for _ in range(2))
    np.testing.assert_array_equal(first.sum(-1), 1.0)  # tokens
    assert not np.array_equal(first, second)  # drawn afresh at every training call
    _, recorded = _recorded(encoder, params)
    assert set(recorded) == {"probe_loss", "probe_novelty"}
    assert int(encoder.sampler.steps[...]) == 1  # a training step counts; looking at the probes does not
    # The policy loss reaches the probe network; the tokens pass no gradient to the embedding's loss.
    graphdef, weights, rest = nnx.split(encoder, nnx.Param, ...)

    def gradient(term):
        def loss(w):
            embedding, terms = _recorded(nnx.merge(graphdef, w, rest, copy=True), params)
            return terms["probe_loss"] if term else jnp.sum(embedding**2)

        return np.abs(np.asarray(jax.grad(loss)(weights)["probe_mlp"]["layers"][0]["kernel"][...])).sum()

    assert gradient(True) > 0 and gradient(False) == 0
    encoder.eval()
    steps = int(encoder.sampler.steps[...])
    evaluated = np.asarray(encoder.probing_inputs(params))
    np.testing.assert_array_equal(evaluated, np.asarray(encoder.probing_inputs(params)))
    assert int(encoder.sampler.steps[...]) == steps  # eval calls are not training steps
    assert _recorded(encoder, params)[1] == {}
    logits = (
        np.asarray(encoder.probe_logits(encoder.step_vectors[...], slice(None))) if name == "noninteractive" else None
    )
    if logits is not None:  # the one fixed string: the argmax of each step's logits, for every LSTM
        np.testing.assert_array_equal(
            np.argmax(evaluated, -1), np.broadcast_to(np.argmax(logits, -1)[:, None], evaluated.shape[:-1])
        )


@pytest.mark.slow
def test_a_reader_that_does_not_train_the_lstm_leaves_it_to_the_policy():
    params = _params()

    def lstm_gradient(reader_trains_lstm):
        encoder = _build("interactive", probe_learning="reinforce", reader_trains_lstm=reader_trains_lstm)
        graphdef, weights, rest = nnx.split(encoder, nnx.Param, ...)

        def losses(w):
            embedding, terms = _recorded(nnx.merge(graphdef, w, rest, copy=True), params)
            return jnp.sum(embedding**2), terms["probe_loss"]

        reader, policy = (jax.grad(lambda w, i=i: losses(w)[i])(weights) for i in range(2))
        return [float(np.abs(np.asarray(g["lstm"]["w_hh"][...])).sum()) for g in (reader, policy)]

    assert all(g > 0 for g in lstm_gradient(True))
    reader, policy = lstm_gradient(False)
    assert reader == 0 and policy > 0
    with pytest.raises(ValueError, match="reader_trains_lstm=False needs probe_learning='reinforce'"):
        _build("interactive", reader_trains_lstm=False)


@pytest.mark.parametrize("name", ["noninteractive", pytest.param("interactive", marks=pytest.mark.slow)])
def test_answer_recall_is_the_cross_entropy_of_the_answers_each_sequence_drew(name):
    """The recorded loss is the weighted binary cross-entropy between the linear decoding of the embedding and
    which answers each probing sequence drew, computed here by running each LSTM on its probes."""
    encoder = _build(name, answers="argmax", pool_answers=True, normalize=False, answer_recall_weight=2.0)
    params = _params()
    probes = encoder.probing_inputs(params)  # [time, batch, parallel, input]
    run = jax.vmap(jax.vmap(lstm.apply, in_axes=(None, 1), out_axes=1), in_axes=(0, 1), out_axes=1)
    outputs, _ = run(params, probes)  # [time, batch, parallel, output]
    drawn = np.asarray(jax.nn.one_hot(jnp.argmax(outputs, -1), SPEC.output_size).max(0).reshape(BATCH, -1))
    assert 0 < drawn.mean() < 1  # some answers given, some not: the check is not vacuous
    embedding, recorded = _recorded(encoder, params)
    likely = 1 / (1 + np.exp(-np.asarray(encoder.recall(embedding), np.float64)))
    expected = -2.0 * np.mean(drawn * np.log(likely) + (1 - drawn) * np.log(1 - likely))
    assert set(recorded) == {"answer_loss"}
    np.testing.assert_allclose(recorded["answer_loss"], expected, rtol=1e-5)
    encoder.eval()
    assert _recorded(encoder, params)[1] == {}  # nothing is recorded when evaluated
    with pytest.raises(ValueError, match="needs answers='argmax'"):
        _build(name, answer_recall_weight=1.0)
