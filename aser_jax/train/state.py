"""Train state and the one pure, jitted train step `(state, batch, rng) -> (state, metrics)`."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  opt_state: Any


def adam(lr: float, weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
  """The reference optimiser: Adam (0.9, 0.999), optional decoupled weight decay, no schedule."""
  if weight_decay:
    return optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay)
  return optax.adam(lr, b1=b1, b2=b2)


def weighted_mean(per_row_B: jax.Array, weight_B: jax.Array) -> jax.Array:
  return jnp.sum(per_row_B * weight_B) / jnp.maximum(jnp.sum(weight_B), 1.0)


def make_train_step(model, tx: optax.GradientTransformation):
  """Builds the pure step `(state, batch, rng, consts) -> (state, metrics)`.

  `consts` holds frozen, non-trainable variable collections (the sensory bank, ASER_SPEC §5);
  pass `{}` when there are none, or bind it with `functools.partial` to get the
  `(state, batch, rng)` form. The step's randomness is `fold_in(rng, state.step)`, split per use.
  """

  def step(state: TrainState, batch: dict, rng: jax.Array, consts: dict):
    rng = jax.random.fold_in(rng, state.step)
    r_dropout, r_sample, r_mask = jax.random.split(rng, 3)
    rngs = {"dropout": r_dropout, "sample": r_sample, "mask": r_mask}

    def loss_fn(params):
      per_row = model.apply({"params": params, **consts}, batch, True, rngs=rngs, method=model.loss)
      return weighted_mean(per_row, batch["weight"])

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state), {"loss": loss}

  return step


def jit_train_step(model, tx: optax.GradientTransformation, mesh, consts: dict | None = None):
  """Jits the step once for `mesh` (params replicated, batch split) and binds `consts`.

  Returns `(state, batch, rng) -> (state, metrics)`; the constants are a jit argument, not
  captured, so a large bank is not baked into the compiled program.
  """
  from aser_jax.train import sharding

  repl = sharding.replicated(mesh)
  jitted = jax.jit(make_train_step(model, tx),
                   in_shardings=(repl, sharding.batch_sharded(mesh), repl, repl),
                   out_shardings=(repl, repl), donate_argnums=0)
  consts = jax.device_put(consts or {}, repl)
  return lambda state, batch, rng: jitted(state, batch, rng, consts)


def init_state(model, tx, sample_batch: dict, seed: int) -> TrainState:
  """Initial params and optimiser state; non-trainable collections from `init` are dropped."""
  params = model.init({"params": jax.random.key(seed)}, sample_batch["input_ids"], method=model.score)["params"]
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
