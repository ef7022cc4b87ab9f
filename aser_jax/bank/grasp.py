"""The offline tables of the GRASP channel (BACKBONES.md "GRASP channel", GRASP paper §4.2.2).

An item's text is its description and a user's text its preference summary (training history
only); a frozen text encoder embeds them into `U` [num_users, E] and `I` [num_items + 1, E], and
`U_bar`/`I_bar` hold the mean of each row's top-k most cosine-similar OTHER rows. All four are
frozen. The texts are either templates built here or an external LLM's answers to the prompts of
`write_prompts`, read back with `read_generated` (the recommender never runs an LLM).

An empty text (an item with no text, a user with no titled training item) gets a zero row: it is
never embedded, never anyone's neighbour, and its own neighbour mean is zeros. Rows of `U` follow
`SequenceData.sequences`; rows of `I` are item ids, row 0 the padding (zeros).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from aser_jax.bank.shards import check_counts, embed_kinds, is_current, load_tables, save_tables, text_digest
from aser_jax.data.errors import DataError
from aser_jax.data.io import iter_json_objects, json_id
from aser_jax.data.sequences import SequenceData
from aser_jax.teacher.generate import write_prompt_file

_SOURCE_ORDER = {"title": 0, "description": 1, "review": 2}
ARRAYS = ("U", "U_bar", "I", "I_bar")


@dataclasses.dataclass(frozen=True)
class GraspTables:
  """The four frozen tables and the build's metadata."""

  U: np.ndarray  # [num_users, E] float32, row = user row in SequenceData.sequences
  U_bar: np.ndarray  # [num_users, E] mean of the top-k most similar other users
  I: np.ndarray  # [num_items + 1, E] float32, row 0 = padding (zeros)
  I_bar: np.ndarray  # [num_items + 1, E], row 0 zeros
  meta: dict = dataclasses.field(default_factory=dict)

  num_users = property(lambda self: int(self.U.shape[0]))
  num_items = property(lambda self: int(self.I.shape[0]) - 1)
  dim = property(lambda self: int(self.U.shape[1]))

  def arrays(self) -> dict[str, np.ndarray]:
    return {name: getattr(self, name) for name in ARRAYS}


def neighbour_means(X_NxE: np.ndarray, k: int, block: int = 256) -> np.ndarray:
  """Mean of the (un-normalised) rows of the k most cosine-similar other non-zero rows.

  A row is never its own neighbour; a zero row is never a neighbour and its mean is zeros; with
  fewer than k candidates all of them are used. Equal similarities go to the lower index.
  Similarities are float64 rounded to 1e-12, so row blocks of any size give the same choice.
  """
  X = np.asarray(X_NxE, np.float32)
  N = X.shape[0]
  norm_N = np.linalg.norm(X.astype(np.float64), axis=1)
  valid_N = norm_N > 0
  Xn = np.where(valid_N[:, None], X / np.where(valid_N, norm_N, 1.0)[:, None], 0.0)
  out = np.zeros_like(X)
  k_eff = min(int(k), int(valid_N.sum()) - 1)
  if k_eff <= 0:
    return out
  for s in range(0, N, block):
    rows = np.arange(s, min(N, s + block))
    S_BxN = np.round(Xn[rows] @ Xn.T, 12)
    S_BxN[:, ~valid_N] = -np.inf
    S_BxN[np.arange(len(rows)), rows] = -np.inf
    t_B = -np.partition(-S_BxN, k_eff - 1, axis=1)[:, k_eff - 1]  # k-th largest similarity
    above = S_BxN > t_B[:, None]
    tie = S_BxN == t_B[:, None]
    need_B = k_eff - above.sum(1)
    pick = above | (tie & (np.cumsum(tie, axis=1) <= need_B[:, None]))  # lower indices win ties
    idx_BxK = np.nonzero(pick)[1].reshape(len(rows), k_eff)
    out[rows] = X[idx_BxK].astype(np.float64).mean(1).astype(np.float32)
  out[~valid_N] = 0.0
  return out


def _catalogue_id(ex, num_items: int) -> int | None:
  """The example's item id when it is one of the catalogue's (1..num_items), else None."""
  i = int(ex.item_id) if str(ex.item_id).isdigit() else -1
  return i if 1 <= i <= num_items else None


def group_items(item_texts: Iterable, num_items: int) -> tuple[dict[int, list], int]:
  """Item id -> its `TextExample`s (catalogue ids only), and how many fell outside."""
  by_item, outside = {}, 0
  for ex in item_texts:
    i = _catalogue_id(ex, num_items)
    if i is not None:
      by_item.setdefault(i, []).append(ex)
    else:
      outside += 1
  return by_item, outside


def item_description(texts_of_item: Sequence) -> str:
  """The template text of one item: its non-empty texts, title first, then description, reviews."""
  ordered = sorted(texts_of_item, key=lambda ex: _SOURCE_ORDER.get(ex.source, len(_SOURCE_ORDER)))
  return "\n".join(ex.text.strip() for ex in ordered if ex.text.strip())


def item_titles(item_texts: Iterable, num_items: int) -> dict[int, str]:
  """Item id -> title: the first line of its first non-empty "title" text."""
  titles = {}
  for ex in item_texts:
    i = _catalogue_id(ex, num_items)
    if i is not None and ex.source == "title" and ex.text.strip() and i not in titles:
      titles[i] = ex.text.strip().splitlines()[0].strip()
  return titles


def _recent_titles(data: SequenceData, user_row: int, titles: dict[int, str], n_recent: int) -> list[str]:
  """Titles of the user's `n_recent` latest TRAINING items, oldest first. Training is `seq[:-2]`:
  the last two items are the validation and test targets and must never reach a user's text."""
  named = [titles[int(i)] for i in data.sequences[user_row][:-2] if int(i) in titles]
  return named[-n_recent:] if n_recent > 0 else []


def user_summary(data: SequenceData, user_row: int, titles: dict[int, str], n_recent: int = 20) -> str:
  """The template text of one user: the titles of their latest training items, newest first (an
  encoder that truncates long texts keeps the newest); "" without any."""
  named = _recent_titles(data, user_row, titles, n_recent)
  return "The user recently bought, newest first:\n" + "\n".join(reversed(named)) if named else ""


ITEM_PROMPT = ("Here is what a shop lists about one product (name, category, description, reviews):\n{body}\n\n"
               "In one paragraph, describe the product's attributes, its features and what it is, in plain "
               "words. Use only the information above.")
USER_PROMPT = ("A shopper bought these products, oldest first:\n{titles}\n\nFrom these purchases, conclude the "
               "shopper's preferences in one paragraph: the kinds of products, styles and qualities they like.")


def write_prompts(out_dir: str | os.PathLike, data: SequenceData, item_texts: Sequence,
                  n_recent: int = 20) -> tuple[Path, Path]:
  """Writes `items.jsonl` and `users.jsonl` ({"id", "prompt"} per line) for an external LLM; items
  without text and users without titled training items get no prompt. Returns both paths."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  by_item, _ = group_items(item_texts, data.num_items)
  titles = item_titles(item_texts, data.num_items)
  items = [(str(i), ITEM_PROMPT.format(body=body)) for i in sorted(by_item) if (body := item_description(by_item[i]))]
  users = [(str(int(data.user_ids[r])), USER_PROMPT.format(titles="\n".join(f"- {t}" for t in named)))
           for r in range(data.num_users) if (named := _recent_titles(data, r, titles, n_recent))]
  paths = out / "items.jsonl", out / "users.jsonl"
  for path, rows in zip(paths, (items, users)):
    write_prompt_file(path, rows)
  return paths


def read_generated(path: str | os.PathLike, expected_ids: Iterable) -> dict[str, str]:
  """Reads an LLM's answers, one {"id": ..., "text": ...} per line, into {id: text}. Bad JSON, a
  missing field, a wrong type, an empty text, an unknown or repeated id raise `DataError` naming
  the file, the line and the field. Ids follow `data.io.json_id` (compared as strings); expected
  ids may be absent."""
  expected = {str(i) for i in expected_ids}
  out, seen = {}, {}
  for lineno, obj in iter_json_objects(path):
    ident = json_id(path, lineno, obj)
    if "text" not in obj:
      raise DataError(path, lineno, "missing field", "text")
    text = obj["text"]
    if not isinstance(text, str) or not text.strip():
      raise DataError(path, lineno, f"expected a non-empty string, got {text!r:.40}", "text")
    if ident not in expected or ident in seen:
      raise DataError(path, lineno, f"id {ident!r} " + (f"already on line {seen[ident]}" if ident in seen
                                                       else "is not one of the expected ids"), "id")
    seen[ident] = lineno
    out[ident] = text.strip()
  return out


def build_grasp_tables(data: SequenceData, item_texts: Sequence, out_dir: str | os.PathLike,
                       embed_fn: Callable[[list[str]], np.ndarray], k: int = 10,
                       item_texts_override: dict[str, str] | None = None,
                       user_texts_override: dict[str, str] | None = None, shard_size: int = 2048,
                       progress: bool = True, encoder: str = "unnamed") -> Path:
  """Texts -> embeddings (sharded, resumable) -> neighbour means -> `out_dir/grasp.npz`.

  Generated texts (from `read_generated`, keyed by item id / user id as strings) win over the
  templates per id. An existing `grasp.npz` whose metadata matches is returned as is; shards are
  checked against `shards/manifest.json` so a changed text set never reuses stale embeddings.
  """
  out = Path(out_dir)
  by_item, outside = group_items(item_texts, data.num_items)
  titles = item_titles(item_texts, data.num_items)
  gen_i, gen_u = item_texts_override or {}, user_texts_override or {}
  items = [gen_i.get(str(i)) or item_description(by_item.get(i, [])) for i in range(1, data.num_items + 1)]
  users = [gen_u.get(str(int(data.user_ids[r]))) or user_summary(data, r, titles) for r in range(data.num_users)]
  meta = {"k": int(k), "num_users": data.num_users, "num_items": data.num_items, "data": data.name,
          "encoder": encoder, "item_text_source": "generated" if item_texts_override is not None else "template",
          "user_text_source": "generated" if user_texts_override is not None else "template",
          "items_generated": sum(str(i) in gen_i for i in range(1, data.num_items + 1)),
          "users_generated": sum(str(int(u)) in gen_u for u in data.user_ids),
          "items_with_text": sum(bool(t) for t in items), "users_with_text": sum(bool(t) for t in users),
          "item_texts_outside_catalogue": outside, "text_sha256": text_digest(items + ["\0users"] + users)}
  final = out / "grasp.npz"
  if is_current(final, meta, load_grasp_tables):
    return final
  if not meta["items_with_text"] and not meta["users_with_text"]:
    raise ValueError(f"no item or user text to embed for {data.name}")
  full = embed_kinds(out / "shards", {"items": items, "users": users}, embed_fn, shard_size, encoder,
                     meta["text_sha256"], progress, "grasp")
  E = full["items"].shape[1]
  I = np.concatenate([np.zeros((1, E), np.float32), full["items"]])
  U = full["users"]
  tables = GraspTables(U, neighbour_means(U, k), I, neighbour_means(I, k), {**meta, "E": int(E)})
  save_grasp_tables(final, tables)
  return final


def save_grasp_tables(path: str | os.PathLike, tables: GraspTables) -> None:
  """Writes U, U_bar, I, I_bar (float32) and `meta` (a JSON string) to one `.npz`, atomically."""
  _check(Path(path), tables.arrays())
  save_tables(path, tables.arrays(), tables.meta)


def _check(path: Path, arrays: dict) -> None:
  """Shapes: U and U_bar [n_users, E], I and I_bar [n_items + 1, E] with a zero row 0."""
  U, I = arrays["U"], arrays["I"]
  for name, ref in (("U", U), ("I", U), ("U_bar", U), ("I_bar", I)):
    arr = arrays[name]
    if arr.ndim != 2 or ref.ndim != 2 or not arr.shape[1] or arr.shape[1:] != ref.shape[1:] or (
        name.endswith("_bar") and arr.shape != ref.shape):
      raise DataError(path, None, f"shape {arr.shape} disagrees with {ref.shape}", name)
  if not I.shape[0] or np.any(I[0]) or np.any(arrays["I_bar"][0]):
    raise DataError(path, None, "row 0 (padding) must exist and be zeros", "I")


def load_grasp_tables(path: str | os.PathLike) -> GraspTables:
  """Reads a `grasp.npz` written by `save_grasp_tables` and checks its arrays and metadata."""
  path = Path(path)
  arrays, meta = load_tables(path, ARRAYS, "GRASP tables not found")
  _check(path, arrays)
  check_counts(path, meta, (("num_users", arrays["U"].shape[0]), ("num_items", arrays["I"].shape[0] - 1),
                            ("E", arrays["U"].shape[1])))
  return GraspTables(**arrays, meta=meta)
