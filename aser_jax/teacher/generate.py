"""Free-text generation for the GRASP and R2END prompt files, resumable.

`build_grasp.py --write_prompts` and `build_r2end.py --write_prompts` write `{"id", "prompt"}`
JSON lines; `generate_texts` sends them to an LLM backend (`VllmTeacher.generate`,
`OpenAITeacher.generate`) and appends `{"id", "text"}` lines, the format `--item_texts`,
`--user_texts`, `--reasoning` and `--descriptions` read back. Answers are appended and flushed
batch by batch, so a killed run loses at most its current batch: a re-run keeps every complete
line, drops a torn last one, and asks only for the ids still missing. An empty answer (a failed
request) is not written, so the next run asks again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

from aser_jax.data.errors import DataError
from aser_jax.data.io import iter_json_objects, json_id, write_text_atomic


def write_prompt_file(path: str | os.PathLike, rows: Sequence[tuple[str, str]]) -> None:
  """Writes (id, prompt) pairs as `{"id", "prompt"}` JSON lines, atomically."""
  write_text_atomic(path, "".join(json.dumps({"id": i, "prompt": p}, ensure_ascii=False) + "\n" for i, p in rows))


def read_prompts(path: str | os.PathLike) -> list[tuple[str, str]]:
  """(id, prompt) pairs; ids follow `data.io.json_id` (an integer id is read as its string), the
  rule `grasp.read_generated` reads the answers by. A bad id or prompt and a repeated id raise
  `DataError` naming the file, the line and the field."""
  out, seen = [], {}
  for lineno, obj in iter_json_objects(path):
    ident = json_id(path, lineno, obj)
    if not isinstance(obj.get("prompt"), str) or not obj["prompt"]:
      raise DataError(path, lineno, f"expected a non-empty string, got {obj.get('prompt')!r:.40}", "prompt")
    if ident in seen:
      raise DataError(path, lineno, f"id {ident!r} already on line {seen[ident]}", "id")
    seen[ident] = lineno
    out.append((ident, obj["prompt"]))
  return out


def _answered(path: Path) -> set[str]:
  """Ids already answered in `path` (by `data.io.json_id`, as the prompts are read), after cutting a
  torn last line (a kill mid-write)."""
  if not path.exists():
    return set()
  data = path.read_bytes()
  if data and not data.endswith(b"\n"):
    with open(path, "r+b") as f:
      f.truncate(data.rfind(b"\n") + 1)
  return {json_id(path, lineno, obj) for lineno, obj in iter_json_objects(path)}


def generate_texts(prompts_path: str | os.PathLike, out_path: str | os.PathLike,
                   generate: Callable[[Sequence[str]], list[str]], batch_size: int = 32, limit: int = 0,
                   progress: bool = True) -> dict:
  """Answers the prompts not yet in `out_path` (the first `limit` prompts only, if given) and
  returns counts: prompts, answered before, written now, and empty answers left for a re-run."""
  from tqdm import tqdm

  prompts = read_prompts(prompts_path)
  if limit:
    prompts = prompts[:limit]
  out = Path(out_path)
  out.parent.mkdir(parents=True, exist_ok=True)
  done = _answered(out)
  todo = [(i, p) for i, p in prompts if i not in done]
  written = empty = 0
  with open(out, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc="generate", unit="prompt",
                                                    disable=not progress) as bar:
    for start in range(0, len(todo), batch_size):
      batch = todo[start:start + batch_size]
      texts = generate([p for _, p in batch])
      if len(texts) != len(batch):
        raise ValueError(f"the backend returned {len(texts)} answers for {len(batch)} prompts")
      for (ident, _), text in zip(batch, texts):
        if text.strip():
          f.write(json.dumps({"id": ident, "text": text.strip()}, ensure_ascii=False) + "\n")
          written += 1
        else:
          empty += 1
      f.flush()
      os.fsync(f.fileno())
      bar.update(len(batch))
  return {"prompts": len(prompts), "answered_before": len(prompts) - len(todo), "written": written,
          "empty": empty, "out": str(out)}
