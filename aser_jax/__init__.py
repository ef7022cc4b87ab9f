"""aser_jax: sensory-aware sequential recommendation in JAX/Flax (linen)."""

from aser_jax import _malloc

_malloc.tune()
