"""Pieces shared by the BERT and DeBERTa encoders.

Submodules carry the Hugging Face names (`dense`, `LayerNorm`, `word_embeddings`) so that
`weights.params_from_state_dict` can map checkpoints without per-model tables.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from aser_jax.models.layers import Dropout

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """The activation called `name` in a HF config (`gelu` is the exact erf form)."""
  if name not in _ACTIVATIONS:
    raise ValueError(f"unsupported activation '{name}'; known: {sorted(_ACTIVATIONS)}")
  return _ACTIVATIONS[name]


def dense(features: int, init_std: float, dtype: Any, name: str, use_bias: bool = True) -> nn.Dense:
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                  kernel_init=nn.initializers.normal(init_std), bias_init=nn.initializers.zeros,
                  name=name)


def layer_norm(eps: float, dtype: Any, name: str = "LayerNorm") -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=jnp.float32, name=name)


class WordEmbed(nn.Module):
  """Word-embedding lookup whose row count comes from the params at apply time.

  `init` makes `vocab_size` rows; `embeddings.add_special_tokens` may append rows later, and the
  same module (and config) then reads the longer table.
  """

  vocab_size: int
  features: int
  init_std: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids: jax.Array) -> jax.Array:
    if self.has_variable("params", "embedding"):
      table = self.get_variable("params", "embedding")
    else:
      table = self.param("embedding", nn.initializers.normal(self.init_std),
                         (self.vocab_size, self.features), jnp.float32)
    return jnp.take(table, ids, axis=0).astype(self.dtype)


class Intermediate(nn.Module):
  """`act(W x)`, the first half of the feed-forward block (HF `intermediate`)."""

  features: int
  act: str
  init_std: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return activation(self.act)(dense(self.features, self.init_std, self.dtype, "dense")(x))


class ResidualOutput(nn.Module):
  """`LN(Dropout(W x) + residual)`: HF `attention.output` and `output`."""

  features: int
  eps: float
  dropout: float
  init_std: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, residual: jax.Array, train: bool) -> jax.Array:
    h = dense(self.features, self.init_std, self.dtype, "dense")(x)
    h = Dropout(self.dropout)(h, deterministic=not train)
    return layer_norm(self.eps, self.dtype)(h + residual)


def masked_softmax(scores: jax.Array, keep: jax.Array) -> jax.Array:
  """Softmax in float32 with dropped entries set to the float32 minimum (as HF does).

  A row with every entry dropped comes out uniform, which is also what HF returns.
  """
  scores = jnp.where(keep, scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
  return jax.nn.softmax(scores, axis=-1)
