"""Dataset presets: the conventional file name of each benchmark and where its item text lives."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from aser_jax.data.io import find_file
from aser_jax.data.sequences import SequenceData, read_sequences
from aser_jax.data.synthetic import SYNTHETIC_NAME, synthetic_dataset


@dataclasses.dataclass(frozen=True)
class DataPreset:
  name: str
  file: str  # sequence file name inside --data_dir (a `.gz` twin is found too)
  subdir: str  # where the shared data tree keeps it, tried when the file is not at the top level


PRESETS = {
    "beauty": DataPreset("beauty", "Beauty.txt", "amazon2014/beauty"),
    "sports": DataPreset("sports", "Sports_and_Outdoors.txt", "amazon2014/sports"),
    "toys": DataPreset("toys", "Toys_and_Games.txt", "amazon2014/toys"),
    "video_games": DataPreset("video_games", "Video_Games.txt", "amazon2014/video_games"),
    "grocery": DataPreset("grocery", "Grocery_and_Gourmet_Food.txt", "amazon2014/grocery"),
    "yelp": DataPreset("yelp", "Yelp.txt", "yelp"),
}


def default_data_dir() -> Path:
  """`../shared/data` beside the repository checkout (present on the project's machines only)."""
  return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def resolve_data_file(data: str, data_dir: str | os.PathLike | None) -> Path:
  """Finds the sequence file for a preset name in `data_dir`, or returns `data` as a path."""
  if data in PRESETS:
    if data_dir is None:
      raise ValueError(f"--data={data} needs --data_dir (the folder holding {PRESETS[data].file})")
    p = PRESETS[data]
    try:
      return find_file(data_dir, p.file)
    except FileNotFoundError:
      return find_file(Path(data_dir) / p.subdir, p.file)
  path = Path(data)
  if not path.exists():
    raise FileNotFoundError(f"--data={data!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file")
  return path


def load_sequences(data: str, data_dir: str | os.PathLike | None = None) -> SequenceData:
  """Loads a preset, a file path, or (`data == 'synthetic'`) the embedded synthetic catalogue."""
  if data == SYNTHETIC_NAME:
    return synthetic_dataset()[0]
  name = data if data in PRESETS else None
  return read_sequences(resolve_data_file(data, data_dir), name=name)
