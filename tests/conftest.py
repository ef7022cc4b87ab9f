"""Shared fixtures: where the real data lives, and a tiny sequence file for fast end-to-end runs.

The suite shares one persistent XLA compilation cache (a temporary folder, removed at the end)
between its processes: most end-to-end tests start `train_recommender.py` and friends several
times on the same tiny settings, and each fresh process would otherwise compile the same
programs again. A cached program is the same executable, so results are unchanged. A caller's
own `JAX_COMPILATION_CACHE_DIR` is kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # set before jax is imported; workers inherit it
  _OWN_CACHE = tempfile.mkdtemp(prefix="aser_jax_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def pytest_unconfigure(config):
  if _OWN_CACHE is not None:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture
def shared_data() -> Path:
  if not SHARED_DATA.exists():
    pytest.skip(f"real data not present at {SHARED_DATA} (only on the project's machines)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def minilm() -> Path:
  """The all-MiniLM-L6-v2 directory; tests that embed or tokenise real text skip without it."""
  from aser_jax.models.encoders import minilm_path

  try:
    return minilm_path()
  except FileNotFoundError as e:
    pytest.skip(str(e))


@pytest.fixture
def tiny_data_file(tmp_path) -> Path:
  """A small synthetic `.txt` file: 240 users, 80 items, fast to train on."""
  from aser_jax.data.sequences import write_sequences
  from aser_jax.data.synthetic import synthetic_dataset

  path = tmp_path / "tiny.txt"
  write_sequences(synthetic_dataset(num_users=240, num_items=80, seed=3)[0], path)
  return path
