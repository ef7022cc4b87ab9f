"""BERT / MiniLM: loader, tokenizer offsets, and parity with transformers and sentence-transformers."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aser_jax.models.encoders import (BertConfig, BertEncoder, CheckpointError, embed_texts,
                                      load_encoder, load_tokenizer, minilm_path)
from aser_jax.models.encoders import bert

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _minilm_dir() -> Path:
  try:
    return minilm_path()
  except FileNotFoundError as e:
    pytest.skip(str(e))


def real_sentences(n_per_file: int = 148, n_long: int = 4) -> list[str]:
  """Sentences of real reviews from two corpora, plus `n_long` whole reviews longer than the
  256-token limit (skips when ../shared/data is absent)."""
  beauty = DATA / "text" / "all_beauty_2018" / "All_Beauty_5.json.gz"
  food = DATA / "text" / "fine_food_1k" / "fine_food_reviews_1k_openai_cookbook_copy.csv.gz"
  if not (beauty.is_file() and food.is_file()):
    pytest.skip(f"real text not found under {DATA} (needs ../shared/data/text)")
  with gzip.open(beauty, "rt", encoding="utf-8") as f:
    beauty_reviews = [json.loads(line).get("reviewText", "") for line in f]
  with gzip.open(food, "rt", encoding="utf-8") as f:
    food_reviews = [r["Text"] for r in csv.DictReader(io.StringIO(f.read()))]
  texts: list[str] = []
  for reviews in (beauty_reviews, food_reviews):
    sentences = dict.fromkeys(s.strip() for r in reviews for s in re.split(r"(?<=[.!?])\s+", r)
                              if len(s.split()) >= 3)
    texts += list(sentences)[:n_per_file]
  return texts + sorted(food_reviews, key=len)[-n_long:]


def test_minilm_dir_has_the_tokenizer_beside_the_weights():
  assert (_minilm_dir() / "tokenizer.json").is_file()  # the loader itself checks config and weights


def test_tokenizer_offsets_point_at_the_words():
  tok = load_tokenizer(_minilm_dir())
  text = "Neon Blue  polish, smells nice!"
  batch = tok([text, "short"])
  assert batch.input_ids_BxT.shape == (2, 16)  # smallest bucket
  ids, offs = batch.input_ids_BxT[0], batch.offsets_BxTx2[0]
  n = int(batch.lengths_B[0])
  assert ids[0] == 101 and ids[n - 1] == 102 and (ids[n:] == 0).all()
  pieces = [text[s:e].lower() for s, e in offs[1:n - 1]]
  assert pieces == ["neon", "blue", "polish", ",", "smells", "nice", "!"]
  assert batch.special_BxT[0, 0] and batch.special_BxT[0, n - 1] and not batch.special_BxT[0, 1:n - 1].any()
  assert (offs[0] == 0).all() and (offs[n:] == 0).all()


def test_tokenizer_truncates_to_the_sentence_transformers_limit():
  tok = load_tokenizer(_minilm_dir())
  assert tok.max_len == 256  # sentence_bert_config.json, not tokenizer.json's 128
  batch = tok(["word " * 400])
  assert batch.input_ids_BxT.shape == (1, 256) and batch.attention_mask_BxT.sum() == 256
  assert batch.input_ids_BxT[0, -1] == 102


def test_config_errors_name_file_and_field(tmp_path):
  (tmp_path / "config.json").write_text('{"model_type": "bert", "vocab_size": 10,\n "hidden_size": "big"}')
  with pytest.raises(CheckpointError, match=r"config.json: field 'hidden_size' should be int"):
    BertConfig.from_hf(json.loads((tmp_path / "config.json").read_text()), str(tmp_path / "config.json"))
  (tmp_path / "config.json").write_text('{"model_type": "bert",\n "hidden_size": }')
  with pytest.raises(CheckpointError, match=r"config.json:2: invalid JSON"):
    load_encoder(tmp_path)
  (tmp_path / "config.json").write_text('{"model_type": "bert", "vocab_size": 10, "hidden_size": 8, '
                                        '"num_hidden_layers": 1, "num_attention_heads": 2, '
                                        '"intermediate_size": 16}')
  with pytest.raises(CheckpointError, match="model.safetensors"):
    load_encoder(tmp_path)


def test_random_bert_matches_transformers_with_padding():
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  hc = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=40, max_position_embeddings=24, layer_norm_eps=1e-12)
  torch.manual_seed(0)
  ref = transformers.BertModel(hc, add_pooling_layer=False).eval()
  with torch.no_grad():
    for p in ref.parameters():
      p.add_(0.05 * torch.randn_like(p))
  cfg = BertConfig.from_hf(hc.to_dict(), "test")
  params = bert.params_from_state_dict({k: v.numpy() for k, v in ref.state_dict().items()}, cfg, "test")
  rng = np.random.default_rng(0)
  ids = rng.integers(1, 60, (3, 20))
  mask = np.ones_like(ids)
  mask[1, 12:] = 0
  ids[mask == 0] = 0
  with torch.no_grad():
    want = ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
  got = np.asarray(BertEncoder(cfg).apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask)))
  valid = mask.astype(bool)
  assert np.abs(got - want)[valid].max() < 1e-5


def test_bfloat16_compute_stays_close_to_float32():
  cfg = BertConfig(vocab_size=50, hidden=32, layers=1, heads=4, intermediate=48, max_position=16)
  params = bert.init_params(BertEncoder(cfg), jax.random.key(0))
  ids = jnp.asarray(np.random.default_rng(0).integers(1, 50, (2, 16)))
  mask = jnp.ones_like(ids)
  f32 = jax.jit(BertEncoder(cfg).apply)({"params": params}, ids, mask)
  bf16 = jax.jit(BertEncoder(cfg, jnp.bfloat16).apply)({"params": params}, ids, mask)
  assert bf16.dtype == jnp.bfloat16
  err = np.abs(np.asarray(bf16, np.float32) - np.asarray(f32))
  assert 0 < err.max() < 0.1  # LayerNormed outputs are O(1); bf16 has ~3 significant digits


def test_minilm_embeddings_match_sentence_transformers():
  torch = pytest.importorskip("torch")
  st = pytest.importorskip("sentence_transformers")
  _minilm_dir()
  texts = real_sentences()
  assert len(texts) == 300
  ours = embed_texts(texts, batch_size=32)
  torch.set_num_threads(2)
  ref_model = st.SentenceTransformer(str(_minilm_dir()), device="cpu")
  ref = ref_model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
  assert ours.shape == ref.shape == (300, 384)
  np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
  cos = (ours * ref).sum(1) / np.linalg.norm(ref, axis=1)
  assert cos.min() >= 0.99999, f"worst cosine {cos.min()}"
  # The long reviews exceed 256 tokens, so truncation was exercised too.
  assert max(len(e.ids) for e in load_tokenizer(_minilm_dir()).encode(texts)) == 256


def test_embedding_is_batch_and_order_invariant():
  _minilm_dir()
  texts = ["the lotion smells like fresh lemons", "a loud, rattling fan", "soft velvety texture",
           "tastes bitter and burnt", "bright neon pink colour"]
  full = embed_texts(texts, batch_size=8)
  small = embed_texts(texts[::-1], batch_size=2)[::-1]
  np.testing.assert_allclose(full, small, atol=1e-5)
  sims = full @ full.T
  assert np.allclose(np.diag(sims), 1.0, atol=1e-5) and (sims[~np.eye(5, dtype=bool)] < 0.9).all()


def test_load_encoder_by_name_and_jit_apply():
  _minilm_dir()
  enc = load_encoder("all-minilm-l6-v2")
  assert enc.hidden == 384
  batch = enc.tokenizer(["hello world"])
  h = jax.jit(enc.apply)(enc.params, batch.input_ids_BxT, batch.attention_mask_BxT)
  assert h.shape == (1, 16, 384) and bool(jnp.isfinite(h).all())
  with pytest.raises(FileNotFoundError, match="--encoder_path"):
    load_encoder("deberta-v3-small")
  with pytest.raises(CheckpointError, match="'model_type'='bert', but encoder 'deberta-v3-small'"):
    load_encoder("deberta-v3-small", path=minilm_path())
