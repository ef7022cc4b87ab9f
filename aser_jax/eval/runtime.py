"""Serving cost of Base vs Sens (the ASER paper's table 13 protocol).

A query is a user history; one timed iteration is the forward pass of a batch of 128 queries
plus scoring against the full catalogue, after 8 warm-up iterations, over 40 timed ones. The
fused item table of Sens depends on the frozen bank and the trained params only, so serving
computes it once after loading (its one-off cost is reported separately), exactly as the ID
table of Base is simply read. `bench_base_vs_sens` times the two in alternation, so that the
ratio does not depend on which of them a busy machine happened to slow down.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from aser_jax.bank.aggregate import Bank
from aser_jax.models import registry
from aser_jax.models.fusion import bank_variables


def _count(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def _served(backbone: str, num_items: int, bank: Bank | None, batch: int, seed: int, side, model_overrides: dict):
  """A compiled serving call (forward + full-catalogue scores of one batch) and its static facts."""
  overrides = dict(model_overrides)
  if bank is not None:
    overrides["bank_dim"] = int(bank.K.shape[-1])
  model, cfg = registry.build(backbone, num_items, side=side, **overrides)
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, cfg.max_len + 1, batch)
  ids = np.zeros((batch, cfg.max_len), np.int32)
  for b, n in enumerate(lengths):
    ids[b, cfg.max_len - n:] = rng.integers(1, num_items + 1, n)
  params = model.init({"params": jax.random.key(seed)}, ids[:1], method=model.score)["params"]
  variables = {"params": params, **(bank_variables(model, ids[:1], bank) if bank is not None else {})}

  table_fn = jax.jit(lambda v: model.apply(v, method=model.item_table))
  table = jax.block_until_ready(table_fn(variables))  # compile
  t = time.perf_counter()
  table = jax.block_until_ready(table_fn(variables))
  table_s = time.perf_counter() - t

  @jax.jit
  def serve(v, ids_BxL, table_NxD):
    u = model.apply(v, ids_BxL, False, table_NxD, method=model.encode)
    return u @ table_NxD.T

  ids_dev = jax.device_put(ids)
  fusion_params = 0
  items = params.get("items", {})
  if "fusion" in items:
    fusion_params = _count(items["fusion"]) + _count(items.get("late_proj", {}))
  facts = {
      "backbone": backbone, "variant": "Sens" if bank is not None else "Base", "num_items": num_items,
      "batch": batch, "learned_params": _count(params), "fusion_params": fusion_params,
      "table_build_ms_once": 1000 * table_s, "backend": jax.default_backend(),
  }
  return lambda: jax.block_until_ready(serve(variables, ids_dev, table)), facts


def _latency(facts: dict, times: list[float], warmup: int) -> dict:
  per_batch = float(np.median(times))
  return {
      **facts, "warmup": warmup, "iters": len(times),
      "ms_per_query": 1000 * per_batch / facts["batch"], "queries_per_s": facts["batch"] / per_batch,
      "ms_per_batch_median": 1000 * per_batch, "ms_per_batch_p90": 1000 * float(np.percentile(times, 90)),
  }


def _timed(call) -> float:
  t = time.perf_counter()
  call()
  return time.perf_counter() - t


def bench_base_vs_sens(backbone: str, num_items: int, bank: Bank, batch: int = 128, warmup: int = 8,
                       iters: int = 40, seed: int = 0, side=None, **model_overrides) -> dict:
  """Base and Sens timed in alternation (Base, Sens, then Sens, Base, ...), so a shared machine's
  changing load falls on both alike; `sens_over_base_latency` is the ratio of their medians."""
  base_call, base_facts = _served(backbone, num_items, None, batch, seed, side, model_overrides)
  sens_call, sens_facts = _served(backbone, num_items, bank, batch, seed, side, model_overrides)
  for _ in range(warmup):
    base_call()
    sens_call()
  base_t, sens_t = [], []
  for i in range(iters):
    order = ((base_call, base_t), (sens_call, sens_t))
    for call, times in order if i % 2 == 0 else order[::-1]:
      times.append(_timed(call))
  base, sens = _latency(base_facts, base_t, warmup), _latency(sens_facts, sens_t, warmup)
  return {"backbone": backbone, "base": base, "sens": sens, "interleaved": True,
          "sens_over_base_latency": sens["ms_per_query"] / base["ms_per_query"]}
