"""The glibc settings applied on `import aser_jax` keep XLA's scratch memory mapped across runs."""

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import resource, json
import aser_jax, jax, jax.numpy as jnp
from aser_jax import _malloc

def grad_step(w, x):  # the backward pass keeps a 41 MB activation [20000, 512] as scratch
  loss = lambda w: (jax.nn.gelu(jax.nn.gelu(x @ w) @ w.T) ** 2).mean()
  return jax.grad(loss)(w)

f = jax.jit(grad_step)
w, x = jnp.full((64, 512), 0.01), jnp.ones((20000, 64))
for _ in range(20):
  f(w, x).block_until_ready()
# The heap reaches the program's working set after 20-40 calls, later under memory pressure;
# the steady state is the quietest of eight 10-call windows after that.
windows = []
for _ in range(8):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(10):
    f(w, x).block_until_ready()
  windows.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
faults = min(windows)
print(json.dumps({"applied": _malloc.applied, "faults_per_call": faults, "windows": windows}))
"""


def _probe(**env):
  clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
  out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                       check=True, timeout=300)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_scratch_buffers_are_reused_instead_of_faulted_in_again():
  pages = 20000 * 512 * 4 / 4096  # pages of one activation
  tuned = _probe()
  assert tuned["applied"] and tuned["faults_per_call"] < 0.25 * pages, tuned
  untuned = _probe(ASER_JAX_TUNE_MALLOC="0")
  assert not untuned["applied"] and untuned["faults_per_call"] > 0.5 * pages, untuned  # glibc's default behaviour
