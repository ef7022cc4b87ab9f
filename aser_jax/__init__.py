"""aser_jax: sensory-aware sequential recommendation in JAX/Flax (linen)."""
