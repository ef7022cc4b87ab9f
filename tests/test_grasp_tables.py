"""The GRASP channel's offline tables: neighbour means, texts without leakage, generated-text
files, and the sharded, resumable build (aser_jax/bank/grasp.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zlib

import numpy as np
import pytest

from conftest import REPO

from aser_jax.bank import grasp
from aser_jax.data.errors import DataError
from aser_jax.data.sequences import SequenceData
from aser_jax.data.synthetic import synthetic_dataset
from aser_jax.pipeline import item_texts
from aser_jax.teacher.text import TextExample


class HashedBagOfWords:
  """A deterministic stand-in encoder that counts its calls."""

  def __init__(self, dim: int = 64):
    self.dim, self.calls, self.texts = dim, 0, []

  def __call__(self, texts):
    self.calls += 1
    self.texts.extend(texts)
    out = np.zeros((len(texts), self.dim), np.float32)
    for n, t in enumerate(texts):
      for w in t.lower().split():
        out[n, zlib.crc32(w.encode()) % self.dim] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _reference_means(X, k):
  """Brute force: stable sort of the whole similarity row (lower index first among equals)."""
  X = np.asarray(X, np.float64)
  norm = np.linalg.norm(X, axis=1)
  valid = norm > 0
  Xn = np.where(valid[:, None], X / np.where(valid, norm, 1)[:, None], 0)
  out = np.zeros_like(X)
  for r in np.flatnonzero(valid):
    cand = [c for c in np.flatnonzero(valid) if c != r]
    sims = np.round(Xn[cand] @ Xn[r], 12)
    order = np.argsort(-sims, kind="stable")[:k]
    if len(order):
      out[r] = X[np.asarray(cand)[order]].mean(0)
  return out


def test_neighbour_means_hand_computed_with_zero_row_and_ties():
  X = np.array([[1, 0], [2, 0], [0, 1], [0, 0], [1, 1]], np.float32)
  # cos: r0~r1 = 1, r4 is at 0.7071 from r0, r1 and r2 (a three-way tie), r2 is at 0 from r0 and r1.
  want = np.array([
      [1.5, 0.5],  # r0: r1 (1.0), r4 (0.71)
      [1.0, 0.5],  # r1: r0 (1.0), r4 (0.71)
      [1.0, 0.5],  # r2: r4 (0.71), then r0 and r1 tie at 0 -> r0 (lower index)
      [0.0, 0.0],  # r3: a zero row gets zeros
      [1.5, 0.0],  # r4: r0, r1, r2 tie at 0.71 -> r0, r1
  ])
  np.testing.assert_allclose(grasp.neighbour_means(X, 2), want, atol=1e-6)
  # The zero row is never a neighbour: with k = 4 every real row averages the 3 other real rows.
  got = grasp.neighbour_means(X, 4)
  for r in (0, 1, 2, 4):
    others = [c for c in (0, 1, 2, 4) if c != r]
    np.testing.assert_allclose(got[r], X[others].mean(0), atol=1e-6)
  np.testing.assert_array_equal(got[3], 0)
  # ... even when every real candidate is less similar than a zero row's cosine 0 would be.
  Y = np.array([[0, 0], [1, 0], [-1, 0], [-1, -1]], np.float32)
  np.testing.assert_allclose(grasp.neighbour_means(Y, 1)[1], [-1, -1])  # cos -0.71 beats -1, never row 0
  np.testing.assert_allclose(grasp.neighbour_means(Y, 2)[1], [-1, -0.5])


def test_neighbour_means_excludes_the_row_itself():
  X = np.array([[1, 0], [3, 0], [0, 1]], np.float32)
  got = grasp.neighbour_means(X, 1)
  np.testing.assert_allclose(got, [[3, 0], [1, 0], [1, 0]])  # r1 would pick itself ([3, 0]) otherwise
  np.testing.assert_array_equal(grasp.neighbour_means(X[:1], 3), 0)  # no other row: zeros
  np.testing.assert_array_equal(grasp.neighbour_means(np.zeros((4, 3)), 2), 0)


def test_block_size_does_not_change_the_result():
  rng = np.random.default_rng(0)
  X = rng.normal(size=(57, 8)).astype(np.float32)
  X[[3, 20, 41]] = 0.0  # rows without text
  X[10] = X[30] = X[50] = X[5]  # exact duplicates: ties
  X[11] = 2.0 * X[6]  # same direction, other norm: a tie in cosine
  want = _reference_means(X, 5)
  for block in (1, 4, 7, 57, 1000):
    got = grasp.neighbour_means(X, 5, block=block)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(got, grasp.neighbour_means(X, 5))


def test_item_description_orders_title_first():
  exs = [TextExample("3", "review", "Nice."), TextExample("3", "description", "A cream."),
         TextExample("3", "title", "Cream\nBeauty > Skin"), TextExample("3", "review", "  ")]
  assert grasp.item_description(exs) == "Cream\nBeauty > Skin\nA cream.\nNice."
  assert grasp.item_description([]) == ""


def _tiny_data():
  seqs = (np.array([1, 2, 3, 4], np.int32), np.array([5, 1, 5], np.int32), np.array([2, 6, 7, 6], np.int32))
  texts = [TextExample(str(i), "title", f"Product {chr(64 + i)}\nCat") for i in range(1, 8)]
  texts.append(TextExample("99", "title", "Not in the catalogue"))
  return SequenceData(np.array([10, 20, 30], np.int64), seqs, 7, "tiny"), texts


def test_user_text_has_training_items_only():
  data, texts = _tiny_data()
  titles = grasp.item_titles(texts, data.num_items)
  assert titles[1] == "Product A" and 99 not in titles
  s0 = grasp.user_summary(data, 0, titles)
  assert "Product A" in s0 and "Product B" in s0
  assert "Product C" not in s0 and "Product D" not in s0  # validation and test targets
  assert grasp.user_summary(data, 0, titles, n_recent=1).splitlines()[1:] == ["Product B"]
  assert grasp.user_summary(data, 1, titles).splitlines()[1:] == ["Product E"]
  s2 = grasp.user_summary(data, 2, titles)
  assert "Product G" not in s2 and "Product F" in s2  # G: validation target; F: test target, also trained on
  assert grasp.user_summary(data, 1, {}) == ""  # no titled training item


def test_no_leakage_on_the_synthetic_catalogue(tmp_path):
  data, _ = synthetic_dataset()
  texts = item_texts("synthetic", None)
  titles = grasp.item_titles(texts, data.num_items)
  assert len(titles) == data.num_items
  _, users_path = grasp.write_prompts(tmp_path, data, texts)
  prompts = {json.loads(line)["id"]: json.loads(line)["prompt"] for line in users_path.read_text().splitlines()}
  assert len(prompts) == data.num_users
  for row, seq in enumerate(data.sequences):
    train = {int(i) for i in seq[:-2]}
    lines = set(grasp.user_summary(data, row, titles, n_recent=10_000).splitlines()[1:])
    assert lines == {titles[i] for i in train}
    prompt_lines = {line[2:] for line in prompts[str(int(data.user_ids[row]))].splitlines() if line.startswith("- ")}
    assert prompt_lines <= lines
    for target in (int(seq[-2]), int(seq[-1])):
      if target not in train:
        assert titles[target] not in lines and titles[target] not in prompt_lines


def test_write_prompts_files(tmp_path):
  data, texts = _tiny_data()
  items_path, users_path = grasp.write_prompts(tmp_path / "p", data, texts)
  items = [json.loads(line) for line in items_path.read_text().splitlines()]
  users = [json.loads(line) for line in users_path.read_text().splitlines()]
  assert [r["id"] for r in items] == [str(i) for i in range(1, 8)]
  assert "Product A" in items[0]["prompt"] and "attributes" in items[0]["prompt"]
  assert [r["id"] for r in users] == ["10", "20", "30"]
  assert "preference" in users[0]["prompt"] and "Product C" not in users[0]["prompt"]


@pytest.mark.parametrize("line, lineno, field", [
    ("{not json", 2, None),
    ('["a list"]', 2, None),
    ('{"id": "2"}', 2, "text"),
    ('{"text": "x"}', 2, "id"),
    ('{"id": [2], "text": "x"}', 2, "id"),
    ('{"id": true, "text": "x"}', 2, "id"),
    ('{"id": 2, "text": 5}', 2, "text"),
    ('{"id": "2", "text": "   "}', 2, "text"),
    ('{"id": "77", "text": "x"}', 2, "id"),
    ('{"id": 1, "text": "again"}', 2, "id"),
])
def test_read_generated_rejects_malformed_lines(tmp_path, line, lineno, field):
  path = tmp_path / "gen.jsonl"
  path.write_text('{"id": "1", "text": "first"}\n' + line + "\n")
  with pytest.raises(DataError) as err:
    grasp.read_generated(path, range(1, 5))
  where = f"{path}:{lineno}" + (f" [{field}]" if field else "")
  assert str(err.value).startswith(where + ": ")


def test_read_generated_accepts_int_and_string_ids(tmp_path):
  path = tmp_path / "gen.jsonl"
  path.write_text('{"id": 1, "text": " one "}\n\n{"id": "3", "text": "three"}\n')
  assert grasp.read_generated(path, [1, 2, 3]) == {"1": "one", "3": "three"}


def _arrays(path):
  t = grasp.load_grasp_tables(path)
  return t, {name: getattr(t, name) for name in grasp.ARRAYS}


def test_build_resumes_after_a_kill(tmp_path):
  data, _ = synthetic_dataset(num_users=200, num_items=90, seed=2)
  texts = item_texts("synthetic", None)  # 300 items: those past 90 are outside this catalogue
  enc = HashedBagOfWords()
  path = grasp.build_grasp_tables(data, texts, tmp_path, enc, k=3, shard_size=32, progress=False)
  n_shards = 3 + 7  # ceil(90 / 32) item shards, ceil(200 / 32) user shards
  assert enc.calls == n_shards
  t, first = _arrays(path)
  assert (t.num_users, t.num_items, t.dim) == (200, 90, 64)
  assert t.meta["k"] == 3 and t.meta["E"] == 64 and t.meta["items_with_text"] == 90
  assert t.meta["item_text_source"] == t.meta["user_text_source"] == "template"
  assert t.meta["item_texts_outside_catalogue"] == 2 * (300 - 90)
  np.testing.assert_array_equal(t.I[0], 0)
  np.testing.assert_array_equal(t.I_bar, grasp.neighbour_means(t.I, 3))
  np.testing.assert_array_equal(t.U_bar, grasp.neighbour_means(t.U, 3))
  assert grasp.build_grasp_tables(data, texts, tmp_path, enc, k=3, shard_size=32, progress=False) == path
  assert enc.calls == n_shards  # finished: nothing recomputed
  path.unlink()  # a kill after the users' shard 3 was lost
  (tmp_path / "shards" / "users_00003.npy").unlink()
  (tmp_path / "shards" / "users_00003.npy.tmp").write_bytes(b"half a shard")
  grasp.build_grasp_tables(data, texts, tmp_path, enc, k=3, shard_size=32, progress=False)
  assert enc.calls == n_shards + 1
  _, again = _arrays(path)
  for name in grasp.ARRAYS:
    np.testing.assert_array_equal(again[name], first[name])
  grasp.build_grasp_tables(data, texts, tmp_path, enc, k=5, shard_size=32, progress=False)  # other k
  t5 = grasp.load_grasp_tables(path)
  assert enc.calls == n_shards + 1 and t5.meta["k"] == 5
  np.testing.assert_array_equal(t5.U, first["U"])
  with pytest.raises(ValueError, match="manifest.json"):  # other texts never reuse these shards
    grasp.build_grasp_tables(data, texts[:50], tmp_path, enc, k=5, shard_size=32, progress=False)


def test_build_with_generated_texts_and_missing_ones(tmp_path):
  data, texts = _tiny_data()
  texts = [t for t in texts if t.item_id != "5"]  # item 5 has no text: a zero row
  enc = HashedBagOfWords()
  gen_users = {"20": "Likes product alpha a lot."}
  path = grasp.build_grasp_tables(data, texts, tmp_path, enc, k=2, item_texts_override={"2": "Generated words."},
                                  user_texts_override=gen_users, progress=False)
  t = grasp.load_grasp_tables(path)
  assert "Generated words." in enc.texts and "Likes product alpha a lot." in enc.texts
  assert not any(s.startswith("Product B") for s in enc.texts)  # item 2's template was replaced
  np.testing.assert_array_equal(t.I[5], 0)
  np.testing.assert_array_equal(t.I_bar[5], 0)
  assert t.meta["items_with_text"] == 6 and t.meta["items_generated"] == 1 and t.meta["users_generated"] == 1
  assert t.meta["item_text_source"] == "generated" and t.meta["user_text_source"] == "generated"
  assert len(t.meta["text_sha256"]) == 64


def test_save_load_round_trip_and_errors(tmp_path):
  rng = np.random.default_rng(1)
  I = rng.normal(size=(6, 4)).astype(np.float32)
  I[0] = 0
  U = rng.normal(size=(3, 4)).astype(np.float32)
  tables = grasp.GraspTables(U, grasp.neighbour_means(U, 2), I, grasp.neighbour_means(I, 2), {"k": 2, "note": "x"})
  path = tmp_path / "g.npz"
  grasp.save_grasp_tables(path, tables)
  back = grasp.load_grasp_tables(path)
  for name in grasp.ARRAYS:
    np.testing.assert_array_equal(getattr(back, name), getattr(tables, name))
  assert back.meta == {"k": 2, "note": "x"} and (back.num_users, back.num_items, back.dim) == (3, 5, 4)
  arrays = tables.arrays()
  np.savez(tmp_path / "missing.npz", meta="{}", **{k: v for k, v in arrays.items() if k != "I_bar"})
  with pytest.raises(DataError, match=r"missing\.npz.*\[I_bar\]"):
    grasp.load_grasp_tables(tmp_path / "missing.npz")
  np.savez(tmp_path / "shape.npz", meta="{}", **{**arrays, "U_bar": arrays["U_bar"][:2]})
  with pytest.raises(DataError, match=r"shape\.npz.*\[U_bar\]"):
    grasp.load_grasp_tables(tmp_path / "shape.npz")
  np.savez(tmp_path / "meta.npz", meta=json.dumps({"num_items": 9}), **arrays)
  with pytest.raises(DataError, match=r"meta\.npz.*\[num_items\]"):
    grasp.load_grasp_tables(tmp_path / "meta.npz")
  with pytest.raises(DataError, match=r"\[I\]"):
    grasp.save_grasp_tables(tmp_path / "bad.npz", dataclasses.replace(tables, I=I + 1))


def test_binaries_build_tables_then_train_with_them(tmp_path):
  """build_grasp.py (prompts, then tables) and train_recommender.py --grasp_tables fit together on
  the embedded synthetic catalogue; the fast hashed encoder stands in for MiniLM."""
  run = lambda *args: subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=True)
  out = tmp_path / "grasp"
  run("experiments/build_grasp.py", f"--out={out}", "--write_prompts")
  first = json.loads((out / "prompts" / "users.jsonl").read_text().splitlines()[0])
  assert set(first) == {"id", "prompt"} and not (out / "grasp.npz").exists()
  meta = json.loads(run("experiments/build_grasp.py", f"--out={out}", "--encoder=char-ngram", "--progress=false").stdout)
  assert (meta["E"], meta["item_text_source"], meta["num_items"]) == (256, "template", 300)
  run("experiments/train_recommender.py", "--backbone=gru4rec", f"--workdir={tmp_path / 'run'}", "--epochs=1",
      "--hidden=16", "--progress=false", f"--grasp_tables={out / 'grasp.npz'}")
  m = json.loads((tmp_path / "run" / "metrics.json").read_text())
  assert m["model_config"]["grasp_dim"] == 256 and m["grasp"] is not None
