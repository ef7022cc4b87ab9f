"""Keeps glibc from returning XLA's per-step scratch memory to the kernel (Linux only).

XLA on CPU allocates one temporary buffer per executable run (about 160 MB for a SASRec train
step at batch 256). glibc serves allocations that large with mmap and unmaps them on free, so
every step faults the whole buffer in again: on this project's 2-core machine that kernel work
was about 40% of a train step and half of a validation pass. Serving everything from one heap
that is never trimmed makes the memory reusable across steps
(`experiments/bench_train.py` shows the effect; `ASER_JAX_TUNE_MALLOC=0` turns it off). The
price: the heap keeps its high-water mark; it settles within a few dozen steps, after which
steps fault nothing in.

It must run before JAX starts its worker threads, hence from `aser_jax/__init__.py`.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

applied = False


def tune() -> bool:
  """Sets one arena, no mmap-backed chunks and no heap trimming; returns whether it did.

  A no-op off Linux/glibc, when `ASER_JAX_TUNE_MALLOC=0`, or when the user already set any of
  glibc's own `MALLOC_*_` variables (theirs win).
  """
  global applied
  if applied:
    return True
  if not sys.platform.startswith("linux") or os.environ.get("ASER_JAX_TUNE_MALLOC", "1") == "0":
    return False
  if any(k in os.environ for k in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")):
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
    libc.gnu_get_libc_version  # present only in glibc
  except (OSError, AttributeError):
    return False
  ok = libc.mallopt(_M_ARENA_MAX, 1) and libc.mallopt(_M_MMAP_MAX, 0)
  ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
  applied = bool(ok)
  return applied
