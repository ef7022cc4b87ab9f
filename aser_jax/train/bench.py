"""Training-speed measurement: seconds per epoch and per full validation pass, peak RSS."""

from __future__ import annotations

import resource
import time

import jax
import numpy as np

from aser_jax import configs, provenance
from aser_jax.data.pipeline import PipelineConfig, TrainIterator, steps_per_epoch
from aser_jax.data.sequences import SequenceData
from aser_jax.eval import ranking
from aser_jax.models import registry
from aser_jax.train import sharding
from aser_jax.train.loop import Evaluator, TrainConfig, training_samples
from aser_jax.train.seeds import stack, vmapped_step
from aser_jax.train.state import adam, init_state, jit_train_step


def bench_train(data: SequenceData, backbone: str, steps: int = 0, batch_size: int = 256,
                eval_repeats: int = 2, side=None, model_overrides: dict | None = None, seeds: int = 1) -> dict:
  """Times `steps` train steps (0: one whole epoch) after a compile step, and full validation passes;
  `model_overrides` replace fields of the paper settings (e.g. SASRec's `loss`). With `seeds` > 1
  each step is the vmapped step of that many seeds (`train.seeds`), fed the same batch, and
  `seconds_per_epoch` is per seed (a joint epoch's seconds over `seeds`)."""
  model_kw, train_kw = configs.paper_settings(backbone, data.name)
  model_kw.update(model_overrides or {})
  model, cfg = registry.build(backbone, data.num_items, side=side, **model_kw)
  tcfg = TrainConfig(batch_size=batch_size, **{k: v for k, v in train_kw.items() if k == "lr"})
  mesh = sharding.data_mesh()
  samples = training_samples(model, data)
  pcfg = PipelineConfig(tcfg.batch_size, 0)
  n_epoch = steps_per_epoch(samples, pcfg)
  n = steps or n_epoch
  tx = adam(tcfg.lr)
  repl = sharding.replicated(mesh)
  init = lambda seed: jax.device_put(init_state(model, tx, {"input_ids": samples.inputs[:1]}, seed), repl)
  if seeds > 1:
    state, rng = stack([init(s) for s in range(seeds)]), jax.random.split(jax.random.key(0), seeds)
    vstep = vmapped_step(model, tx, mesh)
    step = lambda state, batch, rng: vstep(state, stack([batch] * seeds), rng)
    put = lambda batch: batch  # vstep places the stacked batch
  else:
    state, rng = init(0), jax.random.key(0)
    step, put = jit_train_step(model, tx, mesh), lambda batch: sharding.put_batch(mesh, batch)
  it = iter(TrainIterator(samples, pcfg))
  t = time.perf_counter()
  state, m = step(state, put(next(it)), rng)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  done = 0
  while done < n:
    for batch in it:
      state, m = step(state, put(batch), rng)
      done += 1
      if done == n:
        break
    else:
      it = iter(TrainIterator(samples, pcfg))
  jax.block_until_ready(m)
  per_step = (time.perf_counter() - t) / n
  params = jax.tree.map(lambda x: x[0], state.params) if seeds > 1 else state.params
  ev = Evaluator(model, data, cfg.max_len, mesh)
  ev.ranks(params, "valid")  # compile
  times = []
  for _ in range(eval_repeats):
    t = time.perf_counter()
    ranks = ev.ranks(params, "valid")
    times.append(time.perf_counter() - t)
  return {
      "backbone": backbone, "data": data.name, "synthetic": bool(data.synthetic),
      "users": data.num_users, "items": data.num_items, "train_samples": len(samples),
      "batch_size": tcfg.batch_size, "steps_per_epoch": n_epoch, "timed_steps": n, "seeds": seeds,
      "seconds_per_step": per_step, "seconds_per_epoch": per_step * n_epoch / seeds,
      "compile_seconds": compile_s, "seconds_per_validation": float(np.min(times)),
      "valid_NDCG@10_after_timed_steps": ranking.metrics_from_ranks(ranks)["NDCG@10"],
      "devices": mesh.devices.size, "backend": jax.default_backend(),
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "environment": provenance.environment(),
  }
