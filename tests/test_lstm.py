"""The zoo LSTM: semantics, flat layout and the hidden-neuron symmetry."""

import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from weightspace import lstm

SPEC = lstm.LSTMSpec(input_size=6, hidden_size=32, num_layers=2, output_size=6)
TORCH_REFERENCE = pathlib.Path(__file__).parent / "torch_reference"


def _params(seed=0, spec=SPEC):
    return lstm.init(jax.random.key(seed), spec)


def _inputs(seed=1, time=17, spec=SPEC):
    return jax.random.normal(jax.random.key(seed), (time, spec.input_size))


def test_parameter_counts_match_the_paper():
    assert SPEC.num_params == 13_766
    assert lstm.LSTMSpec(16, 32, 2, 10).num_params == 15_178


def test_init_is_pytorch_uniform():
    params = _params()
    bound = 1 / np.sqrt(32)
    for name, shape in SPEC.shapes().items():
        assert params[name].shape == shape
        assert float(jnp.max(jnp.abs(params[name]))) <= bound
    flat = np.asarray(lstm.to_flat(params))
    # Uniform on [-b, b]: mean 0, variance b^2 / 3.
    assert abs(flat.mean()) < 0.01
    np.testing.assert_allclose(flat.var(), bound**2 / 3, rtol=0.05)


def test_apply_equals_stepping():
    params, inputs = _params(), _inputs()
    outputs, final = lstm.apply(params, inputs)
    state = lstm.initial_state(SPEC)
    stepped = []
    for x in inputs:
        y, state = lstm.step(params, x, state)
        stepped.append(y)
    chex.assert_trees_all_close(outputs, jnp.stack(stepped), atol=1e-5)
    chex.assert_trees_all_close(final, state, atol=1e-5)


def test_apply_continues_from_a_state():
    params, inputs = _params(), _inputs()
    whole, _ = lstm.apply(params, inputs)
    first, state = lstm.apply(params, inputs[:7])
    second, _ = lstm.apply(params, inputs[7:], state)
    chex.assert_trees_all_close(whole, jnp.concatenate([first, second]), atol=1e-5)


def test_cell_against_a_hand_computation():
    spec = lstm.LSTMSpec(1, 1, 1, 1)
    params = {
        "weight_ih_l0": jnp.array([[0.5], [-1.0], [2.0], [0.25]]),
        "weight_hh_l0": jnp.array([[0.1], [0.2], [0.3], [0.4]]),
        "bias_ih_l0": jnp.array([0.0, 1.0, 0.0, -0.5]),
        "bias_hh_l0": jnp.array([0.1, 0.0, -0.2, 0.0]),
        "weight_out": jnp.array([[3.0]]),
        "bias_out": jnp.array([-1.0]),
    }
    sig = lambda z: 1 / (1 + np.exp(-z))
    h = c = 0.0
    expected = []
    for x in (1.0, -2.0):
        i, f = sig(0.5 * x + 0.1 * h + 0.1), sig(-1.0 * x + 0.2 * h + 1.0)
        g, o = np.tanh(2.0 * x + 0.3 * h - 0.2), sig(0.25 * x + 0.4 * h - 0.5)
        c = f * c + i * g
        h = o * np.tanh(c)
        expected.append(3.0 * h - 1.0)
    outputs, _ = lstm.apply(params, jnp.array([[1.0], [-2.0]]))
    assert lstm.spec_of(params) == spec
    np.testing.assert_allclose(np.asarray(outputs)[:, 0], expected, rtol=1e-5)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_hidden_permutation_leaves_the_function_unchanged(layer):
    spec = lstm.LSTMSpec(5, 8, 3, 4)
    params, inputs = _params(3, spec), _inputs(4, 11, spec)
    perm = jax.random.permutation(jax.random.key(layer), spec.hidden_size)
    permuted = lstm.permute_hidden(params, layer, perm)
    assert not np.allclose(permuted[f"weight_hh_l{layer}"], params[f"weight_hh_l{layer}"])
    chex.assert_trees_all_close(lstm.apply(permuted, inputs)[0], lstm.apply(params, inputs)[0], atol=1e-5)


def test_permuting_only_some_tensors_changes_the_function():
    params, inputs = _params(), _inputs()
    perm = jax.random.permutation(jax.random.key(0), 32)
    permuted = lstm.permute_hidden(params, 0, perm)
    reference = lstm.apply(params, inputs)[0]
    # Leave out, in turn, each tensor the permutation acts on.
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l1"):
        partial = {**permuted, name: params[name]}
        assert float(jnp.max(jnp.abs(lstm.apply(partial, inputs)[0] - reference))) > 1e-3, name
    # Rows permuted without respecting the gate blocks.
    whole_rows = {**permuted, "weight_hh_l0": params["weight_hh_l0"][jnp.argsort(jnp.arange(128) * 7 % 128)]}
    assert float(jnp.max(jnp.abs(lstm.apply(whole_rows, inputs)[0] - reference))) > 1e-3


def test_flat_round_trip_is_exact():
    params = _params()
    flat = lstm.to_flat(params)
    assert flat.shape == (SPEC.num_params,)
    back = lstm.from_flat(flat, SPEC)
    for name in SPEC.shapes():
        np.testing.assert_array_equal(back[name], params[name])


def test_flat_layout_is_the_reference_order():
    params = _params()
    flat = np.asarray(lstm.to_flat(params))
    # weight_ih_l0 [128, 6] first, row-major; the readout bias last.
    np.testing.assert_array_equal(flat[:6], params["weight_ih_l0"][0])
    np.testing.assert_array_equal(flat[6:12], params["weight_ih_l0"][1])
    np.testing.assert_array_equal(flat[768 : 768 + 32], params["weight_hh_l0"][0])
    np.testing.assert_array_equal(flat[-6:], params["bias_out"])


def test_flat_round_trip_with_batch_axes():
    params = jax.vmap(lstm.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 6), SPEC)
    flat = lstm.to_flat(params)
    assert flat.shape == (6, SPEC.num_params)
    back = lstm.from_flat(flat.reshape(2, 3, -1), SPEC)
    assert back["weight_hh_l1"].shape == (2, 3, 128, 32)
    np.testing.assert_array_equal(back["weight_hh_l1"].reshape(6, 128, 32), params["weight_hh_l1"])


def test_from_flat_rejects_a_wrong_size():
    with pytest.raises(ValueError, match="13766"):
        lstm.from_flat(jnp.zeros(13_765), SPEC)


def test_spec_of_rejects_mismatched_tensors():
    params = _params()
    with pytest.raises(ValueError, match="weight_hh_l1"):
        lstm.spec_of({**params, "weight_hh_l1": jnp.zeros((128, 31))})
    with pytest.raises(ValueError, match="tensors"):
        lstm.spec_of({k: v for k, v in params.items() if k != "bias_out"})


@pytest.mark.slow
def test_vmap_over_models_equals_a_loop():
    keys = jax.random.split(jax.random.key(0), 4)
    params = jax.vmap(lstm.init, in_axes=(0, None))(keys, SPEC)
    inputs = jax.random.normal(jax.random.key(1), (4, 9, 6))
    batched, _ = jax.jit(jax.vmap(lstm.apply))(params, inputs)
    for m in range(4):
        one = jax.tree.map(lambda x, m=m: x[m], params)
        chex.assert_trees_all_close(batched[m], lstm.apply(one, inputs[m])[0], atol=1e-6)


def test_matches_torch_lstm():
    """Against `nn.LSTM` + `nn.Linear` outputs stored by tests/torch_reference/make.py (PyTorch's names and order)."""
    case = np.load(TORCH_REFERENCE / "lstm.npz")
    names = [str(name) for name in case["names"]]
    params = {name: jnp.asarray(case[f"param/{name}"]) for name in names}
    outputs, (h, c) = lstm.apply(params, jnp.asarray(case["inputs"]))
    np.testing.assert_allclose(outputs, case["outputs"], atol=1e-5)
    np.testing.assert_allclose(h, case["h"], atol=1e-5)
    np.testing.assert_allclose(c, case["c"], atol=1e-5)
    # The flat layout is PyTorch's named_parameters() order, then the readout.
    torch_flat = np.concatenate([case[f"param/{name}"].ravel() for name in names])
    np.testing.assert_array_equal(np.asarray(lstm.to_flat(params)), torch_flat)


def _reference_apply(params, inputs):
    """The LSTM by plain autodiff-able stepping, to check `apply`'s hand-written backward pass."""

    def one(carry, x):
        y, carry = lstm.step(params, x, carry)
        return carry, y

    state = lstm.initial_state(lstm.spec_of(params))
    return jax.vmap(lambda seq: jax.lax.scan(one, state, seq)[1])(inputs)


@pytest.mark.slow
def test_gradients_match_plain_autodiff():
    params = _params()
    inputs = jax.random.normal(jax.random.key(2), (5, 13, 6))
    weights = jax.random.normal(jax.random.key(3), (5, 13, 6))

    def loss(apply_fn, params, inputs):
        return jnp.sum(jnp.sin(apply_fn(params, inputs)) * weights)

    ours = jax.grad(loss, argnums=(1, 2))(lambda p, x: lstm.apply(p, x)[0], params, inputs)
    reference = jax.grad(loss, argnums=(1, 2))(_reference_apply, params, inputs)
    chex.assert_trees_all_close(ours, reference, atol=2e-5, rtol=1e-4)


def test_gradient_through_the_final_state():
    params, inputs = _params(), _inputs()
    state = (jnp.full((2, 32), 0.3), jnp.full((2, 32), -0.2))

    def through_state(params, state):
        _, (h, c) = lstm.apply(params, inputs, state)
        return jnp.sum(h * jnp.arange(32)) + jnp.sum(jnp.cos(c))

    def by_steps(params, state):
        for x in inputs:
            _, state = lstm.step(params, x, state)
        return jnp.sum(state[0] * jnp.arange(32)) + jnp.sum(jnp.cos(state[1]))

    chex.assert_trees_all_close(
        jax.grad(through_state, argnums=(0, 1))(params, state),
        jax.grad(by_steps, argnums=(0, 1))(params, state),
        atol=2e-5,
        rtol=1e-4,
    )


def test_batched_apply_equals_vmap():
    params = _params()
    inputs = jax.random.normal(jax.random.key(2), (3, 4, 9, 6))
    batched, (h, _) = lstm.apply(params, inputs)
    looped, (h_looped, _) = jax.vmap(jax.vmap(lstm.apply, in_axes=(None, 0)), in_axes=(None, 0))(params, inputs)
    assert batched.shape == (3, 4, 9, 6) and h.shape == (2, 3, 4, 32)
    chex.assert_trees_all_close(batched, looped, atol=1e-6)
    chex.assert_trees_all_close(h, jnp.moveaxis(h_looped, 2, 0), atol=1e-6)
