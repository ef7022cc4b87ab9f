"""The R2END channel: texts and leakage, tables, the objectives against NumPy, distillation that
resumes after a kill, the projection stage's resume and fingerprint, ranking against NumPy, and
the two binaries chained on the synthetic catalogue (1 vs 4 devices)."""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from conftest import REPO
from aser_jax.bank import r2end as T
from aser_jax.data.errors import DataError
from aser_jax.data.sequences import SequenceData
from aser_jax.models import r2end as M
from aser_jax.models.encoders import BertConfig, BertEncoder, Encoder, TextTokenizer
from aser_jax.models.encoders.bert import init_params
from aser_jax.teacher.text import TextExample
from aser_jax.train import r2end as R
from aser_jax.train import r2end_distill as D

ITEMS = {1: "red lipstick\nBeauty > Lips", 2: "blue mascara\nBeauty > Eyes", 3: "green soap\nBath",
         4: "pink blush\nBeauty > Face", 5: "white cream\nSkin", 6: "black liner\nBeauty > Eyes"}


def _texts(untitled=()):
  out = [TextExample(str(i), "title", t) for i, t in ITEMS.items() if i not in untitled]
  out.append(TextExample("3", "description", "gentle bar for daily washing"))
  out.append(TextExample("99", "title", "outside the catalogue"))
  return out


def _data():
  seqs = (np.array([1, 2, 3, 4, 5], np.int32), np.array([6, 5, 4], np.int32), np.array([2, 4, 6, 1], np.int32))
  return SequenceData(np.array([10, 11, 12]), seqs, num_items=6, name="toy")


def _meta(i):
  return " | ".join(ITEMS[i].splitlines())


def test_cases_history_texts_and_metadata():
  data = _data()
  meta = T.item_metadata(_texts(), 6)
  assert meta[1] == "red lipstick | Beauty > Lips" and 99 not in meta
  seq = data.sequences[0]
  assert [(list(h), t) for h, t in (T.case(seq, w) for w in ("train", "valid", "test"))] == \
      [([1, 2], 3), ([1, 2, 3], 4), ([1, 2, 3, 4], 5)]
  assert list(T.case(data.sequences[1], "train")[0]) == []  # three items: no train history
  assert T.history_text([1, 2, 3, 4], meta, n_recent=2) == f"{_meta(4)}\n{_meta(3)}"  # latest two, newest first
  meta_no2 = T.item_metadata(_texts(untitled=(2,)), 6)
  assert T.history_text([1, 2, 3], meta_no2, n_recent=2) == f"{_meta(3)}\n{_meta(1)}"  # untitled skipped
  assert T.history_text([2], meta_no2) == ""
  assert T.history_texts(data, "test", meta, 8)[2] == "\n".join(_meta(i) for i in (6, 4, 2))


def test_targets_use_train_cases_only_and_prompts_never_show_valid_or_test_items(tmp_path):
  data = _data()
  items, targets = T.table_texts(data, _texts())
  assert items[2] == "green soap\nBath\ngentle bar for daily washing" and items[0] == "red lipstick\nBeauty > Lips"
  assert targets == [_meta(3), "", _meta(4)]  # the train target seq[-3]; none without a train history
  items2, targets2 = T.table_texts(data, _texts(), reasoning={"12": "likes colour"}, descriptions={"1": "for lips"})
  assert targets2 == [_meta(3), "", "likes colour\n" + _meta(4)] and items2[0] == "for lips\n" + _meta(1)
  reasoning, item_prompts = T.write_prompts(tmp_path, data, _texts())
  rows = [json.loads(line) for line in reasoning.read_text().splitlines()]
  assert [r["id"] for r in rows] == ["10", "12"]
  for r, row in zip((0, 2), rows):
    seq = data.sequences[r]
    assert _meta(int(seq[-3])) in row["prompt"]
    for held_out in seq[-2:]:
      if held_out not in seq[:-2]:
        assert ITEMS[int(held_out)].splitlines()[0] not in row["prompt"], (r, held_out)
  unguided, _ = T.write_prompts(tmp_path / "unguided", data, _texts(), oracle=False)
  rows_u = [json.loads(line) for line in unguided.read_text().splitlines()]
  assert [r["id"] for r in rows_u] == ["10", "12"] and _meta(3) not in rows_u[0]["prompt"]
  assert _meta(2) in rows_u[0]["prompt"]  # the history is still shown
  ip = {json.loads(line)["id"]: json.loads(line)["prompt"] for line in item_prompts.read_text().splitlines()}
  assert sorted(ip) == [str(i) for i in range(1, 7)] and "gentle bar" in ip["3"]


def _fake_embed(calls):
  def embed(texts):
    calls.append(len(texts))
    return np.stack([[len(t), t.count("e"), t.count("|") + 1.0] for t in texts]).astype(np.float32)
  return embed


def test_tables_are_built_once_resume_from_shards_and_refuse_bad_files(tmp_path):
  data, calls = _data(), []
  path = T.build_r2end_tables(data, _texts(), tmp_path, _fake_embed(calls), shard_size=2, progress=False)
  tab = T.load_r2end_tables(path)
  items, targets = T.table_texts(data, _texts())
  assert tab.E_items.shape == (7, 3) and not tab.E_items[0].any() and tab.E_items[3, 0] == len(items[2])
  assert not tab.E_targets[1].any() and tab.E_targets[2, 0] == len(targets[2])
  assert tab.meta["reasoning_source"] == "none" and tab.meta["targets"] == 2
  assert T.build_r2end_tables(data, _texts(), tmp_path, _fake_embed(calls), shard_size=2, progress=False) == path
  n = sum(calls)
  os.remove(path)
  os.remove(tmp_path / "shards" / "items_00001.npy")
  T.build_r2end_tables(data, _texts(), tmp_path, _fake_embed(calls), shard_size=2, progress=False)
  assert sum(calls) - n == 2  # only the missing shard is embedded again
  with pytest.raises(ValueError, match="other texts"):
    T.build_r2end_tables(data, _texts(), tmp_path, _fake_embed(calls), reasoning={"10": "x"}, shard_size=2,
                         progress=False)
  bad = dataclasses.replace(tab, E_items=tab.E_items + 1.0)
  with pytest.raises(DataError, match="row 0"):
    T.save_r2end_tables(tmp_path / "bad.npz", bad)
  np.savez(tmp_path / "missing.npz", E_items=tab.E_items)
  with pytest.raises(DataError, match="E_targets"):
    T.load_r2end_tables(tmp_path / "missing.npz")


def test_contrastive_loss_matches_numpy_and_negatives_avoid_the_positive():
  rng = np.random.default_rng(0)
  zu, zp, zn = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), rng.normal(size=(4, 3, 5))
  tau, lam = 0.07, 0.5
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  logits = np.concatenate([np.sum(unit(zu) * unit(zp), -1)[:, None],
                           np.einsum("bp,bkp->bk", unit(zu), unit(zn))], 1) / tau
  nce = np.log(np.exp(logits).sum(1)) - logits[:, 0]
  reg = lam * (np.linalg.norm(zu, axis=-1) + np.linalg.norm(zp, axis=-1) + np.linalg.norm(zn, axis=-1).mean(1))
  total, got_nce, got_reg = M.contrastive_loss(jnp.asarray(zu), jnp.asarray(zp), jnp.asarray(zn), tau, lam)
  np.testing.assert_allclose(got_nce, nce, rtol=1e-5, atol=1e-5)  # float32 logsumexp of near-0 losses
  np.testing.assert_allclose(got_reg, reg, rtol=1e-5)
  np.testing.assert_allclose(total, nce + reg, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(M.distill_loss(jnp.asarray(zu), jnp.asarray(zp)), ((zu - zp) ** 2).sum(1), rtol=1e-5)
  pos = jnp.array([1, 3, 5, 5] * 250)
  neg = np.asarray(M.sample_negatives(jax.random.key(0), pos, 5, 40))
  assert neg.min() >= 1 and neg.max() <= 5 and not (neg == np.asarray(pos)[:, None]).any()
  counts = np.bincount(neg[np.asarray(pos) == 5].ravel(), minlength=6)[1:5]
  assert counts.min() > 0.2 * counts.sum()  # each of the other four items near its share of 0.25


def _tiny_encoder(texts, hidden=3):
  words = sorted({w for t in texts for w in t.lower().replace("|", " ").replace(">", " ").split()})
  vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
  tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
  module = BertEncoder(BertConfig(vocab_size=len(vocab), hidden=hidden, layers=1, heads=1, intermediate=8,
                                  max_position=64))
  return Encoder("tiny", module, init_params(module, jax.random.key(0)), TextTokenizer(tok, 60, 0))


class _Killed(RuntimeError):
  pass


@dataclasses.dataclass(frozen=True)
class _DyingTokenizer:
  """Delegates to a tokenizer and raises on its `die_at`-th batch: a kill in mid-distillation."""

  inner: TextTokenizer
  die_at: int
  calls: list = dataclasses.field(default_factory=list)

  def encode(self, texts):
    return self.inner.encode(texts)

  def pad(self, encs, pad_to=None):
    self.calls.append(1)
    if len(self.calls) == self.die_at:
      raise _Killed()
    return self.inner.pad(encs, pad_to)


def _synthetic():
  from aser_jax.data.synthetic import synthetic_dataset
  from aser_jax.pipeline import item_texts

  return synthetic_dataset()[0], item_texts("synthetic", None)


def test_distillation_lowers_its_loss_and_resumes_after_a_kill_to_the_same_params(tmp_path):
  from aser_jax.train.sharding import data_mesh

  data, texts = _synthetic()
  meta = T.item_metadata(texts, data.num_items)
  hist = [t for t in T.history_texts(data, "train", meta, 8) if t][:96]
  enc = _tiny_encoder([*meta.values()], hidden=8)
  targets = np.asarray(M.unit(jnp.asarray(np.random.default_rng(1).normal(size=(len(hist), 8)))), np.float32)
  cfg = R.R2endConfig(distill_batch=8, distill_lr=3e-3, distill_epochs=2, checkpoint_every=5)
  mesh = data_mesh()
  params_a, summary = D.distill(tmp_path / "a", enc, hist, targets, cfg, mesh, progress=False)
  assert summary["steps"] == 24 and len(summary["losses"]) == 5
  assert summary["losses"][-1]["loss"] < summary["losses"][0]["loss"]
  dying = dataclasses.replace(enc, tokenizer=_DyingTokenizer(enc.tokenizer, die_at=13))
  with pytest.raises(_Killed):
    D.distill(tmp_path / "b", dying, hist, targets, cfg, mesh, progress=False)
  assert not (tmp_path / "b" / "distill.json").exists()
  params_b, summary_b = D.distill(tmp_path / "b", enc, hist, targets, cfg, mesh, progress=False)
  assert summary_b["steps_this_invocation"] == 14  # resumed from the checkpoint at step 10
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  again, _ = D.distill(tmp_path / "b", enc, hist, targets, cfg, mesh, progress=False)  # finished: read back
  for a, b in zip(jax.tree.leaves(params_b), jax.tree.leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _numpy_ranks(scores, data, which):
  cut = 1 if which == "test" else 2
  out = []
  for r, seq in enumerate(data.sequences):
    s = scores[r].copy()
    s[0] = -np.inf
    t = int(seq[-cut])
    s[[int(i) for i in seq[:-cut] if int(i) != t]] = -np.inf
    out.append(1 + int((s > s[t]).sum()) + int((s == s[t]).sum()) - 1)
  return np.array(out)


def _hash_embed(texts):
  """A continuous, text-determined vector per text: no two items tie in cosine."""
  seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
  return np.stack([np.random.default_rng(s).normal(size=8) for s in seeds]).astype(np.float32)


def test_mean_pool_without_projection_ranks_by_cosine_exactly_as_numpy(tmp_path):
  data, texts = _synthetic()
  path = T.build_r2end_tables(data, texts, tmp_path / "t", _hash_embed, progress=False)
  tab = T.load_r2end_tables(path)
  res = R.train_r2end(data, texts, path, tmp_path / "w", R.R2endConfig(user_encoder="mean_pool", proj_dim=0),
                      progress=False)
  E = tab.E_items
  Eu = np.zeros((data.num_users, E.shape[1]))
  for r, seq in enumerate(data.sequences):
    v = E[[int(i) for i in seq[:-1]][-8:]].mean(0)
    Eu[r] = v / np.linalg.norm(v)
  En = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
  scores = (Eu / np.maximum(np.linalg.norm(Eu, axis=1, keepdims=True), 1e-12)) @ En.T
  expected = _numpy_ranks(scores.astype(np.float32), data, "test")
  got = np.load(tmp_path / "w" / "test_ranks.npy")
  np.testing.assert_array_equal(got, expected)
  assert (res["epochs"], res["best_epoch"], res["num_params"]) == (0, 0, 0)


def test_projection_resumes_to_the_same_result_and_refuses_other_settings(tmp_path):
  data, texts = _synthetic()
  path = T.build_r2end_tables(data, texts, tmp_path / "t", _fake_embed([]), progress=False)
  cfg = R.R2endConfig(user_encoder="mean_pool", proj_dim=8, negatives=7, batch_size=64, epochs=3, lr=1e-2)
  whole = R.train_r2end(data, texts, path, tmp_path / "whole", cfg, progress=False)
  R.train_r2end(data, texts, path, tmp_path / "parts", dataclasses.replace(cfg, epochs=1), progress=False)
  parts = R.train_r2end(data, texts, path, tmp_path / "parts", cfg, progress=False)
  assert whole["test"] == parts["test"] and whole["history"] == [
      {**h, "seconds": w["seconds"]} for h, w in zip(parts["history"], whole["history"])]
  assert len(whole["history"]) == 3 and whole["history"][-1]["loss"] < whole["history"][0]["loss"]
  lines = (tmp_path / "whole" / "log.csv").read_text().splitlines()
  assert lines[0].startswith("epoch,loss,nce,reg") and len(lines) == 4
  with pytest.raises(ValueError, match="config.tau"):
    R.train_r2end(data, texts, path, tmp_path / "whole", dataclasses.replace(cfg, tau=0.5), progress=False)


def test_distilled_run_end_to_end_and_width_mismatch_is_refused(tmp_path):
  data, texts = _synthetic()
  meta = T.item_metadata(texts, data.num_items)
  enc = _tiny_encoder([*meta.values(), *[ex.text for ex in texts]], hidden=3)
  path = T.build_r2end_tables(data, texts, tmp_path / "t", _fake_embed([]), progress=False)
  cfg = R.R2endConfig(distill_batch=32, distill_max_steps=3, proj_dim=8, negatives=7, batch_size=128, epochs=1)
  res = R.train_r2end(data, texts, path, tmp_path / "w", cfg, encoder=enc, progress=False)
  assert res["distill"]["steps"] == 3 and (tmp_path / "w" / "encoder_params").exists()
  assert sorted(f.name for f in (tmp_path / "w" / "users").glob("*.npy")) == \
      ["test_00000.npy", "train_00000.npy", "valid_00000.npy"]
  assert 0 < res["test"]["HR@20"] <= 1 and set(res["test_head_tail"]) == {"head users", "tail users",
                                                                            "head items", "tail items"}
  wide = _tiny_encoder([*meta.values()], hidden=4)
  with pytest.raises(ValueError, match="width 3"):
    R.train_r2end(data, texts, path, tmp_path / "w2", cfg, encoder=wide, progress=False)


def test_binaries_chain_on_synthetic_and_four_devices_agree_with_one(tmp_path):
  env = dict(os.environ)
  subprocess.run([sys.executable, str(REPO / "experiments" / "build_r2end.py"), f"--out={tmp_path / 't'}",
                  "--encoder=char-ngram", "--progress=false"], check=True, capture_output=True, env=env)
  prompts = subprocess.run([sys.executable, str(REPO / "experiments" / "build_r2end.py"), f"--out={tmp_path / 't'}",
                            "--write_prompts"], check=True, capture_output=True, text=True, env=env)
  assert json.loads(prompts.stdout)["prompts"][0].endswith("reasoning.jsonl")
  res = {}
  for n in (1, 4):
    subprocess.run([sys.executable, str(REPO / "experiments" / "train_r2end.py"), f"--tables={tmp_path / 't' / 'r2end.npz'}",
                    f"--workdir={tmp_path / str(n)}", "--user_encoder=mean_pool", "--proj_dim=16", "--negatives=7",
                    "--epochs=2", "--progress=false"], check=True, capture_output=True,
                   env={**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"})
    res[n] = json.loads((tmp_path / str(n) / "metrics.json").read_text())
  assert (res[1]["devices"], res[4]["devices"]) == (1, 4)
  np.testing.assert_allclose([h["loss"] for h in res[1]["history"]], [h["loss"] for h in res[4]["history"]],
                             rtol=1e-5)
  for k, v in res[1]["test"].items():
    assert res[4]["test"][k] == pytest.approx(v, abs=1e-9), k
