"""The offline texts and frozen embeddings of the R2END channel (BACKBONES.md "R2END channel",
R2END paper §3.1-3.3).

Each user has three (history, target) cases under leave-one-out: train `(seq[:-3], seq[-3])`,
valid `(seq[:-2], seq[-2])` and test `(seq[:-1], seq[-1])`. Only train cases reach a prompt or a
distillation target, so no validation or test item is ever shown to the teacher.

- Item metadata `M_i`: the item's title text (title, category path) on one line.
- History text `H_u`: the metadata of the case's `n_recent` latest items, newest first. Our
  sequence files carry no dates, so the paper's 60-day window and purchase dates are left out.
- Reasoning `R_u`: an LLM's answer to the oracle-guided prompt (history and the true next item),
  read back from JSONL. Users without one get the target's metadata alone as their target, which
  is the paper's "w.o. LLM reasoning" ablation; with no reasoning file that is every user.
- Item description `D_i`: an LLM's answer to the item prompt; without one, the item's own texts.

`r2end.npz` holds `E_items` [num_items + 1, E] = Enc(D_i ⊕ M_i) (row 0, padding, zeros) and
`E_targets` [num_users, E] = Enc(R_u ⊕ M_target) (zeros for a user without a train case), both
from the frozen encoder; the trainable student starts from the same encoder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from aser_jax.bank.grasp import group_items, item_description
from aser_jax.bank.shards import check_counts, embed_kinds, is_current, load_tables, save_tables, text_digest
from aser_jax.data.errors import DataError
from aser_jax.data.sequences import SequenceData
from aser_jax.teacher.generate import write_prompt_file

CASES = {"train": 3, "valid": 2, "test": 1}  # how many items from the end the case's target sits
ARRAYS = ("E_items", "E_targets")


def case(seq: np.ndarray, which: str) -> tuple[np.ndarray, int]:
  """(history, target) of one user's `which` case; the history is empty when the user is too short."""
  cut = CASES[which]
  if len(seq) < cut:
    return seq[:0], 0
  return seq[:len(seq) - cut], int(seq[len(seq) - cut])


def item_metadata(item_texts: Sequence, num_items: int) -> dict[int, str]:
  """Item id -> `M_i`: the lines of its title text (title, category path) joined by " | "."""
  return _metadata(group_items(item_texts, num_items)[0])


def _metadata(by_item: dict[int, list]) -> dict[int, str]:
  out = {}
  for i, exs in by_item.items():
    title = next((ex.text for ex in exs if ex.source == "title" and ex.text.strip()), "")
    if title:
      out[i] = " | ".join(line.strip() for line in title.splitlines() if line.strip())
  return out


def history_text(history: Sequence[int], meta: dict[int, str], n_recent: int = 8) -> str:
  """`H_u`: the metadata of the latest `n_recent` items of `history` that have any, newest first,
  one per line (an encoder that truncates keeps the newest: on Beauty 10% of 8-item histories pass
  MiniLM's 256 tokens); "" when none has."""
  named = [meta[int(i)] for i in history if int(i) in meta]
  return "\n".join(reversed(named[-n_recent:])) if n_recent > 0 else ""


def history_texts(data: SequenceData, which: str, meta: dict[int, str], n_recent: int = 8) -> list[str]:
  """`H_u` of every user's `which` case, in `SequenceData` row order."""
  return [history_text(case(seq, which)[0], meta, n_recent) for seq in data.sequences]


def _join(*parts: str) -> str:
  return "\n".join(p for p in parts if p)


REASONING_PROMPT = (
    "A shopper bought these products, newest first:\n{history}\n\nTheir next purchase was:\n{target}\n\n"
    "Explain, in one paragraph of at most {max_words} words, which of the shopper's preferences shown by the "
    "earlier purchases led to this next purchase. Begin with \"The shopper's preferences behind this purchase "
    "are:\" and use only the information above.")
UNGUIDED_PROMPT = (
    "A shopper bought these products, newest first:\n{history}\n\nDescribe, in one paragraph of at most "
    "{max_words} words, the shopper's preferences shown by these purchases and what they are likely to buy "
    "next. Begin with \"The shopper's preferences are:\" and use only the information above.")
ITEM_PROMPT = (
    "A shop lists this product:\n{meta}\n{extra}\nDescribe, in one paragraph of at most {max_words} words, which "
    "kinds of shoppers would choose this product and why: the needs, tastes and uses it suits. Begin with "
    "\"Shoppers who\" and ground every claim in the information above.")


def write_prompts(out_dir: str | os.PathLike, data: SequenceData, item_texts: Sequence, n_recent: int = 8,
                  max_words: int = 512, max_extra_chars: int = 2000, oracle: bool = True) -> tuple[Path, Path]:
  """Writes `reasoning.jsonl` (one oracle-guided prompt per user with a titled train case, id = user
  id) and `items.jsonl` (one per item with metadata, id = item id, its other texts - description,
  reviews - appended up to `max_extra_chars`), each line {"id", "prompt"}; returns both paths.
  `oracle=False` leaves the true next item out of the reasoning prompts (the paper's "w.o. oracle
  guide" ablation)."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  by_item, _ = group_items(item_texts, data.num_items)
  meta = _metadata(by_item)
  reasoning = []
  for r, seq in enumerate(data.sequences):
    hist, target = case(seq, "train")
    h = history_text(hist, meta, n_recent)
    if h and target in meta:
      prompt = REASONING_PROMPT.format(history=h, target=meta[target], max_words=max_words) if oracle \
          else UNGUIDED_PROMPT.format(history=h, max_words=max_words)
      reasoning.append((str(int(data.user_ids[r])), prompt))
  items = []
  for i in sorted(meta):
    extra = "\n".join(ex.text.strip() for ex in by_item.get(i, []) if ex.source != "title" and ex.text.strip())
    items.append((str(i), ITEM_PROMPT.format(meta=meta[i], extra=extra[:max_extra_chars] + "\n" if extra else "",
                                             max_words=max_words)))
  paths = out / "reasoning.jsonl", out / "items.jsonl"
  for path, rows in zip(paths, (reasoning, items)):
    write_prompt_file(path, rows)
  return paths


@dataclasses.dataclass(frozen=True)
class R2endTables:
  E_items: np.ndarray  # [num_items + 1, E] float32, row 0 zeros
  E_targets: np.ndarray  # [num_users, E] float32, zero rows for users without a train case
  meta: dict = dataclasses.field(default_factory=dict)

  num_items = property(lambda self: int(self.E_items.shape[0]) - 1)
  num_users = property(lambda self: int(self.E_targets.shape[0]))
  dim = property(lambda self: int(self.E_items.shape[1]))

  def arrays(self) -> dict[str, np.ndarray]:
    return {name: getattr(self, name) for name in ARRAYS}


def table_texts(data: SequenceData, item_texts: Sequence, reasoning: dict[str, str] | None = None,
                descriptions: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
  """(item texts for rows 1..num_items, target texts per user row): `D_i ⊕ M_i` and `R_u ⊕ M_target`.
  Without a generated description an item's text is its own texts (title first, which holds M_i)."""
  by_item, _ = group_items(item_texts, data.num_items)
  meta = _metadata(by_item)
  reasoning, descriptions = reasoning or {}, descriptions or {}
  items = [_join(descriptions[str(i)], meta.get(i, "")) if str(i) in descriptions
           else item_description(by_item.get(i, [])) for i in range(1, data.num_items + 1)]
  targets = []
  for r, seq in enumerate(data.sequences):
    hist, target = case(seq, "train")
    m = meta.get(target, "") if len(hist) else ""
    targets.append(_join(reasoning.get(str(int(data.user_ids[r])), ""), m) if m else "")
  return items, targets


def build_r2end_tables(data: SequenceData, item_texts: Sequence, out_dir: str | os.PathLike,
                       embed_fn: Callable[[list[str]], np.ndarray], reasoning: dict[str, str] | None = None,
                       descriptions: dict[str, str] | None = None, shard_size: int = 2048,
                       progress: bool = True, encoder: str = "unnamed") -> Path:
  """Texts -> frozen embeddings (sharded, resumable) -> `out_dir/r2end.npz`.

  `reasoning` (user id -> R_u) and `descriptions` (item id -> D_i) come from `grasp.read_generated`.
  An existing `r2end.npz` with the same metadata is returned as is; `shards/manifest.json` keeps
  shards of other texts or another encoder from being reused.
  """
  out = Path(out_dir)
  items, targets = table_texts(data, item_texts, reasoning, descriptions)
  uids = [str(int(u)) for u in data.user_ids]
  meta = {"data": data.name, "num_users": data.num_users, "num_items": data.num_items, "encoder": encoder,
          "reasoning_source": "llm" if reasoning else "none", "description_source": "llm" if descriptions else "own",
          "targets_with_reasoning": sum(bool(t) and u in (reasoning or {}) for u, t in zip(uids, targets)),
          "targets": sum(bool(t) for t in targets), "items_with_text": sum(bool(t) for t in items),
          "text_sha256": text_digest(items + ["\0targets"] + targets)}
  final = out / "r2end.npz"
  if is_current(final, meta, load_r2end_tables):
    return final
  if not meta["targets"] or not meta["items_with_text"]:
    raise ValueError(f"{data.name}: R2END needs item metadata (titles) and users with a titled train case; "
                     f"got {meta['items_with_text']} items with text and {meta['targets']} targets")
  full = embed_kinds(out / "shards", {"items": items, "targets": targets}, embed_fn, shard_size, encoder,
                     meta["text_sha256"], progress, "r2end")
  E = full["items"].shape[1]
  tables = R2endTables(np.concatenate([np.zeros((1, E), np.float32), full["items"]]), full["targets"],
                       {**meta, "E": int(E)})
  save_r2end_tables(final, tables)
  return final


def save_r2end_tables(path: str | os.PathLike, tables: R2endTables) -> None:
  _check(Path(path), tables.arrays())
  save_tables(path, tables.arrays(), tables.meta)


def _check(path: Path, arrays: dict) -> None:
  items, targets = arrays["E_items"], arrays["E_targets"]
  for name, arr in arrays.items():
    if arr.ndim != 2 or not arr.shape[1]:
      raise DataError(path, None, f"expected a non-empty 2-D table, got shape {arr.shape}", name)
  if targets.shape[1] != items.shape[1]:
    raise DataError(path, None, f"width {targets.shape[1]} disagrees with E_items' {items.shape[1]}", "E_targets")
  if not items.shape[0] or np.any(items[0]):
    raise DataError(path, None, "row 0 (padding) must exist and be zeros", "E_items")


def load_r2end_tables(path: str | os.PathLike) -> R2endTables:
  """Reads and checks an `r2end.npz` written by `save_r2end_tables`."""
  path = Path(path)
  arrays, meta = load_tables(path, ARRAYS, "R2END tables not found (build them with experiments/build_r2end.py)")
  _check(path, arrays)
  check_counts(path, meta, (("num_items", arrays["E_items"].shape[0] - 1), ("num_users", arrays["E_targets"].shape[0])))
  return R2endTables(**arrays, meta=meta)
