"""The BSARec frequency filter, shared by BSARec and DIFF (BACKBONES.md "BSARec", "DIFF").

`low = irfft(keep_c · rfft(x, axis=L, norm="ortho"), n=L, norm="ortho")` keeps the bins
`[0, c//2 + 1)`; `y = low + β² ⊙ (x − low)`; `Freq(x) = LN(Dropout(y) + x)`.
The low-pass is linear along the sequence, so it is also the fixed L×L matrix `M` with
`low = M x`; on CPU the matmul is faster than an FFT, and the two agree to rounding.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aser_jax.models import layers


def low_pass_matrix(seq_len: int, c: int) -> np.ndarray:
  """[L, L] float32 operator of the ortho rfft -> keep `[0, c//2+1)` -> irfft low-pass."""
  keep = np.arange(seq_len // 2 + 1) < c // 2 + 1
  spec = np.fft.rfft(np.eye(seq_len), axis=0, norm="ortho") * keep[:, None]
  return np.fft.irfft(spec, n=seq_len, axis=0, norm="ortho").astype(np.float32)


def low_pass_fft(x_BxLxD: jax.Array, c: int) -> jax.Array:
  L = x_BxLxD.shape[1]
  spec = jnp.fft.rfft(x_BxLxD, axis=1, norm="ortho")
  keep = (jnp.arange(spec.shape[1]) < c // 2 + 1)[None, :, None]
  return jnp.fft.irfft(jnp.where(keep, spec, 0), n=L, axis=1, norm="ortho").astype(x_BxLxD.dtype)


class FrequencyFilter(nn.Module):
  """`LN(Dropout(low + β² ⊙ high) + x)`; `per_channel` β has shape [D] (BSARec), else [1] (DIFF).

  `impl` is "matrix" (fixed L×L operator) or "fft"; with `last_only` only position L-1 is
  returned (the operator's last row), which is all the last block of a last-position model needs.
  """

  cfg: layers.BackboneConfig
  c: int
  per_channel: bool = True
  impl: str = "matrix"

  @nn.compact
  def __call__(self, x_BxLxD, train: bool, last_only: bool = False):
    L, D = x_BxLxD.shape[1:]
    beta = self.param("sqrt_beta", nn.initializers.normal(1.0), (D if self.per_channel else 1,))
    if self.impl == "fft":
      low = low_pass_fft(x_BxLxD, self.c)
      low = low[:, -1:] if last_only else low
    elif self.impl == "matrix":
      m = jnp.asarray(low_pass_matrix(L, self.c), x_BxLxD.dtype)
      m = m[-1:] if last_only else m
      low = jnp.einsum("ij,bjd->bid", m, x_BxLxD)
    else:
      raise ValueError(f"unknown frequency filter impl {self.impl!r} (matrix, fft)")
    x = x_BxLxD[:, -1:] if last_only else x_BxLxD
    y = low + beta**2 * (x - low)
    y = layers.Dropout(self.cfg.dropout)(y, deterministic=not train)
    return layers.layer_norm(self.cfg, "ln")(y + x)
