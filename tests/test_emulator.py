"""The emulator: shapes, conditioning, agreement with independent LSTMs, gradients, jit, fitting."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from weightspace import emulator, losses, lstm

INPUT, OUTPUT, EMBEDDING, HIDDEN = 6, 6, 16, 32
BATCH, TIME = 4, 9


def _model(condition="first", seed=0):
    return emulator.Emulator(
        INPUT, OUTPUT, embedding_size=EMBEDDING, hidden_size=HIDDEN, condition=condition, rngs=nnx.Rngs(seed)
    )


def _one_hot_sequences(rng, shape):
    return jnp.asarray(np.eye(INPUT, dtype=np.float32)[rng.integers(INPUT, size=shape)])


def _data(seed=1):
    """Embeddings [batch, E] and one-hot inputs [batch, time, in], made in NumPy: nothing to compile."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(BATCH, EMBEDDING)), jnp.float32), _one_hot_sequences(rng, (BATCH, TIME))


def _projected_inputs(model, embedding, inputs):
    """The LSTM's input [batch, time, H] computed directly: projected input plus projected embedding."""
    projected = model.input_projection(inputs)
    conditioning = model.embedding_projection(embedding)[:, None]
    if model.condition == "first":
        return projected.at[:, 0].add(conditioning[:, 0])
    return projected + conditioning


def _as_zoo_params(model):
    """The emulator's LSTM and readout as a `weightspace.lstm` params dict (same PyTorch layout)."""
    params = {}
    for k, layer in enumerate(model.layers):
        params[f"weight_ih_l{k}"] = layer.weight_ih[...]
        params[f"weight_hh_l{k}"] = layer.weight_hh[...]
        params[f"bias_ih_l{k}"] = layer.bias_ih[...]
        params[f"bias_hh_l{k}"] = layer.bias_hh[...]
    params["weight_out"] = model.output_projection.kernel[...].T
    params["bias_out"] = model.output_projection.bias[...]
    return params


def _reference(model, embedding, inputs):
    """The emulator's output, computed without its fused first-layer projection."""
    outputs, _ = lstm.apply(_as_zoo_params(model), _projected_inputs(model, embedding, inputs))
    return outputs


def test_shapes_and_config():
    embedding, inputs = _data()
    assert _model()(embedding, inputs).shape == (BATCH, TIME, OUTPUT)
    # The MNIST zoo's sizes, abstractly (no compilation).
    mnist = nnx.eval_shape(lambda: emulator.Emulator(16, 10, hidden_size=HIDDEN, num_layers=3, rngs=nnx.Rngs(0)))
    assert len(mnist.layers) == 3
    tiles = jax.ShapeDtypeStruct((BATCH, 50, 16), jnp.float32)
    assert jax.eval_shape(lambda model, e, x: model(e, x), mnist, embedding, tiles).shape == (BATCH, 50, 10)
    config = emulator.default_config()
    assert config.to_dict() == {"hidden_size": 256, "num_layers": 2, "condition": "first"}
    paper = nnx.eval_shape(lambda: emulator.Emulator(6, 6, **config, rngs=nnx.Rngs(0)))
    assert paper.input_projection.kernel.shape == (6, 256)
    assert paper.layers[1].weight_ih.shape == (1024, 256)
    assert paper.layers[0].weight_hh.shape == (1024, 256)


def test_init_is_pytorch_uniform():
    model = _model()
    bound = 1 / np.sqrt(HIDDEN)
    for layer in model.layers:
        for param in (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh):
            assert float(jnp.max(jnp.abs(param[...]))) <= bound
        np.testing.assert_allclose(jnp.var(layer.weight_hh[...]), bound**2 / 3, rtol=0.1)
    # nn.Linear's init: kernel and bias within ±1/sqrt(fan_in).
    assert float(jnp.max(jnp.abs(model.embedding_projection.kernel[...]))) <= 1 / np.sqrt(EMBEDDING)
    assert float(jnp.max(jnp.abs(model.embedding_projection.bias[...]))) > 0


@pytest.mark.parametrize("condition", emulator.CONDITIONS)
def test_matches_the_zoo_lstm_on_projected_inputs(condition):
    """The emulator is the zoo LSTM on projected inputs (which test_lstm checks against PyTorch)."""
    model = _model(condition)
    embedding, inputs = _data()
    chex.assert_trees_all_close(model(embedding, inputs), _reference(model, embedding, inputs), atol=1e-5)


def test_embedding_reaches_every_step():
    model = _model("first")
    embedding, inputs = _data()
    outputs = model(embedding, inputs)
    changed = model(embedding + 1.0, inputs)
    # Added at the first step only, but the LSTM state carries it to the last.
    assert np.all(np.max(np.abs(outputs - changed), axis=(0, 2)) > 1e-4)


def test_zero_embedding_projection_ignores_the_embedding():
    model = _model("first")
    embedding, inputs = _data()
    model.embedding_projection.kernel[...] = jnp.zeros_like(model.embedding_projection.kernel[...])
    model.embedding_projection.bias[...] = jnp.zeros_like(model.embedding_projection.bias[...])
    outputs = model(embedding, inputs)
    chex.assert_trees_all_close(outputs, model(-3.0 * embedding, inputs))
    unconditioned, _ = lstm.apply(_as_zoo_params(model), model.input_projection(inputs))
    chex.assert_trees_all_close(outputs, unconditioned, atol=1e-5)


def test_condition_first_and_every_differ_after_the_first_step():
    embedding, inputs = _data()
    first = _model("first", seed=5)(embedding, inputs)
    every = _model("every", seed=5)(embedding, inputs)
    chex.assert_trees_all_close(first[:, 0], every[:, 0], atol=1e-6)
    assert np.all(np.max(np.abs(first[:, 1:] - every[:, 1:]), axis=(0, 2)) > 1e-3)


@pytest.mark.parametrize("condition", emulator.CONDITIONS)
def test_conditioned_steps_match_the_whole_sequence(condition):
    """Stepping `conditioned(e)` one input at a time (how cloning samples) gives the emulator's outputs."""
    model = _model(condition, seed=4)
    embedding, inputs = _data()
    whole = model(embedding, inputs)
    for b in range(BATCH):
        clone = model.conditioned(embedding[b])
        chex.assert_trees_all_close(clone.apply(inputs[b]), whole[b], atol=1e-6)
        state, stepped = clone.initial_state(), []
        for x in inputs[b]:
            logits, state = clone.step(x, state)
            stepped.append(logits)
        chex.assert_trees_all_close(jnp.stack(stepped), whole[b], atol=1e-5)


def test_gradients_are_finite_and_match_autodiff_of_the_reference():
    model = _model("first")
    embedding, inputs = _data()
    target = jax.nn.log_softmax(jnp.asarray(np.random.default_rng(2).normal(size=(BATCH, TIME, OUTPUT)), jnp.float32))
    grads = nnx.jit(nnx.grad(lambda m: losses.total_variation(m(embedding, inputs), target)))(model)
    expected = nnx.jit(nnx.grad(lambda m: losses.total_variation(_reference(m, embedding, inputs), target)))(model)
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(grad)), path
        # Every parameter, the embedding projection included, is trained.
        assert float(jnp.max(jnp.abs(grad))) > 0, path
    chex.assert_trees_all_close(grads, expected, atol=1e-6)


def test_jitted_train_step_fits_a_zoo_lstm_without_retracing():
    """Conditioned on a fixed embedding, the emulator learns a random zoo LSTM's next-step distributions."""
    zoo = lstm.init(jax.random.key(0), lstm.LSTMSpec(INPUT, 16, 2, OUTPUT))
    # A larger readout makes the zoo LSTM's distributions far from uniform, so there is something to fit.
    zoo["weight_out"] = 5 * zoo["weight_out"]
    rng = np.random.default_rng(1)
    sequences = _one_hot_sequences(rng, (64, 16))
    log_probs = jax.nn.log_softmax(lstm.apply(zoo, sequences)[0])
    embedding = jnp.asarray(np.broadcast_to(rng.normal(size=EMBEDDING), (16, EMBEDDING)), jnp.float32)
    graphdef, params = nnx.split(_model(seed=3))
    optimizer = optax.adam(1e-2)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def train_step(params, opt_state, inputs, target):
        def loss_fn(params):
            return losses.total_variation(nnx.merge(graphdef, params)(embedding, inputs), target)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    history = []
    for _ in range(100):
        # A fresh minibatch of 16 of the 64 sequences every step: new values, same shapes, one trace.
        batch = rng.choice(64, 16, replace=False)
        params, opt_state, loss = train_step(params, opt_state, sequences[batch], log_probs[batch])
        history.append(float(loss))
    assert np.all(np.isfinite(history))
    assert np.mean(history[-10:]) < 0.25 * history[0], history


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="condition must be one of"):
        _model("last")
    with pytest.raises(ValueError, match="batch axes must agree"):
        _model()(jnp.zeros((3, EMBEDDING)), jnp.zeros((4, TIME, INPUT)))
