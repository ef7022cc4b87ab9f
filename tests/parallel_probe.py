"""Functions the parallel-runner tests run inside worker processes (importable by name)."""

import os


def where(tag: int) -> dict:
  """What a worker sees: its cores, its XLA settings, and the result of a JAX computation."""
  import jax.numpy as jnp

  return {"tag": tag, "cores": sorted(os.sched_getaffinity(0)), "pid": os.getpid(),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
          "sum": float(jnp.arange(tag + 1).sum())}


def fail_on(tag: int, bad: int) -> int:
  if tag == bad:
    raise ValueError(f"tag {tag} is bad")
  return tag
