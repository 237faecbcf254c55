"""Meshes: one named Auto axis over the devices (multi-device runs are in test_build and test_experiments)."""

import jax
import numpy as np

from weightspace import sharding


def test_mesh_is_one_auto_axis_over_every_device():
    mesh = sharding.mesh("models")
    assert mesh.axis_names == ("models",) and mesh.size == len(jax.devices())
    assert mesh.axis_types == (jax.sharding.AxisType.Auto,)  # jax.make_mesh's default would be Explicit
    assert sharding.mesh("data", jax.devices()[:1]).size == 1


def test_split_and_replicated_placements():
    mesh = sharding.mesh("data")
    assert sharding.split(mesh).spec == jax.P("data") and sharding.replicated(mesh).spec == jax.P()
    array = jax.device_put(np.arange(4.0 * len(jax.devices())), sharding.split(mesh))
    assert len(array.addressable_shards) == len(jax.devices())
    np.testing.assert_array_equal(jax.device_get(array), np.arange(4.0 * len(jax.devices())))
