"""Data parallelism with `jax.jit` and `NamedSharding` over a 1-D device mesh.

Parameters and optimiser state are replicated; batches are split along their first axis.
On CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=4` gives four virtual devices.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def data_mesh(devices=None) -> Mesh:
  return Mesh(np.asarray(devices if devices is not None else jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def put_batch(mesh: Mesh, tree):
  """Places host arrays on the mesh, split along the leading (batch) axis."""
  return jax.device_put(tree, batch_sharded(mesh))


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple
