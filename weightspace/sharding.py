"""Device meshes: every parallel axis here is one named axis over a list of devices.

The zoo builder splits runs over `('models',)`, the trainer a sweep's members
and its batch over `('members', 'data')` (`grid`). Axes are `Auto`: shardings are propagated by XLA from the inputs
and `with_sharding_constraint`, as the jitted steps are written for.
"""

from collections.abc import Sequence

import jax


def mesh(axis: str, devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-d mesh named `axis` over `devices` (default: every device of every process)."""
    devices = list(devices) if devices is not None else jax.devices()
    return jax.make_mesh((len(devices),), (axis,), (jax.sharding.AxisType.Auto,), devices=devices)


def grid(axes: tuple[str, ...], shape: tuple[int, ...], devices: Sequence[jax.Device]) -> jax.sharding.Mesh:
    """A mesh of `shape` with axes named `axes` over the first prod(shape) of `devices`."""
    count = 1
    for size in shape:
        count *= size
    return jax.make_mesh(shape, axes, (jax.sharding.AxisType.Auto,) * len(axes), devices=list(devices)[:count])


def replicated(on: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
    """Every device holds the whole array."""
    return jax.sharding.NamedSharding(on, jax.P())


def split(on: jax.sharding.Mesh, axis: int = 0, name: str | None = None) -> jax.sharding.NamedSharding:
    """Axis `axis` (the leading one by default) split over the mesh axis `name` (default: the mesh's first)."""
    return jax.sharding.NamedSharding(on, jax.P(*(None,) * axis, name or on.axis_names[0]))


def constrain(tree, sharding: jax.sharding.NamedSharding):
    """Every leaf of `tree` constrained to `sharding` (inside jit: e.g. a batch split over the mesh)."""
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)
