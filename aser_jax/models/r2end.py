"""R2END's projection and objectives (BACKBONES.md "R2END channel"; R2END paper eq. 3, 6-8, 10).

The student text encoder maps a user's history text to `e_u` (mean pooling, L2-normalised, as the
frozen encoder does) and is distilled onto the frozen encoder's embedding of the reasoning,
`‖e_u − e^R_u‖²`. A projection `f` shared by users and items then maps both into the retrieval
space, trained with InfoNCE over one positive and K sampled negatives at temperature τ on cosine
similarity, plus `λ (‖z_u‖ + ‖z_i+‖ + mean_j ‖z_j‖)`. Items are ranked by `cos(z_u, z_i)`.

The paper's eq. 7 prints the denominator over the negatives only; we use the usual InfoNCE
softmax over the positive and the negatives (a denominator without the positive has no lower
bound and rewards pushing the positive arbitrarily far above every negative).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class Projection(nn.Module):
  """`f`: one dense layer E -> `dim` shared by users and items (`dim` = 0: identity, the paper's
  "w.o. projection" ablation)."""

  dim: int = 512

  @nn.compact
  def __call__(self, e_NxE: jax.Array) -> jax.Array:
    return nn.Dense(self.dim, name="dense")(e_NxE) if self.dim else e_NxE


def unit(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def distill_loss(e_BxE: jax.Array, target_BxE: jax.Array) -> jax.Array:
  """Per-row `‖e_u − e^R_u‖²` (eq. 3)."""
  return jnp.sum(jnp.square(e_BxE - target_BxE), axis=-1)


def contrastive_loss(zu_BxP: jax.Array, zpos_BxP: jax.Array, zneg_BxKxP: jax.Array, tau: float,
                     reg_weight: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-row (InfoNCE + L_reg, InfoNCE, L_reg) of eq. 7-8 (see the module docstring on eq. 7)."""
  u = unit(zu_BxP)
  cand_BxCxP = jnp.concatenate([zpos_BxP[:, None], zneg_BxKxP], axis=1)
  logits_BxC = jnp.einsum("bp,bcp->bc", u, unit(cand_BxCxP)) / tau
  nce_B = jax.nn.logsumexp(logits_BxC, axis=1) - logits_BxC[:, 0]
  norm = lambda z: jnp.linalg.norm(z, axis=-1)
  reg_B = reg_weight * (norm(zu_BxP) + norm(zpos_BxP) + norm(zneg_BxKxP).mean(1))
  return nce_B + reg_B, nce_B, reg_B


def sample_negatives(rng: jax.Array, pos_B: jax.Array, num_items: int, k: int) -> jax.Array:
  """[B, k] item ids drawn uniformly from 1..num_items without the row's positive (needs >= 2 items)."""
  offset = jax.random.randint(rng, (pos_B.shape[0], k), 1, num_items)
  return 1 + (pos_B[:, None] - 1 + offset) % num_items
