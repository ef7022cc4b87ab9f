"""BERT encoder (MiniLM and friends) in Flax, loadable from HF `config.json` + weights.

Post-LayerNorm Transformer with absolute position and token-type embeddings; attention masks
only padded keys. The frozen target encoder `E_T` of ASER_SPEC §2 is all-MiniLM-L6-v2, a BERT.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aser_jax.models.encoders import weights
from aser_jax.models.encoders.blocks import (Intermediate, ResidualOutput, WordEmbed, dense,
                                             layer_norm, masked_softmax)
from aser_jax.models.layers import Dropout


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Architecture of a BERT encoder; field names follow ours, `from_hf` reads HF's."""

  vocab_size: int = 30522
  hidden: int = 384
  layers: int = 6
  heads: int = 12
  intermediate: int = 1536
  max_position: int = 512
  type_vocab_size: int = 2
  ln_eps: float = 1e-12
  dropout: float = 0.1
  attn_dropout: float = 0.1
  hidden_act: str = "gelu"
  init_std: float = 0.02
  pad_token_id: int = 0

  def __post_init__(self):
    if self.hidden % self.heads:
      raise ValueError(f"BertConfig: hidden={self.hidden} is not a multiple of heads={self.heads}")

  @classmethod
  def from_hf(cls, cfg: dict[str, Any], source: str) -> "BertConfig":
    """From a HF `BertConfig` dict (`config.json`); `source` names the file in errors."""
    model_type = cfg.get("model_type", "bert")
    if model_type != "bert":
      raise weights.CheckpointError(f"{source}: field 'model_type' is '{model_type}', expected 'bert'")
    pos = weights.field(cfg, "position_embedding_type", str, source, "absolute")
    if pos != "absolute":
      raise weights.CheckpointError(f"{source}: field 'position_embedding_type'='{pos}' is not supported")
    f = lambda name, kind, *d: weights.field(cfg, name, kind, source, *d)  # noqa: E731
    return cls(vocab_size=f("vocab_size", int), hidden=f("hidden_size", int),
               layers=f("num_hidden_layers", int), heads=f("num_attention_heads", int),
               intermediate=f("intermediate_size", int),
               max_position=f("max_position_embeddings", int, 512),
               type_vocab_size=f("type_vocab_size", int, 2), ln_eps=f("layer_norm_eps", float, 1e-12),
               dropout=f("hidden_dropout_prob", float, 0.1),
               attn_dropout=f("attention_probs_dropout_prob", float, 0.1),
               hidden_act=f("hidden_act", str, "gelu"), init_std=f("initializer_range", float, 0.02),
               pad_token_id=f("pad_token_id", int, 0))


class _Embeddings(nn.Module):
  cfg: BertConfig
  dtype: Any

  @nn.compact
  def __call__(self, ids_BxT, type_ids_BxT, train):
    cfg = self.cfg
    T = ids_BxT.shape[1]
    if T > cfg.max_position:
      raise ValueError(f"sequence length {T} exceeds max_position={cfg.max_position}")
    init = nn.initializers.normal(cfg.init_std)
    h = WordEmbed(cfg.vocab_size, cfg.hidden, cfg.init_std, self.dtype, name="word_embeddings")(ids_BxT)
    pos = nn.Embed(cfg.max_position, cfg.hidden, embedding_init=init, name="position_embeddings")
    h = h + pos(jnp.arange(T))[None].astype(self.dtype)
    typ = nn.Embed(cfg.type_vocab_size, cfg.hidden, embedding_init=init, name="token_type_embeddings")
    h = h + typ(type_ids_BxT).astype(self.dtype)
    h = layer_norm(cfg.ln_eps, self.dtype)(h)
    return Dropout(cfg.dropout)(h, deterministic=not train)


class _SelfAttention(nn.Module):
  cfg: BertConfig
  dtype: Any

  @nn.compact
  def __call__(self, x_BxTxH, keep_Bx1x1xT, train):
    cfg = self.cfg
    B, T, _ = x_BxTxH.shape
    N, d = cfg.heads, cfg.hidden // cfg.heads
    q, k, v = (dense(cfg.hidden, cfg.init_std, self.dtype, name)(x_BxTxH).reshape(B, T, N, d)
               for name in ("query", "key", "value"))
    scores_BxNxTxT = jnp.einsum("bqnd,bknd->bnqk", q, k) / float(np.sqrt(d))
    probs = masked_softmax(scores_BxNxTxT, keep_Bx1x1xT).astype(self.dtype)
    probs = Dropout(cfg.attn_dropout)(probs, deterministic=not train)
    return jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(B, T, N * d)


class _Attention(nn.Module):
  cfg: BertConfig
  dtype: Any

  @nn.compact
  def __call__(self, x, keep, train):
    cfg = self.cfg
    ctx = _SelfAttention(cfg, self.dtype, name="self")(x, keep, train)
    return ResidualOutput(cfg.hidden, cfg.ln_eps, cfg.dropout, cfg.init_std, self.dtype,
                          name="output")(ctx, x, train)


class _Layer(nn.Module):
  cfg: BertConfig
  dtype: Any

  @nn.compact
  def __call__(self, x, keep, train):
    cfg = self.cfg
    a = _Attention(cfg, self.dtype, name="attention")(x, keep, train)
    h = Intermediate(cfg.intermediate, cfg.hidden_act, cfg.init_std, self.dtype, name="intermediate")(a)
    return ResidualOutput(cfg.hidden, cfg.ln_eps, cfg.dropout, cfg.init_std, self.dtype,
                          name="output")(h, a, train)


class _Stack(nn.Module):
  cfg: BertConfig
  dtype: Any

  @nn.compact
  def __call__(self, h, keep, train):
    for i in range(self.cfg.layers):
      h = _Layer(self.cfg, self.dtype, name=f"layer_{i}")(h, keep, train)
    return h


class BertEncoder(nn.Module):
  """`apply(params, input_ids_BxT, attention_mask_BxT, train) -> hidden_BxTxH` (last layer).

  `dtype` is the compute dtype (bfloat16 on GPU); params stay float32 and softmax runs in float32.
  Dropout draws from the "dropout" rng stream when `train`.
  """

  cfg: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids_BxT, attention_mask_BxT, train: bool = False,
               token_type_ids_BxT=None):
    if token_type_ids_BxT is None:
      token_type_ids_BxT = jnp.zeros_like(input_ids_BxT)
    h = _Embeddings(self.cfg, self.dtype, name="embeddings")(input_ids_BxT, token_type_ids_BxT, train)
    keep_Bx1x1xT = (attention_mask_BxT > 0)[:, None, None, :]
    return _Stack(self.cfg, self.dtype, name="encoder")(h, keep_Bx1x1xT, train)


def init_params(module: BertEncoder, rng: jax.Array, seq_len: int = 8) -> Any:
  """Fresh params (N(0, init_std) weights) for `module`."""
  ids = jnp.zeros((1, seq_len), jnp.int32)
  return jax.jit(module.init)(rng, ids, jnp.ones_like(ids))["params"]


def params_from_state_dict(state: dict[str, np.ndarray], cfg: BertConfig, source: str) -> Any:
  """Flax params of `BertEncoder(cfg)` from a HF `BertModel` state dict (prefix `bert.` allowed)."""
  module = BertEncoder(cfg)
  target = weights.param_shapes(lambda: init_params(module, jax.random.key(0)))
  return jax.tree_util.tree_map(jnp.asarray, weights.params_from_state_dict(state, target, source))


def load_bert(model_dir: str | Path, dtype: Any = jnp.float32) -> tuple[BertEncoder, Any]:
  """(module, params) from a HF directory with `config.json` and `model.safetensors` (or `.bin`)."""
  model_dir = Path(model_dir)
  cfg_path = model_dir / "config.json"
  cfg = BertConfig.from_hf(weights.read_json(cfg_path), str(cfg_path))
  state, source = weights.load_state_dict(model_dir)
  return BertEncoder(cfg, dtype), params_from_state_dict(state, cfg, source)
