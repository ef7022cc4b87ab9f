"""Pooling, added special tokens, and the DeBERTa sentencepiece tokenizer."""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aser_jax.models.encoders import (DebertaV2Config, DebertaV2Encoder, add_special_tokens,
                                      l2_normalize, load_encoder, load_tokenizer, mean_pool, minilm_path,
                                      sentence_embedding)
from aser_jax.models.encoders import deberta_v2
from aser_jax.models.encoders.tokenization import TextTokenizer, deberta_v3_tokenizer

NEW = ["[DOM_beauty]", "[DOM_unk]", "[SRC_review]"]


def test_mean_pool_ignores_padding():
  h = jnp.array([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]],
                 [[4.0, 0.0], [9.0, 9.0], [9.0, 9.0]]])
  mask = jnp.array([[1, 1, 0], [1, 0, 0]])
  np.testing.assert_allclose(mean_pool(h, mask), [[2.0, 4.0], [4.0, 0.0]])
  np.testing.assert_allclose(mean_pool(h, jnp.zeros_like(mask)), np.zeros((2, 2)))


def test_l2_normalize_and_zero_vectors():
  np.testing.assert_allclose(l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])
  e = sentence_embedding(jnp.array([[[3.0, 0.0], [0.0, 4.0]]]), jnp.array([[1, 1]]))
  np.testing.assert_allclose(e, [[0.6, 0.8]], rtol=1e-6)


def _minilm():
  try:
    minilm_path()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  return load_encoder("all-minilm-l6-v2")


def test_add_special_tokens_grows_the_table_with_mean_rows():
  enc = _minilm()
  table = enc.params["embeddings"]["word_embeddings"]["embedding"]
  params, tok = add_special_tokens(enc.params, enc.tokenizer, NEW + ["[CLS]"])  # [CLS] exists: kept
  grown = params["embeddings"]["word_embeddings"]["embedding"]
  assert grown.shape == (30525, 384) and table.shape == (30522, 384)  # input untouched
  np.testing.assert_array_equal(grown[:30522], table)
  mean_row = np.asarray(table).mean(0, keepdims=True)
  np.testing.assert_allclose(grown[30522:], np.repeat(mean_row, 3, 0), atol=1e-6)
  assert [tok.token_to_id(t) for t in NEW] == [30522, 30523, 30524] and tok.token_to_id("[CLS]") == 101
  assert enc.tokenizer.token_to_id("[DOM_beauty]") is None

  text = "[DOM_beauty] [SRC_review] Neon blue"
  batch = tok([text])
  assert batch.input_ids_BxT[0, :6].tolist() == [101, 30522, 30524, 16231, 2630, 102]
  assert batch.special_BxT[0, :6].tolist() == [True, True, True, False, False, True]
  s, e = batch.offsets_BxTx2[0, 3]
  assert text[s:e] == "Neon"
  h = jax.jit(enc.apply)(params, batch.input_ids_BxT, batch.attention_mask_BxT)  # reads 30525 rows
  assert h.shape == (1, 16, 384) and bool(jnp.isfinite(h).all())
  again, tok2 = add_special_tokens(params, tok, NEW)
  assert again is params and tok2 is tok


def _train_spm(path):
  spm = pytest.importorskip("sentencepiece")
  texts = [f"The {c} lotion smells like {f} and feels {t}." for c in ("blue", "red", "neon pink", "soft")
           for f in ("lemons", "roses", "vanilla") for t in ("silky", "greasy", "cool")]
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(  # DeBERTa-v3's layout: [PAD] [CLS] [SEP] [UNK] first
      sentence_iterator=iter(texts * 5), model_writer=model, vocab_size=34, model_type="unigram",
      pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]",
      unk_id=3, unk_piece="[UNK]", minloglevel=2)
  path.write_bytes(model.getvalue())


def test_spm_tokenizer_matches_transformers(tmp_path):
  _train_spm(tmp_path / "spm.model")
  transformers = pytest.importorskip("transformers")
  ref = transformers.DebertaV2Tokenizer.from_pretrained(str(tmp_path))
  ours = load_tokenizer(tmp_path, max_len=64)
  texts = ["The neon blue lotion  smells\nlike lemons!", "zebra QUIZ [MASK] feels silky.", "  soft roses "]
  batch = ours(texts)
  for b, t in enumerate(texts):
    want = ref(t, return_offsets_mapping=True)
    n = len(want["input_ids"])
    assert batch.input_ids_BxT[b, :n].tolist() == want["input_ids"]
    assert batch.attention_mask_BxT[b].sum() == n
    got_offsets = [tuple(o) for o in batch.offsets_BxTx2[b, :n].tolist()]
    assert got_offsets == [tuple(o) for o in want["offset_mapping"]]
  assert ours.token_to_id("[MASK]") == ref.mask_token_id == 34 and ours.pad_id == 0


def test_special_tokens_reuse_spare_deberta_rows(tmp_path):
  _train_spm(tmp_path / "spm.model")
  tok = TextTokenizer(deberta_v3_tokenizer(tmp_path / "spm.model"), max_len=32, pad_id=0)
  assert tok.vocab_size == 35  # 34 pieces + [MASK], like v3's 128000 + 1 against 128100 rows
  cfg = DebertaV2Config(vocab_size=40, hidden=16, layers=1, heads=2, intermediate=24, max_position=32,
                        position_buckets=4)
  module = DebertaV2Encoder(cfg)
  params = deberta_v2.init_params(module, jax.random.key(0))
  new_params, new_tok = add_special_tokens(params, tok, NEW)
  table = params["embeddings"]["word_embeddings"]["embedding"]
  grown = new_params["embeddings"]["word_embeddings"]["embedding"]
  ids = [new_tok.token_to_id(t) for t in NEW]
  assert ids == [35, 36, 37] and grown.shape == table.shape  # spare rows reused, none appended
  np.testing.assert_allclose(grown[35:38], np.repeat(np.asarray(table[:35]).mean(0, keepdims=True), 3, 0),
                             atol=1e-6)
  np.testing.assert_array_equal(grown[38:], table[38:])
  batch = new_tok(["[DOM_beauty] [SRC_review] soft roses"])
  assert batch.input_ids_BxT[0, :3].tolist() == [1, 35, 37]
  h = jax.jit(module.apply)({"params": new_params}, batch.input_ids_BxT, batch.attention_mask_BxT)
  assert h.shape == (1, 16, 16)


def test_bench_reads_txt_jsonl_and_csv(tmp_path):
  import gzip

  from aser_jax.models.encoders.bench import read_texts
  (tmp_path / "a.txt").write_text("first line\n\n  second line \nthird\n")
  with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
    f.write('{"reviewText": "smells of roses"}\n{"summary": "no text"}\n{"text": "loud fan"}\n')
  (tmp_path / "c.csv").write_text('Id,Text\n1,"soft, velvety"\n2,bitter\n')
  assert read_texts(tmp_path / "a.txt", 2) == ["first line", "second line"]
  assert read_texts(tmp_path / "b.jsonl.gz", 10) == ["smells of roses", "loud fan"]
  assert read_texts(tmp_path / "c.csv", 10) == ["soft, velvety", "bitter"]
  (tmp_path / "d.jsonl").write_text('{"text": "ok"}\n{"text": \n')
  with pytest.raises(ValueError, match=r"d.jsonl:2: invalid JSON"):
    read_texts(tmp_path / "d.jsonl", 10)
