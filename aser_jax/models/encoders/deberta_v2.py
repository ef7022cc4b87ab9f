"""DeBERTa-v2/v3 encoder in Flax: disentangled attention with shared relative embeddings.

The student's shared encoder (ASER_SPEC §3; the paper uses DeBERTa-v3-small). Attention scores
are content-to-content plus, as configured, content-to-position (c2p: query · key-projected
relative embedding of δ(i, j)) and position-to-content (p2c: key · query-projected relative
embedding of δ(j, i)), all divided by sqrt(d · (1 + #terms)). δ is the query-key distance,
log-bucketed beyond half the bucket count; v3 shares the content projections for the relative
embeddings (`share_att_key`) and LayerNorms them once (`norm_rel_ebd`).
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
from aser_jax.models.encoders.blocks import (Intermediate, ResidualOutput, WordEmbed, activation,
                                             dense, layer_norm, masked_softmax)
from aser_jax.models.layers import Dropout

_POS_ATT_TYPES = ("c2p", "p2c")


@dataclasses.dataclass(frozen=True)
class DebertaV2Config:
  """Architecture of a DeBERTa-v2/v3 encoder; the defaults are deberta-v3-small's."""

  vocab_size: int = 128100
  hidden: int = 768
  layers: int = 6
  heads: int = 12
  head_dim: int | None = None  # HF `attention_head_size`; hidden // heads when None
  intermediate: int = 3072
  max_position: int = 512
  type_vocab_size: int = 0
  ln_eps: float = 1e-7
  dropout: float = 0.1
  attn_dropout: float = 0.1
  hidden_act: str = "gelu"
  init_std: float = 0.02
  pad_token_id: int = 0
  embedding_size: int | None = None  # word/position embedding width; hidden when None
  position_biased_input: bool = False
  relative_attention: bool = True
  max_relative_positions: int = -1  # < 1: max_position
  position_buckets: int = 256  # <= 0: no log buckets
  pos_att_type: tuple[str, ...] = ("p2c", "c2p")
  share_att_key: bool = True
  norm_rel_ebd: bool = True  # LayerNorm on the relative embeddings (v3)
  conv_kernel_size: int = 0  # > 0: v2-xlarge's convolution after the first layer
  conv_groups: int = 1
  conv_act: str = "tanh"

  def __post_init__(self):
    bad = [t for t in self.pos_att_type if t not in _POS_ATT_TYPES]
    if bad:
      raise ValueError(f"DebertaV2Config: pos_att_type {bad} not in {_POS_ATT_TYPES}")
    if self.head_dim is None and self.hidden % self.heads:
      raise ValueError(f"DebertaV2Config: hidden={self.hidden} is not a multiple of heads={self.heads}")

  @property
  def d_head(self) -> int:
    return self.head_dim or self.hidden // self.heads

  @property
  def rel_max(self) -> int:
    """Largest distance before clipping (HF `max_relative_positions`, resolved)."""
    return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position

  @property
  def att_span(self) -> int:
    """Half the number of relative embedding rows (HF `pos_ebd_size`)."""
    return self.position_buckets if self.position_buckets > 0 else self.rel_max

  @classmethod
  def from_hf(cls, cfg: dict[str, Any], source: str) -> "DebertaV2Config":
    """From a HF `DebertaV2Config` dict (`config.json`); `source` names the file in errors."""
    model_type = cfg.get("model_type", "deberta-v2")
    if model_type != "deberta-v2":
      raise weights.CheckpointError(f"{source}: field 'model_type' is '{model_type}', expected 'deberta-v2'")
    f = lambda name, kind, *d: weights.field(cfg, name, kind, source, *d)  # noqa: E731
    pos_att = f("pos_att_type", (str, list), [])
    if isinstance(pos_att, str):
      pos_att = [t.strip() for t in pos_att.lower().split("|") if t.strip()]
    bad = [t for t in pos_att if t not in _POS_ATT_TYPES]
    if bad:
      raise weights.CheckpointError(f"{source}: field 'pos_att_type' has unknown entries {bad}")
    norm_rel = [t.strip() for t in f("norm_rel_ebd", str, "none").lower().split("|")]
    return cls(vocab_size=f("vocab_size", int), hidden=f("hidden_size", int),
               layers=f("num_hidden_layers", int), heads=f("num_attention_heads", int),
               head_dim=f("attention_head_size", int, None), intermediate=f("intermediate_size", int),
               max_position=f("max_position_embeddings", int, 512),
               type_vocab_size=f("type_vocab_size", int, 0), ln_eps=f("layer_norm_eps", float, 1e-7),
               dropout=f("hidden_dropout_prob", float, 0.1),
               attn_dropout=f("attention_probs_dropout_prob", float, 0.1),
               hidden_act=f("hidden_act", str, "gelu"), init_std=f("initializer_range", float, 0.02),
               pad_token_id=f("pad_token_id", int, 0), embedding_size=f("embedding_size", int, None),
               position_biased_input=f("position_biased_input", bool, True),
               relative_attention=f("relative_attention", bool, False),
               max_relative_positions=f("max_relative_positions", int, -1),
               position_buckets=f("position_buckets", int, -1), pos_att_type=tuple(pos_att),
               share_att_key=f("share_att_key", bool, False), norm_rel_ebd="layer_norm" in norm_rel,
               conv_kernel_size=f("conv_kernel_size", int, 0), conv_groups=f("conv_groups", int, 1),
               conv_act=f("conv_act", str, "tanh"))


def log_bucket_positions(rel: np.ndarray, bucket_size: int, max_position: int) -> np.ndarray:
  """Relative distances bucketed: exact within ±bucket_size/2, logarithmic beyond, up to
  ±bucket_size/2 + (bucket_size/2 - 1) at `max_position`. float32 as in the reference."""
  sign = np.sign(rel)
  mid = bucket_size // 2
  abs_pos = np.where((rel < mid) & (rel > -mid), mid - 1, np.abs(rel)).astype(np.float32)
  ratio = np.log(abs_pos / np.float32(mid)) / np.log(np.float32((max_position - 1) / mid))
  log_pos = np.ceil(ratio * np.float32(mid - 1)) + np.float32(mid)
  return np.where(abs_pos <= mid, rel.astype(np.float32), log_pos * sign).astype(np.int64)


def relative_positions(T: int, cfg: DebertaV2Config) -> np.ndarray:
  """δ[i, j] = bucket(i − j), shape [T, T] (a trace-time constant)."""
  rel = np.arange(T)[:, None] - np.arange(T)[None, :]
  if cfg.position_buckets > 0 and cfg.rel_max > 0:
    rel = log_bucket_positions(rel, cfg.position_buckets, cfg.rel_max)
  return rel


class _SelfAttention(nn.Module):
  cfg: DebertaV2Config
  dtype: Any

  @nn.compact
  def __call__(self, x_BxTxH, keep_Bx1xTxT, rel_emb_RxH, rel_TxT, train):
    cfg = self.cfg
    B, T, _ = x_BxTxH.shape
    N, d = cfg.heads, cfg.d_head
    proj = {n: dense(N * d, cfg.init_std, self.dtype, n) for n in ("query_proj", "key_proj", "value_proj")}
    heads = lambda name, x: proj[name](x).reshape(*x.shape[:-1], N, d)  # noqa: E731
    q, k, v = heads("query_proj", x_BxTxH), heads("key_proj", x_BxTxH), heads("value_proj", x_BxTxH)
    scale = float(np.sqrt(d * (1 + len(set(cfg.pos_att_type)))))  # weakly typed: keeps bf16
    scores_BxNxTxT = jnp.einsum("bqnd,bknd->bnqk", q, k / scale)

    if cfg.relative_attention:
      S = cfg.att_span
      rel = Dropout(cfg.dropout)(rel_emb_RxH[:2 * S], deterministic=not train)
      if not cfg.share_att_key:
        if "c2p" in cfg.pos_att_type:
          proj["pos_key_proj"] = dense(N * d, cfg.init_std, self.dtype, "pos_key_proj")
        if "p2c" in cfg.pos_att_type:
          proj["pos_query_proj"] = dense(N * d, cfg.init_std, self.dtype, "pos_query_proj")
      rows = np.arange(T)[:, None]
      if "c2p" in cfg.pos_att_type:
        pos_k_RxNxd = heads("key_proj" if cfg.share_att_key else "pos_key_proj", rel)
        c2p_BxNxTxR = jnp.einsum("bqnd,rnd->bnqr", q, pos_k_RxNxd)
        idx = np.clip(rel_TxT + S, 0, 2 * S - 1)
        scores_BxNxTxT = scores_BxNxTxT + c2p_BxNxTxR[:, :, rows, idx] / scale
      if "p2c" in cfg.pos_att_type:
        pos_q_RxNxd = heads("query_proj" if cfg.share_att_key else "pos_query_proj", rel)
        p2c_BxNxTxR = jnp.einsum("bknd,rnd->bnkr", k, pos_q_RxNxd)
        idx = np.clip(-rel_TxT + S, 0, 2 * S - 1)  # [key j, query i] -> bucket of δ(j, i)
        p2c = jnp.swapaxes(p2c_BxNxTxR[:, :, rows, idx], -1, -2)
        scores_BxNxTxT = scores_BxNxTxT + p2c / scale

    probs = masked_softmax(scores_BxNxTxT, keep_Bx1xTxT).astype(self.dtype)
    probs = Dropout(cfg.attn_dropout)(probs, deterministic=not train)
    return jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(B, T, N * d)


class _Attention(nn.Module):
  cfg: DebertaV2Config
  dtype: Any

  @nn.compact
  def __call__(self, x, keep, rel_emb, rel, train):
    cfg = self.cfg
    ctx = _SelfAttention(cfg, self.dtype, name="self")(x, keep, rel_emb, rel, train)
    return ResidualOutput(cfg.hidden, cfg.ln_eps, cfg.dropout, cfg.init_std, self.dtype,
                          name="output")(ctx, x, train)


class _Layer(nn.Module):
  cfg: DebertaV2Config
  dtype: Any

  @nn.compact
  def __call__(self, x, keep, rel_emb, rel, train):
    cfg = self.cfg
    a = _Attention(cfg, self.dtype, name="attention")(x, keep, rel_emb, rel, train)
    h = Intermediate(cfg.intermediate, cfg.hidden_act, cfg.init_std, self.dtype, name="intermediate")(a)
    return ResidualOutput(cfg.hidden, cfg.ln_eps, cfg.dropout, cfg.init_std, self.dtype,
                          name="output")(h, a, train)


class _Conv(nn.Module):
  """v2-xlarge's `LN(residual + act(conv(x)))`, zeroed at padding."""

  cfg: DebertaV2Config
  dtype: Any

  @nn.compact
  def __call__(self, x_BxTxH, residual_BxTxH, mask_BxT, train):
    cfg = self.cfg
    k = cfg.conv_kernel_size
    out = nn.Conv(cfg.hidden, (k,), padding=[((k - 1) // 2, (k - 1) // 2)],
                  feature_group_count=cfg.conv_groups, dtype=self.dtype, param_dtype=jnp.float32,
                  name="conv")(x_BxTxH)
    m = mask_BxT[..., None].astype(out.dtype)
    out = activation(cfg.conv_act)(Dropout(cfg.dropout)(out * m, deterministic=not train))
    return layer_norm(cfg.ln_eps, self.dtype)(residual_BxTxH + out) * m


class _Embeddings(nn.Module):
  cfg: DebertaV2Config
  dtype: Any

  @nn.compact
  def __call__(self, ids_BxT, type_ids_BxT, mask_BxT, train):
    cfg = self.cfg
    T = ids_BxT.shape[1]
    E = cfg.embedding_size or cfg.hidden
    init = nn.initializers.normal(cfg.init_std)
    h = WordEmbed(cfg.vocab_size, E, cfg.init_std, self.dtype, name="word_embeddings")(ids_BxT)
    if cfg.position_biased_input:
      if T > cfg.max_position:
        raise ValueError(f"sequence length {T} exceeds max_position={cfg.max_position}")
      pos = nn.Embed(cfg.max_position, E, embedding_init=init, name="position_embeddings")
      h = h + pos(jnp.arange(T))[None].astype(self.dtype)
    if cfg.type_vocab_size > 0:
      typ = nn.Embed(cfg.type_vocab_size, E, embedding_init=init, name="token_type_embeddings")
      h = h + typ(type_ids_BxT).astype(self.dtype)
    if E != cfg.hidden:
      h = dense(cfg.hidden, cfg.init_std, self.dtype, "embed_proj", use_bias=False)(h)
    h = layer_norm(cfg.ln_eps, self.dtype)(h) * mask_BxT[..., None].astype(self.dtype)
    return Dropout(cfg.dropout)(h, deterministic=not train)


class _Stack(nn.Module):
  cfg: DebertaV2Config
  dtype: Any

  @nn.compact
  def __call__(self, h_BxTxH, mask_BxT, train):
    cfg = self.cfg
    T = h_BxTxH.shape[1]
    keep = mask_BxT > 0
    keep_Bx1xTxT = keep[:, None, None, :] & keep[:, None, :, None]
    rel_emb, rel = None, None
    if cfg.relative_attention:
      rel_emb = self.param("rel_embeddings", nn.initializers.normal(cfg.init_std),
                           (2 * cfg.att_span, cfg.hidden), jnp.float32).astype(self.dtype)
      rel = relative_positions(T, cfg)
      if cfg.norm_rel_ebd:
        rel_emb = layer_norm(cfg.ln_eps, self.dtype)(rel_emb)
    x = h_BxTxH
    for i in range(cfg.layers):
      out = _Layer(cfg, self.dtype, name=f"layer_{i}")(x, keep_Bx1xTxT, rel_emb, rel, train)
      if i == 0 and cfg.conv_kernel_size > 0:
        out = _Conv(cfg, self.dtype, name="conv")(h_BxTxH, out, mask_BxT, train)
      x = out
    return x


class DebertaV2Encoder(nn.Module):
  """`apply(params, input_ids_BxT, attention_mask_BxT, train) -> hidden_BxTxH` (last layer).

  As in the reference, padded positions are zeroed after the embeddings and attend uniformly
  (their own outputs are meaningless; pool with the mask). `dtype` is the compute dtype.
  """

  cfg: DebertaV2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids_BxT, attention_mask_BxT, train: bool = False,
               token_type_ids_BxT=None):
    if token_type_ids_BxT is None:
      token_type_ids_BxT = jnp.zeros_like(input_ids_BxT)
    h = _Embeddings(self.cfg, self.dtype, name="embeddings")(
        input_ids_BxT, token_type_ids_BxT, attention_mask_BxT, train)
    return _Stack(self.cfg, self.dtype, name="encoder")(h, attention_mask_BxT, train)


def init_params(module: DebertaV2Encoder, rng: jax.Array, seq_len: int = 8) -> Any:
  """Fresh params (N(0, init_std) weights) for `module`."""
  ids = jnp.zeros((1, seq_len), jnp.int32)
  return jax.jit(module.init)(rng, ids, jnp.ones_like(ids))["params"]


def params_from_state_dict(state: dict[str, Any], cfg: DebertaV2Config, source: str) -> Any:
  """Flax params of `DebertaV2Encoder(cfg)` from a HF DeBERTa-v2 state dict: numpy arrays or
  torch tensors, base-model keys with or without the `deberta.` prefix of task models."""
  state = weights.state_dict_to_numpy(state)
  module = DebertaV2Encoder(cfg)
  target = weights.param_shapes(lambda: init_params(module, jax.random.key(0)))
  return jax.tree_util.tree_map(jnp.asarray, weights.params_from_state_dict(state, target, source))


def load_deberta_v2(model_dir: str | Path, dtype: Any = jnp.float32) -> tuple[DebertaV2Encoder, Any]:
  """(module, params) from a HF directory with `config.json` and `model.safetensors` or
  `pytorch_model.bin` (e.g. microsoft/deberta-v3-small, downloaded by the user)."""
  model_dir = Path(model_dir)
  cfg_path = model_dir / "config.json"
  cfg = DebertaV2Config.from_hf(weights.read_json(cfg_path), str(cfg_path))
  state, source = weights.load_state_dict(model_dir)
  return DebertaV2Encoder(cfg, dtype), params_from_state_dict(state, cfg, source)
