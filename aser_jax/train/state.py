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
  """Builds the pure step; the step's randomness is `fold_in(rng, state.step)`, split per use."""

  def step(state: TrainState, batch: dict, rng: jax.Array):
    rng = jax.random.fold_in(rng, state.step)
    r_dropout, r_sample, r_mask = jax.random.split(rng, 3)
    rngs = {"dropout": r_dropout, "sample": r_sample, "mask": r_mask}

    def loss_fn(params):
      per_row = model.apply({"params": params}, batch, True, rngs=rngs, method=model.loss)
      return weighted_mean(per_row, batch["weight"])

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state), {"loss": loss}

  return step


def init_state(model, tx, sample_batch: dict, seed: int) -> TrainState:
  params = model.init({"params": jax.random.key(seed)}, sample_batch["input_ids"], method=model.score)["params"]
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
