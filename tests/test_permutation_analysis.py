"""Symmetry sensitivity: the kinds of permutation, the function change they cause, and invariance."""

import jax
import numpy as np
import pytest

from experiments.analyses import permutation_analysis as pa
from weightspace import encoders, lstm

SPEC = lstm.LSTMSpec(4, 6, 2, 5)
SMALL = {
    "layerwise_statistics": dict(hidden_sizes=(16,)),
    "flat": dict(hidden_sizes=(16,)),
    "parameter_transformer": dict(width=16, num_layers=1, num_heads=2, mlp_size=32),
    "dwsnet": dict(channels=8, num_layers=2, hidden_sizes=(16,)),
    "noninteractive": dict(lstm_size=16, code_size=8, probe_hidden_sizes=(8,), hidden_sizes=(16,), probe_length=4),
    "interactive": dict(lstm_size=16, code_size=8, probe_hidden_sizes=(8,), hidden_sizes=(16,), probe_length=4),
}


def _params(num=6, seed=0):
    keys = jax.random.split(jax.random.key(seed), num)
    return jax.device_get(jax.vmap(lstm.init, in_axes=(0, None))(keys, SPEC))


def _inputs(num=6, seed=1):
    return np.asarray(jax.nn.one_hot(jax.random.randint(jax.random.key(seed), (num, 3, 7), 0, 4), 4))


@pytest.mark.slow
def test_only_the_correct_permutation_keeps_the_function():
    params = _params()
    for kind in pa.KINDS:
        change = np.asarray(pa.function_change(params, pa.permuted_params(kind, SPEC, 0, params), _inputs()))
        if kind == "correct":
            assert change.max() < 1e-6
        else:
            assert change.min() > 1e-5, kind


@pytest.mark.slow
def test_each_kind_permutes_exactly_its_axes():
    params = _params(num=1)
    one = jax.tree.map(lambda x: x[0], params)
    permuted = {kind: pa.permuted_params(kind, SPEC, 0, params) for kind in pa.KINDS}  # each compiled once
    moved = {kind: {t for t in one if not np.array_equal(one[t], permuted[kind][t][0])} for kind in pa.KINDS}
    assert moved["recurrent_columns"] == {"weight_hh_l0", "weight_hh_l1"}
    assert moved["next_layer_columns"] == {"weight_ih_l1", "weight_out"}
    assert moved["rows_only"] == {f"{w}_l{k}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for k in (0, 1)}
    assert moved["correct"] == set(one) - {"bias_out"}
    gate = permuted["one_gate_rows"]["bias_hh_l0"][0].reshape(4, SPEC.hidden_size)
    original = one["bias_hh_l0"].reshape(4, SPEC.hidden_size)
    np.testing.assert_array_equal(gate[1:], original[1:])  # only the input gate's rows move
    np.testing.assert_array_equal(np.sort(gate[0]), np.sort(original[0]))
    assert not np.array_equal(gate[0], original[0])


@pytest.mark.parametrize("name", encoders.NAMES)
@pytest.mark.slow
def test_correct_permutations_leave_every_invariant_encoder_unchanged(name):
    config = encoders.default_config(name)
    config.update(SMALL[name])
    encoder = encoders.build(config, SPEC, seed=0)
    encoder.eval()
    params = _params()
    embedding = np.asarray(encoder(params))
    scale = np.mean(np.linalg.norm(embedding - np.roll(embedding, 1, axis=0), axis=1))
    moved = np.linalg.norm(embedding - np.asarray(encoder(pa.permuted_params("correct", SPEC, 0, params))), axis=1)
    if name in ("flat", "parameter_transformer"):  # not invariant by construction (trained with augmentation)
        assert moved.mean() / scale > 1e-3
    else:
        assert moved.mean() / scale <= 1e-5
