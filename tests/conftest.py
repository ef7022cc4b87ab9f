"""Shared fixtures: where the real data lives, and a tiny sequence file for fast end-to-end runs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
  if not SHARED_DATA.exists():
    pytest.skip(f"real data not present at {SHARED_DATA} (only on the project's machines)")
  return SHARED_DATA


@pytest.fixture
def tiny_data_file(tmp_path) -> Path:
  """A small synthetic `.txt` file: 240 users, 80 items, fast to train on."""
  from aser_jax.data.sequences import write_sequences
  from aser_jax.data.synthetic import synthetic_dataset

  path = tmp_path / "tiny.txt"
  write_sequences(synthetic_dataset(num_users=240, num_items=80, seed=3)[0], path)
  return path
