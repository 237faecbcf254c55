"""The vmapped, sharded training step of a group of zoo runs.

Every run of a group has its own task, its own PRNG key (derived from its run
id, so a run trains identically in any group and on any device layout) and its
own AdamW state. One jitted call advances all runs of a group by several steps
(`lax.scan` over steps of a `vmap` over runs); the run axis is sharded over a
1-d device mesh `('models',)`.
"""

import functools
import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from weightspace import lstm
from weightspace.tasks import Task, TaskFamily
from weightspace.types import Params, PyTree

# Streams folded into a run's key, one per use, so no key is reused.
_INIT, _BATCH, _SNAPSHOT = 0, 1, 2


def run_keys(seed: int, run_ids: np.ndarray) -> jax.Array:
    """Per-run keys [runs]: `fold_in(key(seed), run_id)`."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), jnp.asarray(run_ids, jnp.uint32))


def learning_rate_schedule(points: Sequence[tuple[int, float]]) -> optax.Schedule:
    """Piecewise-linear learning rate through `(step, value)` points, constant outside."""
    try:
        steps_and_values = [(int(step), float(value)) for step, value in points]
    except (TypeError, ValueError):
        raise ValueError(f"Learning-rate points must be (step, value) pairs, got {points!r}.") from None
    if not steps_and_values or any(a[0] >= b[0] for a, b in itertools.pairwise(steps_and_values)):
        raise ValueError(f"Learning-rate points need increasing steps, got {points!r}.")
    steps = jnp.array([p[0] for p in steps_and_values], jnp.float32)
    values = jnp.array([p[1] for p in steps_and_values], jnp.float32)
    return lambda count: jnp.interp(count, steps, values)


def optimizer(schedule: optax.Schedule, weight_decay: jax.Array) -> optax.GradientTransformation:
    """AdamW as in PyTorch's defaults (betas 0.9/0.999, eps 1e-8) with the run's weight decay."""
    return optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)


def init_state(family: TaskFamily, schedule, spec: lstm.LSTMSpec, keys: jax.Array, tasks: Task) -> PyTree:
    """Fresh params and optimiser state of every run: {'params', 'opt_state'} with leading [runs]."""

    def one(key, task):
        params = lstm.init(jax.random.fold_in(key, _INIT), spec)
        return {"params": params, "opt_state": optimizer(schedule, family.weight_decay(task)).init(params)}

    return jax.vmap(one)(keys, tasks)


def train_steps(
    family: TaskFamily,
    schedule,
    state: PyTree,
    keys: jax.Array,
    tasks: Task,
    data: PyTree,
    first_step: jax.Array,
    num_steps: int,
) -> tuple[PyTree, jax.Array]:
    """Advances every run by `num_steps` optimiser steps.

    Step s (0-based) of a run draws its batch from `fold_in(fold_in(key, BATCH), s)`.

    Returns:
      The new state and the training loss of every run at every step [num_steps, runs].
    """

    def one_run(state, key, task, step):
        batch = family.train_batch(jax.random.fold_in(jax.random.fold_in(key, _BATCH), step), task, data)
        loss, grads = jax.value_and_grad(family.loss)(state["params"], batch)
        opt = optimizer(schedule, family.weight_decay(task))
        updates, opt_state = opt.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}, loss

    def one_step(state, step):
        return jax.vmap(one_run, in_axes=(0, 0, 0, None))(state, keys, tasks, step)

    return jax.lax.scan(one_step, state, first_step + jnp.arange(num_steps))


def snapshot(family: TaskFamily, params: Params, keys: jax.Array, tasks: Task, data: PyTree, step: jax.Array) -> PyTree:
    """Behaviour and metrics of every run at `step`: ({name: [runs, ...]}, {name: [runs]})."""

    def one(params, key, task):
        return family.snapshot(jax.random.fold_in(jax.random.fold_in(key, _SNAPSHOT), step), params, task, data)

    return jax.vmap(one)(params, keys, tasks)


def compile_fns(family: TaskFamily, schedule, mesh: jax.sharding.Mesh):
    """Jitted init / train / snapshot functions with the run axis sharded over `mesh`.

    Runs never interact, so each function is a `shard_map`: every device runs
    the same program on its own runs. The per-device program depends only on
    the runs per device, which makes a zoo bit-identical across device counts.
    """
    runs, steps_by_runs, replicated = jax.P("models"), jax.P(None, "models"), jax.P()

    def per_device(fn, in_specs, out_specs):
        # No collectives: the varying-axis check is unnecessary (and trips on constant scan carries).
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    def init(spec, keys, tasks):
        return per_device(functools.partial(init_state, family, schedule, spec), (runs, runs), runs)(keys, tasks)

    def train(state, keys, tasks, data, first_step, num_steps):
        fn = functools.partial(train_steps, family, schedule, num_steps=num_steps)
        specs = (runs, runs, runs, replicated, replicated)
        return per_device(fn, specs, (runs, steps_by_runs))(state, keys, tasks, data, first_step)

    def snap(params, keys, tasks, data, step):
        fn = functools.partial(snapshot, family)
        return per_device(fn, (runs, runs, runs, replicated, replicated), runs)(params, keys, tasks, data, step)

    return (
        jax.jit(init, static_argnums=0),
        jax.jit(train, static_argnums=5, donate_argnums=0),
        jax.jit(snap),
    )
