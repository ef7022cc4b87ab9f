"""Tokenizers for the encoders: HF `tokenizer.json` or a DeBERTa-v3 sentencepiece `spm.model`.

Batches come back as numpy arrays padded to one of a few bucket lengths (so jitted encoders
compile once per bucket, not per batch), with each token's character span in the original text:
ASER_SPEC §2 projects evidence spans onto tokens through these offsets.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import (AddedToken, Encoding, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors)

from aser_jax.models.encoders import weights

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class TokenBatch:
  """A padded batch. `offsets_BxTx2` are [start, end) character offsets into each text, as
  HF reports them ((0, 0) for [CLS], [SEP] and padding; special tokens typed in the text, such
  as an added `[DOM_beauty]`, keep their span). With metaspace tokenizers (DeBERTa)
  a word-initial piece's span includes the space before it, so project evidence spans onto
  tokens by overlap of non-space characters. `special_BxT` marks special and padding tokens."""

  input_ids_BxT: np.ndarray
  attention_mask_BxT: np.ndarray
  offsets_BxTx2: np.ndarray
  special_BxT: np.ndarray

  @property
  def lengths_B(self) -> np.ndarray:
    return self.attention_mask_BxT.sum(axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class TextTokenizer:
  """A `tokenizers.Tokenizer` with truncation to `max_len` and bucketed numpy padding."""

  tokenizer: Tokenizer
  max_len: int
  pad_id: int
  buckets: tuple[int, ...] = DEFAULT_BUCKETS

  def __post_init__(self):
    tok = Tokenizer.from_str(self.tokenizer.to_str())  # private copy: settings below stay local
    tok.no_padding()
    tok.enable_truncation(max_length=self.max_len)
    object.__setattr__(self, "tokenizer", tok)
    lengths = sorted({b for b in self.buckets if b < self.max_len} | {self.max_len})
    object.__setattr__(self, "buckets", tuple(lengths))

  @property
  def vocab_size(self) -> int:
    """Number of ids, added tokens included (the embedding needs at least this many rows)."""
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  def token_to_id(self, token: str) -> int | None:
    return self.tokenizer.token_to_id(token)

  @functools.cached_property
  def special_ids(self) -> np.ndarray:
    """Ids of special tokens ([CLS], [SEP], added [DOM_*]...), the unknown token excepted: an
    unknown piece still stands for characters of the text."""
    unk = {self.tokenizer.token_to_id(t) for t in ("[UNK]", "<unk>")}
    return np.array(sorted(i for i, t in self.tokenizer.get_added_tokens_decoder().items()
                           if t.special and i not in unk), np.int32)

  def bucket(self, length: int) -> int:
    """The smallest bucket length that holds `length` tokens."""
    return next(b for b in self.buckets if b >= length)

  def encode(self, texts: Sequence[str]) -> list[Encoding]:
    """Unpadded encodings of `texts`, truncated to `max_len`."""
    if isinstance(texts, str):
      raise TypeError("TextTokenizer expects a sequence of strings, got a single str")
    return self.tokenizer.encode_batch(list(texts))

  def pad(self, encs: Sequence[Encoding], pad_to: int | None = None) -> TokenBatch:
    """`encs` padded to `pad_to`, or to the bucket of the longest."""
    longest = max((len(e.ids) for e in encs), default=1)
    T = pad_to if pad_to is not None else self.bucket(longest)
    if longest > T:
      raise ValueError(f"pad_to={T} is shorter than the longest encoding ({longest} tokens)")
    ids = np.full((len(encs), T), self.pad_id, np.int32)
    mask = np.zeros((len(encs), T), np.int32)
    offsets = np.zeros((len(encs), T, 2), np.int32)
    for b, e in enumerate(encs):
      n = len(e.ids)
      ids[b, :n] = e.ids
      mask[b, :n] = 1
      offsets[b, :n] = np.asarray(e.offsets, np.int32).reshape(n, 2)
    return TokenBatch(ids, mask, offsets, np.isin(ids, self.special_ids) | (mask == 0))

  def __call__(self, texts: Sequence[str], pad_to: int | None = None) -> TokenBatch:
    """Tokenise `texts` (truncated to `max_len`), padded to `pad_to` or the bucket of the longest."""
    return self.pad(self.encode(texts), pad_to)

  def with_special_tokens(self, tokens: Sequence[str]) -> "TextTokenizer":
    """A copy that also knows `tokens` as unsplittable special tokens (matched before
    normalisation, so `[DOM_beauty]` survives lower-casing); new ones get the next free ids."""
    tok = Tokenizer.from_str(self.tokenizer.to_str())
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens])
    return dataclasses.replace(self, tokenizer=tok)


def deberta_v3_tokenizer(spm_path: str | Path, do_lower_case: bool = False,
                         split_by_punct: bool = False) -> Tokenizer:
  """The DeBERTa-v2/v3 tokenizer from a sentencepiece `spm.model`, rebuilt as a `tokenizers`
  Unigram pipeline (the same pipeline HF's fast DeBERTa-v2 tokenizer uses): whitespace runs and
  newlines become one space, NFC, right strip, metaspace with a leading space, `[CLS] x [SEP]`.
  Reading the `.model` file needs the `sentencepiece` package."""
  try:
    import sentencepiece as spm
  except ImportError as e:
    raise ImportError(f"{spm_path}: reading a sentencepiece model needs `pip install sentencepiece` "
                      "(or supply a tokenizer.json)") from e
  sp = spm.SentencePieceProcessor(model_file=str(spm_path))
  vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
  pieces = {p: i for i, (p, _) in enumerate(vocab)}
  unk = pieces.get("[UNK]", sp.unk_id())
  tok = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
  norm = [normalizers.Lowercase()] if do_lower_case else []
  norm += [normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "), normalizers.NFC(),
           normalizers.Strip(left=False, right=True)]
  tok.normalizer = normalizers.Sequence(norm)
  pre = [pre_tokenizers.Punctuation(behavior="isolated")] if split_by_punct else []
  pre.append(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"))
  tok.pre_tokenizer = pre_tokenizers.Sequence(pre)
  tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                          for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")])
  cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
  tok.post_processor = processors.TemplateProcessing(
      single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
      special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
  return tok


def _max_len(model_dir: Path) -> int:
  """Sequence limit: sentence-transformers' `max_seq_length`, else the tokenizer's, capped by
  the model's position table."""
  limits = []
  for name, key in (("sentence_bert_config.json", "max_seq_length"),
                    ("tokenizer_config.json", "model_max_length")):
    path = model_dir / name
    if path.is_file():
      value = weights.read_json(path).get(key)
      if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 100_000:
        limits.append(value)
        break
  cfg_path = model_dir / "config.json"
  if cfg_path.is_file():
    limits.append(weights.field(weights.read_json(cfg_path), "max_position_embeddings", int,
                                str(cfg_path), 512))
  return min(limits) if limits else 512


def load_tokenizer(model_dir: str | Path, max_len: int | None = None) -> TextTokenizer:
  """`TextTokenizer` from `tokenizer.json`, else (DeBERTa) `spm.model`, in `model_dir`."""
  model_dir = Path(model_dir)
  tok_json, spm_model = model_dir / "tokenizer.json", model_dir / "spm.model"
  if tok_json.is_file():
    try:
      tok = Tokenizer.from_file(str(tok_json))
    except Exception as e:  # tokenizers raises a bare Exception on malformed files
      raise weights.CheckpointError(f"{tok_json}: cannot load tokenizer ({e})") from e
  elif spm_model.is_file():
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = weights.read_json(cfg_path) if cfg_path.is_file() else {}
    tok = deberta_v3_tokenizer(spm_model, bool(cfg.get("do_lower_case", False)),
                               bool(cfg.get("split_by_punct", False)))
  else:
    raise weights.CheckpointError(f"{model_dir}: no tokenizer.json or spm.model")
  pad = next((tok.token_to_id(t) for t in ("[PAD]", "<pad>") if tok.token_to_id(t) is not None), 0)
  return TextTokenizer(tok, max_len or _max_len(model_dir), pad)
