"""NumPy re-computations of the backbone equations (BACKBONES.md), shared by tests/test_backbone_*.py."""

from __future__ import annotations

import numpy as np
from scipy.special import erf


def ln(x, p, eps=1e-12):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(p["bias"])


def dense(x, p):
  return x @ np.asarray(p["kernel"]) + np.asarray(p["bias"])


def softmax(z, axis=-1):
  z = z - z.max(axis, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis, keepdims=True)


def mask_bias(ids, causal):
  """[B, 1, L, L]: 0 where the key is real (and not in the future when causal), else -10000."""
  L = ids.shape[1]
  keep = (ids > 0)[:, None, None, :]
  if causal:
    keep = keep & np.tril(np.ones((L, L), bool))[None, None]
  return np.where(keep, 0.0, -10000.0)


def attention(x, ids, p, heads, causal):
  """`LN(W_o softmax(QKᵀ/sqrt(dh) + mask) V + x)`."""
  B, L, D = x.shape
  dh = D // heads
  q, k, v = (dense(x, p[n]).reshape(B, L, heads, dh) for n in ("query", "key", "value"))
  probs = softmax(np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(dh) + mask_bias(ids, causal))
  ctx = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(B, L, D)
  return ln(dense(ctx, p["out"]) + x, p["ln"])


def ffn(x, p):
  h = dense(x, p["inner"])
  h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
  return ln(dense(h, p["outer"]) + x, p["ln"])


def low_pass_direct(x, c):
  """Low-pass by an explicit DFT sum: keep frequencies 0..c//2 (and their mirror images)."""
  L = x.shape[1]
  n = np.arange(L)
  keep = np.zeros(L, bool)
  for f in range(c // 2 + 1):
    keep[f % L] = keep[(-f) % L] = True
  W = np.exp(-2j * np.pi * np.outer(n, n) / L)
  spec = np.einsum("fn,bnd->bfd", W, x) * keep[None, :, None]
  return np.real(np.einsum("nf,bfd->bnd", W.conj(), spec)) / L


def freq_filter(x, p, c):
  """`LN(low + β² (x − low) + x)` (dropout off)."""
  low = low_pass_direct(x, c)
  y = low + np.asarray(p["sqrt_beta"]) ** 2 * (x - low)
  return ln(y + x, p["ln"])


def perturb(params, seed=1, scale=0.05):
  """Moves every param off its init so zero biases and unit LN scales do not hide mistakes."""
  import jax
  leaves, tree = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(tree, [np.asarray(w) + scale * rng.standard_normal(w.shape).astype(np.float32)
                                   for w in leaves])
