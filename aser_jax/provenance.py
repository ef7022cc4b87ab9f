"""What a result was measured on: library versions, code commit, devices and host.

Written into every run's `metrics.json` and every benchmark's JSON, so that two numbers can be
compared knowing whether they came from the same code and the same kind of machine (the same
CPU-only step has been seen to take three times longer on one host of the same nominal size).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy")


def _version(package: str) -> str | None:
  try:
    return metadata.version(package)
  except metadata.PackageNotFoundError:
    return None


@functools.cache
def _git(repo: Path) -> dict | None:
  """`{"commit", "dirty"}` of the checkout the package runs from (an editable install), else None."""
  if not (repo / ".git").exists():
    return None
  try:
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True,
                                    timeout=10, check=True).stdout.strip()
    if Path(run("rev-parse", "--show-toplevel")).resolve() != repo.resolve():
      return None  # git found some enclosing repository, not this checkout
    commit = run("rev-parse", "HEAD")
    dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit, "dirty": dirty}


def _cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def environment() -> dict:
  """Versions, commit, JAX backend and devices, host CPU and cores this process may use."""
  devices = jax.devices()
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return {
      "python": sys.version.split()[0],
      "packages": {p: _version(p) for p in PACKAGES},
      "aser_jax": _git(Path(__file__).resolve().parent.parent),
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "host": {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "usable_cores": cores,
               "platform": platform.platform()},
      "xla_flags": os.environ.get("XLA_FLAGS"),
  }
