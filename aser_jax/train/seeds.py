"""Several seeds of one run trained together: one jitted step vmapped over a leading seed axis.

A d-64 recommender leaves an accelerator mostly idle (four DIFF runs as separate processes on an
H200 kept it "busy" at about 3 TFLOP/s); one program batched over seeds gives it seeds-times
larger kernels instead. Nothing about a run changes: each seed keeps its own initial params,
data order and step RNG (`fold_in(key(seed + 1), step)`), exactly as in a run of its own, and its
own folder (`loop.RunBook`), so any seed's folder resumes alone or with other seeds. A seed that
early stopping ends leaves the batch at the end of that epoch (the step recompiles once for the
rest) and gets its test evaluation and `metrics.json` then. Validation ranks all seeds in one
vmapped program too (`loop.Evaluator.ranks_seeds`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from aser_jax.data.sequences import SequenceData
from aser_jax.train import sharding
from aser_jax.train.loop import RunBook, TrainConfig, over_budget, prepare
from aser_jax.train.state import make_train_step


def vmapped_step(model, tx, mesh, consts: dict | None = None):
  """`(states_S, batches_SxB, rngs_S) -> (states_S, {"loss": [S]})`: the train step of
  `state.make_train_step` over a leading seed axis (host batches are placed here, split over
  the mesh along their batch axis); the bank constants are shared by the seeds."""
  repl = sharding.replicated(mesh)
  batch_split = NamedSharding(mesh, P(None, sharding.AXIS))  # seeds x (batch over devices)
  step = jax.vmap(make_train_step(model, tx), in_axes=(0, 0, 0, None))
  jitted = jax.jit(step, in_shardings=(repl, batch_split, repl, repl), out_shardings=(repl, repl),
                   donate_argnums=0)
  consts = jax.device_put(consts or {}, repl)
  return lambda states, batches, rngs: jitted(states, jax.device_put(batches, batch_split), rngs, consts)


def stack(trees):
  """Stacks pytrees (train states, batches, keys) along a new leading seed axis; host arrays
  (batches) stay on the host."""
  return jax.tree.map(lambda *xs: np.stack(xs) if isinstance(xs[0], np.ndarray) else jnp.stack(xs), *trees)


def train_seeds(data: SequenceData, backbone: str, workdirs: list[str | Path], train_cfg: TrainConfig,
                seeds: list[int], model_cfg: Any = None, side: Any = None, bank: Any = None, grasp: Any = None,
                **model_overrides) -> list[dict]:
  """Trains `backbone` once per seed in one vmapped program; seed `seeds[i]` writes `workdirs[i]`
  exactly as `loop.train_and_evaluate` would (`train_cfg.seed` is replaced by each seed).

  Returns the seeds' metrics.json dicts in the order of `seeds`; each also records
  `seeds_together` (its epoch seconds are those of the joint epoch).
  """
  if len(seeds) != len(workdirs) or len(set(seeds)) != len(seeds):
    raise ValueError(f"train_seeds needs one workdir per distinct seed: seeds {seeds}, workdirs {workdirs}")
  if len({Path(w).resolve() for w in workdirs}) != len(workdirs):
    raise ValueError(f"train_seeds: two seeds share a workdir: {workdirs}")
  setup = prepare(data, backbone, train_cfg, model_cfg, side, bank, grasp, **model_overrides)
  runs = [RunBook.open(setup, data, backbone, w, dataclasses.replace(train_cfg, seed=int(s)), bank, f"seed {s}: ")
          for w, s in zip(workdirs, seeds)]
  books, iters, states, rngs = (list(x) for x in zip(*runs))
  extra = {"seeds_together": [int(s) for s in seeds]}
  step = vmapped_step(setup.model, setup.tx, setup.mesh, setup.consts)
  results: dict[int, dict] = {}

  def finish(i):
    results[i] = books[i].finish(setup, states[i].params, data, backbone, bank, extra)

  active = [i for i, book in enumerate(books) if book.running]
  for i in set(range(len(books))) - set(active):
    finish(i)
  started = time.perf_counter()
  while active:
    for i in active:
      iters[i].start_epoch(books[i].epoch)
    stacked, keys = stack([states[i] for i in active]), jnp.stack([rngs[i] for i in active])
    t0 = time.perf_counter()
    losses = []
    bar = tqdm(zip(*(iters[i] for i in active), strict=True), total=setup.steps_per_epoch, unit="step",
               desc=f"epoch {min(books[i].epoch for i in active) + 1} ({len(active)} seeds)",
               disable=not train_cfg.progress, leave=False)
    for batches in bar:
      stacked, metrics = step(stacked, stack(batches), keys)
      losses.append(metrics["loss"])
    loss_S = np.mean(np.stack(jax.device_get(losses)), axis=0)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    valid_SxU = setup.evaluator.ranks_seeds(stacked.params, "valid")
    valid_s = time.perf_counter() - t1
    for j, i in enumerate(active):
      states[i] = jax.tree.map(lambda x, j=j: x[j], stacked)
      books[i].end_epoch(setup, states[i], float(loss_S[j]), train_s, (valid_SxU[j], valid_s))
      if not books[i].running:
        finish(i)
    active = [i for i in active if books[i].running]
    if over_budget(train_cfg, started):
      break
  for i in active:
    finish(i)
  return [results[i] for i in range(len(books))]
