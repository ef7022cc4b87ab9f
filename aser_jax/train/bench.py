"""Training-speed measurement: seconds per epoch and per full validation pass, peak RSS.

It times the program a run trains (`loop.prepare`, `loop.initial_state`, the run's step RNG and
data order, the bank fused or the GRASP tables attached when given), so the first epoch it
times is seed 0's first epoch.
"""

from __future__ import annotations

import resource
import time

import jax
import numpy as np

from aser_jax import configs, provenance
from aser_jax.data.pipeline import PipelineConfig, TrainIterator
from aser_jax.data.sequences import SequenceData
from aser_jax.eval import ranking
from aser_jax.train import sharding
from aser_jax.train.loop import TrainConfig, bank_digest, initial_state, prepare
from aser_jax.train.seeds import stack, vmapped_step
from aser_jax.train.state import jit_train_step


def bench_train(data: SequenceData, backbone: str, steps: int = 0, batch_size: int = 256,
                eval_repeats: int = 2, side=None, bank=None, model_overrides: dict | None = None,
                seeds: int = 1, grasp=None) -> dict:
  """Runs one untimed step (the compile) and then `steps` timed train steps (0: the rest of an
  epoch, so the two make exactly seed 0's first epoch), then times full validation passes.

  `model_overrides` replace fields of the paper settings (e.g. SASRec's `loss`); `bank` fuses an
  item facet bank (Sens), `grasp` (`bank.grasp.GraspTables`) attaches the GRASP channel. With
  `seeds` > 1 each step is the vmapped step of seeds 0..seeds-1 (`train.seeds`), fed the same
  batch, and `seconds_per_epoch` is per seed (a joint epoch's seconds over `seeds`); the
  validation pass scores seed 0.
  """
  model_kw, train_kw = configs.paper_settings(backbone, data.name)
  model_kw.update(model_overrides or {})
  tcfg = TrainConfig(**{**train_kw, "batch_size": batch_size, "seed": 0, "progress": False})
  setup = prepare(data, backbone, tcfg, side=side, bank=bank, grasp=grasp, **model_kw)
  mesh, n_epoch = setup.mesh, setup.steps_per_epoch
  n = steps or n_epoch - 1
  if n < 1:
    raise ValueError(f"an epoch of {n_epoch} step leaves no step to time after the compile; pass --steps")
  if seeds > 1:
    state = stack([initial_state(setup, s) for s in range(seeds)])
    rng = jax.numpy.stack([jax.random.key(s + 1) for s in range(seeds)])
    vstep = vmapped_step(setup.model, setup.tx, mesh, setup.consts)
    step = lambda state, batch, rng: vstep(state, stack([batch] * seeds), rng)
  else:
    state, rng = initial_state(setup, 0), jax.random.key(1)  # a run's step RNG is key(seed + 1)
    jstep = jit_train_step(setup.model, setup.tx, mesh, setup.consts)
    step = lambda state, batch, rng: jstep(state, sharding.put_batch(mesh, batch), rng)
  data_iter = TrainIterator(setup.samples, PipelineConfig(tcfg.batch_size, tcfg.seed, tcfg.data_workers))

  def batches():
    epoch = 0
    while True:
      data_iter.start_epoch(epoch)
      yield from data_iter
      epoch += 1

  feed = batches()
  t = time.perf_counter()
  state, m = step(state, next(feed), rng)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  for _ in range(n):
    state, m = step(state, next(feed), rng)
  jax.block_until_ready(m)
  per_step = (time.perf_counter() - t) / n
  params = jax.tree.map(lambda x: x[0], state.params) if seeds > 1 else state.params
  ev = setup.evaluator
  ranks = ev.ranks(params, "valid")  # compile
  times = []
  for _ in range(eval_repeats):
    t = time.perf_counter()
    ranks = ev.ranks(params, "valid")
    times.append(time.perf_counter() - t)
  return {
      "backbone": backbone, "data": data.name, "synthetic": bool(data.synthetic),
      "users": data.num_users, "items": data.num_items, "train_samples": len(setup.samples),
      "bank": None if bank is None else bank_digest(bank), "grasp": setup.grasp,
      "batch_size": tcfg.batch_size, "steps_per_epoch": n_epoch, "timed_steps": n, "seeds": seeds,
      "seconds_per_step": per_step, "seconds_per_epoch": per_step * n_epoch / seeds,
      "compile_seconds": compile_s,
      "seconds_per_validation": float(np.min(times)) if times else None,
      "valid_NDCG@10_after_steps": ranking.metrics_from_ranks(ranks)["NDCG@10"],
      "devices": mesh.devices.size, "backend": jax.default_backend(),
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "environment": provenance.environment(),
  }
