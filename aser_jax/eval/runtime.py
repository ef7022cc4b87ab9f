"""Serving cost of Base vs Sens, and of GRASP and R2END (the ASER paper's table 13 protocol).

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
from aser_jax.models.grasp import catalogue_terms, grasp_variables, served_scores


def _count(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def _served(backbone: str, num_items: int, bank: Bank | None, batch: int, seed: int, side, model_overrides: dict):
  """A compiled serving call (forward + full-catalogue scores of one batch) and its static facts."""
  overrides = dict(model_overrides)
  if bank is not None:
    overrides["bank_dim"] = int(bank.K.shape[-1])
  model, cfg = registry.build(backbone, num_items, side=side, **overrides)
  ids, _ = _queries(cfg.max_len, num_items, batch, seed)
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


def _grasp_served(backbone: str, tables, batch: int, seed: int, model_overrides: dict):
  """A compiled GRASP serving call: the batch's users (random rows) get every item's user-conditioned
  score; the item terms (`GraspItems.item_terms`) depend on params and tables only and are built once."""
  model, cfg = registry.build(backbone, tables.num_items, grasp_dim=tables.dim, grasp_users=tables.num_users,
                              **model_overrides)
  ids, rng = _queries(cfg.max_len, tables.num_items, batch, seed)
  users = jax.device_put(rng.integers(0, tables.num_users, batch).astype(np.int32))
  params = model.init({"params": jax.random.key(seed)}, ids[:1], method=model.score)["params"]
  variables = {"params": params, **grasp_variables(model, ids[:1], tables)}
  terms_fn = jax.jit(lambda v: model.apply(v, method=catalogue_terms))
  terms = jax.block_until_ready(terms_fn(variables))  # compile
  t = time.perf_counter()
  terms = jax.block_until_ready(terms_fn(variables))
  terms_s = time.perf_counter() - t

  serve = jax.jit(lambda v, ids_BxL, users_B, terms: model.apply(v, ids_BxL, users_B, terms, method=served_scores))

  ids_dev = jax.device_put(ids)
  facts = {"backbone": backbone, "variant": "GRASP", "num_items": tables.num_items, "batch": batch,
           "learned_params": _count(params), "grasp_params": _count(params["grasp"]),
           "table_build_ms_once": 1000 * terms_s, "backend": jax.default_backend()}
  return lambda: jax.block_until_ready(serve(variables, ids_dev, users, terms)), facts


def _r2end_served(encoder, num_items: int, tokens: int, proj_dim: int, batch: int, seed: int):
  """A compiled R2END serving call: the student encoder reads `batch` history texts of `tokens`
  tokens, the projection maps them, and every item is scored by cosine against the projected item
  table, which depends on params and the frozen tables only and is built once."""
  from aser_jax.models import r2end as R
  from aser_jax.models.encoders import sentence_embedding

  rng = np.random.default_rng(seed)
  ids = rng.integers(5, encoder.tokenizer.vocab_size, (batch, tokens)).astype(np.int32)
  mask = np.ones_like(ids)
  E_items = rng.normal(size=(num_items + 1, encoder.hidden)).astype(np.float32)
  proj = R.Projection(proj_dim)
  proj_params = proj.init(jax.random.key(seed), E_items[:1]).get("params", {})
  table_fn = jax.jit(lambda p, e: R.unit(proj.apply({"params": p}, e)))
  jax.block_until_ready(table_fn(proj_params, E_items))  # compile
  t = time.perf_counter()
  z_items = jax.block_until_ready(table_fn(proj_params, E_items))
  table_s = time.perf_counter() - t

  @jax.jit
  def serve(enc_params, p, ids_BxT, mask_BxT, z_NxP):
    e = sentence_embedding(encoder.module.apply({"params": enc_params}, ids_BxT, mask_BxT, False), mask_BxT)
    return R.unit(proj.apply({"params": p}, e)) @ z_NxP.T

  args = jax.device_put((encoder.params, proj_params, ids, mask, z_items))
  facts = {"backbone": "r2end", "variant": "R2END", "num_items": num_items, "batch": batch, "tokens": tokens,
           "encoder": encoder.name, "learned_params": _count(encoder.params) + _count(proj_params),
           "projection_params": _count(proj_params), "table_build_ms_once": 1000 * table_s,
           "backend": jax.default_backend()}
  return lambda: jax.block_until_ready(serve(*args)), facts


def _queries(max_len: int, num_items: int, batch: int, seed: int):
  """`batch` random histories of 3..max_len items, left-padded, and the generator that drew them."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, max_len + 1, batch)
  ids = np.zeros((batch, max_len), np.int32)
  for b, n in enumerate(lengths):
    ids[b, max_len - n:] = rng.integers(1, num_items + 1, n)
  return ids, rng


def bench_base_vs_sens(backbone: str, num_items: int, bank: Bank | None, batch: int = 128, warmup: int = 8,
                       iters: int = 40, seed: int = 0, side=None, grasp=None, r2end=None, **model_overrides) -> dict:
  """Base and Sens timed in alternation (Base, Sens, then Sens, Base, ...), so a shared machine's
  changing load falls on both alike; `sens_over_base_latency` is the ratio of their medians. With
  `grasp` tables (`bank.grasp.GraspTables`) GRASP joins the rotation (`grasp_over_base_latency`),
  and with `r2end` = (student encoder, history tokens, projection width) R2END does."""
  calls = {"base": _served(backbone, num_items, None, batch, seed, side, model_overrides)}
  if bank is not None:
    calls["sens"] = _served(backbone, num_items, bank, batch, seed, side, model_overrides)
  if grasp is not None:
    calls["grasp"] = _grasp_served(backbone, grasp, batch, seed, model_overrides)
  if r2end is not None:
    calls["r2end"] = _r2end_served(r2end[0], num_items, r2end[1], r2end[2], batch, seed)
  for _ in range(warmup):
    for call, _ in calls.values():
      call()
  times = {name: [] for name in calls}
  names = list(calls)
  for i in range(iters):
    for name in names if i % 2 == 0 else names[::-1]:
      times[name].append(_timed(calls[name][0]))
  out = {"backbone": backbone, "interleaved": True,
         **{name: _latency(calls[name][1], times[name], warmup) for name in names}}
  for name in names[1:]:
    out[f"{name}_over_base_latency"] = out[name]["ms_per_query"] / out["base"]["ms_per_query"]
  return out
