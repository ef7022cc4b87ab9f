"""Opening plain or gzipped text files, with truncated archives reported as data errors."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Iterator

from aser_jax.data.errors import DataError


def open_text(path: str | os.PathLike, mode: str = "rt"):
  """Opens `path` for text I/O, through gzip when it ends in `.gz`."""
  path = Path(path)
  if path.suffix == ".gz":
    return gzip.open(path, mode, encoding="utf-8", newline="")
  return open(path, mode, encoding="utf-8", newline="")


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
  """Yields `(line_number, line_without_newline)`, 1-based.

  A truncated or corrupt gzip stream raises `DataError` naming the last line
  read, instead of silently returning a shorter file.
  """
  lineno = 0
  try:
    with open_text(path) as f:
      for lineno, line in enumerate(f, start=1):
        yield lineno, line.rstrip("\r\n")
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise DataError(path, lineno + 1, f"corrupt or truncated gzip stream ({e})") from e
  except UnicodeDecodeError as e:
    raise DataError(path, lineno + 1, f"not valid UTF-8 ({e.reason})") from e


def iter_json_objects(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
  """Yields `(line_number, object)` of a JSON-lines file (plain or gzipped), skipping blank lines;
  a line that is not JSON, or not a JSON object, raises `DataError` naming the file and line."""
  for lineno, line in iter_lines(path):
    if not line.strip():
      continue
    try:
      obj = json.loads(line)
    except json.JSONDecodeError as err:
      raise DataError(path, lineno, f"not JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(obj, dict):
      raise DataError(path, lineno, "expected a JSON object")
    yield lineno, obj


def json_id(path: str | os.PathLike, lineno: int, obj: dict, field: str = "id") -> str:
  """`obj[field]` as a string id: a non-empty string, or an integer written as one (so `7` and
  `"7"` name the same id); anything else raises `DataError` naming the file, line and field."""
  if field not in obj:
    raise DataError(path, lineno, "missing field", field)
  ident = obj[field]
  if isinstance(ident, bool) or not isinstance(ident, (str, int)) or ident == "":
    raise DataError(path, lineno, f"expected a non-empty string or an integer, got {ident!r:.40}", field)
  return str(ident)


def find_file(directory: str | os.PathLike, stem: str) -> Path:
  """Returns `directory/stem` or `directory/stem.gz`, whichever exists."""
  directory = Path(directory)
  for candidate in (directory / stem, directory / f"{stem}.gz"):
    if candidate.exists():
      return candidate
  raise FileNotFoundError(f"neither {stem} nor {stem}.gz found under {directory}")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes `text` (UTF-8, gzipped when `path` ends in `.gz`), so readers never see half a file."""
  data = text.encode("utf-8")
  save_atomic(path, lambda f: f.write(gzip.compress(data) if Path(path).suffix == ".gz" else data))


def save_atomic(path: str | os.PathLike, save, *args, **kwargs) -> None:
  """`save(binary_file, *args, **kwargs)` into `path.tmp`, then a rename: a killed writer never
  leaves half a file under `path` (e.g. `save_atomic(p, np.savez, a=x)`)."""
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  with open(tmp, "wb") as f:
    save(f, *args, **kwargs)
  os.replace(tmp, path)
