"""The benchmarks' shared measurements (weightspace.benchmarking): FLOP counting and windowed rates."""

import jax
import jax.numpy as jnp

from weightspace import benchmarking


def test_matmul_flops_counts_every_scan_step():
    """A scanned matmul counts once per step, beside a plain one: agreement with a hand count."""
    steps, batch, width = 7, 3, 5

    def f(h, w, xs):
        def body(h, x):
            return jnp.tanh(h @ w + x), None

        h, _ = jax.lax.scan(body, h, xs)
        return h @ w.T

    args = (jnp.ones((batch, width)), jnp.ones((width, width)), jnp.ones((steps, batch, width)))
    expected = (steps + 1) * 2 * batch * width * width
    assert benchmarking.matmul_flops(jax.make_jaxpr(f)(*args).jaxpr) == expected
    # Forward and backward: the gradient adds two matmuls per matmul.
    grad = jax.make_jaxpr(jax.grad(lambda *a: f(*a).sum(), argnums=1))(*args)
    assert benchmarking.matmul_flops(grad.jaxpr) == 3 * expected


def test_rate_summary_is_the_median_with_the_window_range():
    summary = benchmarking.rate_summary([4.0, 1.0, 5.0, 2.0, 3.0])
    assert summary == {"steps_per_s": 3.0, "steps_per_s_range": [1.0, 5.0]}


def test_every_window_takes_at_least_one_step():
    calls = []
    rates = benchmarking.window_rates(lambda: calls.append(1), seconds=0.0)
    assert len(calls) == len(rates) == benchmarking.WINDOWS
    assert all(rate > 0 for rate in rates)


def test_a_scaled_rate_summary_under_its_own_name():
    summary = benchmarking.rate_summary([1.0, 2.0, 3.0], scale=10, key="model_steps_per_s")
    assert summary == {"model_steps_per_s": 20.0, "model_steps_per_s_range": [10.0, 30.0]}
