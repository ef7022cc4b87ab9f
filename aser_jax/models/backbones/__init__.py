"""One backbone per file; each registers itself in `aser_jax.models.registry`."""
