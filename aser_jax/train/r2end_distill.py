"""Stage 1 of the R2END channel (BACKBONES.md "R2END channel"): the student encoder, initialised
from the frozen encoder, learns `H_u -> e^R_u` by MSE on the train cases; resumable from
`workdir/distill/` (checkpoints every `checkpoint_every` steps) and exported params-only to
`workdir/encoder_params/`. `train.r2end` runs it before the user embeddings and the projection.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from aser_jax.data.io import write_text_atomic
from aser_jax.models import r2end as M
from aser_jax.models.encoders import Encoder, sentence_embedding
from aser_jax.train import sharding
from aser_jax.train.checkpoint import Checkpoints, load_params, save_params
from aser_jax.train.state import TrainState, weighted_mean

if TYPE_CHECKING:
  from aser_jax.train.r2end import R2endConfig

log = logging.getLogger("aser_jax")


def make_distill_step(module, tx):
  """The pure step `(state, batch, rng) -> (state, metrics)` of eq. 3 (dropout on)."""

  def step(state: TrainState, batch: dict, rng: jax.Array):
    rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
      h = module.apply({"params": params}, batch["input_ids"], batch["attention_mask"], True, rngs={"dropout": rng})
      e = sentence_embedding(h, batch["attention_mask"])
      return weighted_mean(M.distill_loss(e, batch["target"]), batch["weight"])

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), {"loss": loss}

  return step


def shuffled_batches(n: int, size: int, seed: int, epoch: int):
  """Index and weight arrays of one epoch's shuffled batches; the last is padded with weight 0."""
  perm = np.random.default_rng([seed, epoch]).permutation(n)
  for lo in range(0, n, size):
    idx = perm[lo:lo + size]
    weight = np.ones(size, np.float32)
    weight[len(idx):] = 0.0
    yield np.concatenate([idx, np.repeat(idx[:1], size - len(idx))]), weight


def distill(workdir: Path, enc: Encoder, texts: list[str], targets_NxE: np.ndarray, cfg: R2endConfig, mesh,
            progress: bool = True) -> tuple[object, dict]:
  """Stage 1: (student params, summary). Resumes from `workdir/distill/`; a finished stage is
  read back from `encoder_params/`."""
  done = workdir / "distill.json"
  if done.exists():
    summary = json.loads(done.read_text())
    return load_params(workdir / "encoder_params", enc.params), summary
  n, B = len(texts), cfg.distill_batch
  per_epoch = -(-n // B)
  total = cfg.distill_epochs * per_epoch
  if cfg.distill_max_steps:
    total = min(total, cfg.distill_max_steps)
  tx = optax.adam(cfg.distill_lr)
  repl = sharding.replicated(mesh)
  params = jax.tree.map(lambda x: jnp.array(x, copy=True), enc.params)  # the step donates its state
  state = jax.device_put(TrainState(jnp.zeros((), jnp.int32), params, tx.init(params)), repl)
  ckpts = Checkpoints(workdir / "distill")
  losses = []
  if ckpts.latest() is not None:
    state, loop = ckpts.restore(ckpts.latest(), state)
    losses = loop["losses"]
    log.info("distillation resumed at step %d of %d", int(state.step), total)
  step_fn = jax.jit(make_distill_step(enc.module, tx), in_shardings=(repl, sharding.batch_sharded(mesh), repl),
                    out_shardings=(repl, repl), donate_argnums=0)
  encs = enc.tokenizer.encode(texts)
  rng = jax.random.key(cfg.seed)
  t0, start, window = time.perf_counter(), int(state.step), []
  bar = tqdm(total=total, initial=start, desc="r2end distill", unit="step", disable=not progress)
  for epoch in range(start // per_epoch, -(-total // per_epoch)):
    for b, (idx, weight) in enumerate(shuffled_batches(n, B, cfg.seed, epoch)):
      k = epoch * per_epoch + b
      if k < start:
        continue
      if k >= total:
        break
      tb = enc.tokenizer.pad([encs[i] for i in idx])
      batch = {"input_ids": tb.input_ids_BxT, "attention_mask": tb.attention_mask_BxT,
               "target": targets_NxE[idx], "weight": weight}
      state, m = step_fn(state, sharding.put_batch(mesh, batch), rng)
      window.append(float(m["loss"]))
      bar.update(1)
      if (k + 1) % cfg.checkpoint_every == 0 or k + 1 == total:
        losses.append({"step": k + 1, "loss": float(np.mean(window))})
        window = []
        ckpts.save(k + 1, state, {"losses": losses})
  bar.close()
  ckpts.close()
  params = jax.device_get(state.params)
  save_params(workdir / "encoder_params", params)
  summary = {"steps": total, "examples": n, "batch": B, "losses": losses,
             "seconds": time.perf_counter() - t0, "steps_this_invocation": total - start}
  write_text_atomic(done, json.dumps(summary, indent=1) + "\n")
  return params, summary
