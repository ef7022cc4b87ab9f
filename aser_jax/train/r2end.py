"""Training and full-ranking evaluation of the R2END channel (BACKBONES.md "R2END channel").

Three stages in one `workdir`, each resumable:
1. distillation (`user_encoder="distilled"`, `train.r2end_distill`): the student encoder,
   initialised from the frozen encoder, learns `H_u -> e^R_u` by MSE on the train cases
   (checkpoints every `checkpoint_every` steps; exported params-only to `encoder_params/`);
2. user embeddings of the train, valid and test histories (sharded `.npy` in `users/`);
3. the shared projection, trained with InfoNCE + L_reg for `epochs`, validated each epoch; the
   best epoch's params (`best_params/`) rank the test users by `cos(z_u, z_i)`.

`user_encoder="frozen"` skips stage 1 (the pretrained encoder embeds the histories) and
`"mean_pool"` replaces the encoder by the mean of the history items' embeddings (the paper's
"w.o. text encoder"). `proj_dim=0` ranks by the raw cosine ("w.o. projection"), `reg_weight=0`
drops L_reg. No text model runs at serving time beyond the student encoder, as in the paper.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from aser_jax import provenance
from aser_jax.bank import r2end as tables_lib
from aser_jax.bank.shards import embed_sharded
from aser_jax.data.io import write_text_atomic
from aser_jax.data.sequences import SequenceData
from aser_jax.data.splits import eval_split, train_item_counts
from aser_jax.eval import ranking
from aser_jax.eval.significance import head_tail_split
from aser_jax.models import r2end as M
from aser_jax.models.encoders import Encoder, SentenceEmbedder
from aser_jax.train import sharding
from aser_jax.train.checkpoint import Checkpoints, load_params, save_params
from aser_jax.train.loop import check_resume, tables_digest
from aser_jax.train.r2end_distill import distill, shuffled_batches
from aser_jax.train.state import TrainState, weighted_mean

log = logging.getLogger("aser_jax")
USER_ENCODERS = ("distilled", "frozen", "mean_pool")


@dataclasses.dataclass(frozen=True)
class R2endConfig:
  """Defaults are the paper's (appendix D); `max_len` and `n_recent` bound the history text."""

  user_encoder: str = "distilled"  # distilled | frozen | mean_pool
  encoder: str = "all-minilm-l6-v2"  # the student's starting point; the tables' encoder should match
  encoder_path: str | None = None
  n_recent: int = 8
  max_len: int = 256
  distill_epochs: int = 1
  distill_batch: int = 16
  distill_lr: float = 1e-5
  distill_max_steps: int = 0  # 0: every train case `distill_epochs` times
  proj_dim: int = 512  # 0: no projection
  tau: float = 0.07
  negatives: int = 99
  reg_weight: float = 0.5
  epochs: int = 10
  batch_size: int = 128
  lr: float = 1e-4
  select_metric: str = "NDCG@10"
  seed: int = 0
  embed_batch: int = 64
  checkpoint_every: int = 200  # distillation steps between checkpoints

  def __post_init__(self):
    if self.user_encoder not in USER_ENCODERS:
      raise ValueError(f"user_encoder must be one of {USER_ENCODERS}, got {self.user_encoder!r}")


_NOT_IN_FINGERPRINT = ("embed_batch", "checkpoint_every", "epochs")  # may change on resume


def make_projection_step(proj: M.Projection, tx, cfg: R2endConfig, num_items: int):
  """The pure step `(state, batch, rng, E_items) -> (state, metrics)` of eq. 7-9; negatives are
  drawn inside the step from `fold_in(rng, step)`."""

  def step(state: TrainState, batch: dict, rng: jax.Array, E_items: jax.Array):
    neg_BxK = M.sample_negatives(jax.random.fold_in(rng, state.step), batch["pos"], num_items, cfg.negatives)

    def loss_fn(params):
      f = lambda e: proj.apply({"params": params}, e)
      total, nce, reg = M.contrastive_loss(f(batch["e_u"]), f(E_items[batch["pos"]]), f(E_items[neg_BxK]),
                                           cfg.tau, cfg.reg_weight)
      w = batch["weight"]
      return weighted_mean(total, w), {"nce": weighted_mean(nce, w), "reg": weighted_mean(reg, w)}

    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), {"loss": loss, **parts}

  return step


def mean_pool_users(data: SequenceData, which: str, E_items: np.ndarray, n_recent: int) -> np.ndarray:
  """`e_u` of the "w.o. text encoder" variant: the unit mean of the latest `n_recent` history
  items' embeddings (items without text skipped; zeros when none has)."""
  has = np.any(E_items != 0, axis=1)
  out = np.zeros((data.num_users, E_items.shape[1]), np.float32)
  for r, seq in enumerate(data.sequences):
    hist = [int(i) for i in tables_lib.case(seq, which)[0] if has[int(i)]][-n_recent:]
    if hist:
      v = E_items[hist].mean(0)
      out[r] = v / max(float(np.linalg.norm(v)), 1e-12)
  return out


def user_embeddings(workdir: Path, data: SequenceData, texts: dict[str, list[str]], tables: tables_lib.R2endTables,
                    cfg: R2endConfig, embed_fn, progress: bool) -> dict[str, np.ndarray]:
  """Stage 2: `e_u` [num_users, E] of every user's train, valid and test case (`texts`: each
  case's history texts)."""
  if cfg.user_encoder == "mean_pool":
    return {w: mean_pool_users(data, w, tables.E_items, cfg.n_recent) for w in tables_lib.CASES}
  shard_dir = workdir / "users"
  shard_dir.mkdir(parents=True, exist_ok=True)
  out = {w: embed_sharded(w, t, shard_dir, embed_fn, 4096, progress, "r2end users") for w, t in texts.items()}
  E = tables.dim
  return {w: a if a.shape[1] else np.zeros((len(a), E), np.float32) for w, a in out.items()}


class _Ranker:
  """Ranks a split's users by `cos(z_u, z_i)` over the whole catalogue, history excluded."""

  def __init__(self, proj: M.Projection, data: SequenceData, mesh):
    self.proj, self.mesh = proj, mesh
    self.splits = {w: eval_split(data, 1, w) for w in ("valid", "test")}
    self.chunk = sharding.round_up(ranking.default_chunk(data.num_items), mesh.devices.size)
    self.rank_fn = ranking.make_rank_fn(lambda z, ids, users: z["u"][users] @ z["i"].T)
    self.project = jax.jit(lambda params, e: M.unit(proj.apply({"params": params}, e)))

  def ranks(self, params, e_users: np.ndarray, E_items: np.ndarray, which: str) -> np.ndarray:
    z = {"u": self.project(params, e_users), "i": self.project(params, E_items)}
    return ranking.evaluate_ranks(self.rank_fn, z, self.splits[which], self.chunk,
                                  put=lambda a: sharding.put_batch(self.mesh, a))


def _write_log(path: Path, history: list[dict]) -> None:
  cols = ["epoch", "loss", "nce", "reg", "seconds", *(f"valid_{k}" for k in
                                                      (f"{m}@{k}" for k in ranking.KS for m in ("HR", "NDCG")))]
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(cols)
  for h in history:
    w.writerow([h.get(c, h.get("valid", {}).get(c.removeprefix("valid_"), "")) for c in cols])
  write_text_atomic(path, buf.getvalue())


def _load_student(cfg: R2endConfig) -> Encoder:
  from aser_jax.models.encoders import load_encoder

  return load_encoder(cfg.encoder, path=cfg.encoder_path, max_len=cfg.max_len)


def train_r2end(data: SequenceData, item_texts, tables_path: str | os.PathLike, workdir: str | os.PathLike,
                cfg: R2endConfig = R2endConfig(), encoder: Encoder | None = None, mesh=None,
                progress: bool = True) -> dict:
  """All three stages; writes `metrics.json`, `log.csv`, `test_ranks.npy`, `best_params/` (and
  `encoder_params/` when distilling) and returns the metrics. `encoder` overrides `cfg.encoder`."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = mesh if mesh is not None else sharding.data_mesh()
  tables = tables_lib.load_r2end_tables(tables_path)
  if (tables.num_items, tables.num_users) != (data.num_items, data.num_users):
    raise ValueError(f"{tables_path}: tables of {tables.num_users} users / {tables.num_items} items, the data "
                     f"{data.name} has {data.num_users} / {data.num_items}")
  if data.num_items < 2:
    raise ValueError("R2END needs at least two items to draw negatives")
  fingerprint = {"data": data.name, "users": data.num_users, "items": data.num_items, "channel": "r2end",
                 "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_IN_FINGERPRINT},
                 "tables": tables_digest(tables.arrays())}
  run_path = workdir / "run.json"
  if run_path.exists():
    check_resume(json.loads(run_path.read_text()), fingerprint, workdir)
  write_text_atomic(run_path, json.dumps(fingerprint, indent=1) + "\n")

  meta = tables_lib.item_metadata(item_texts, data.num_items)
  texts = {w: tables_lib.history_texts(data, w, meta, cfg.n_recent) for w in tables_lib.CASES}
  train_texts = texts["train"]
  rows = np.array([r for r, t in enumerate(train_texts) if t and np.any(tables.E_targets[r])], np.int64)
  pos = np.array([tables_lib.case(data.sequences[r], "train")[1] for r in rows], np.int32)
  if not len(rows):
    raise ValueError(f"{data.name}: no user has a titled train history and a target embedding")
  distilled = None
  if cfg.user_encoder != "mean_pool":
    enc = encoder if encoder is not None else _load_student(cfg)
    if enc.hidden != tables.dim:
      raise ValueError(f"{tables_path}: tables of width {tables.dim} (encoder {tables.meta.get('encoder')!r}) "
                       f"cannot train student encoder {enc.name!r} of width {enc.hidden}; build the tables with "
                       "the student's encoder or use --user_encoder=mean_pool")
    if cfg.user_encoder == "distilled":
      params, distilled = distill(workdir, enc, [train_texts[r] for r in rows], tables.E_targets[rows], cfg, mesh,
                                  progress)
      enc = dataclasses.replace(enc, params=params)
    embedder = SentenceEmbedder(enc)  # one instance: its jitted encoder compiles once per length bucket
    embed_fn = lambda texts: embedder(texts, cfg.embed_batch)
  else:
    embed_fn = None
  e_users = user_embeddings(workdir, data, texts, tables, cfg, embed_fn, progress)

  proj = M.Projection(cfg.proj_dim)
  E_items = jnp.asarray(tables.E_items)
  params = proj.init(jax.random.key(cfg.seed), E_items[:1]).get("params", {})
  trainable = bool(jax.tree.leaves(params))
  tx = optax.adam(cfg.lr)
  repl = sharding.replicated(mesh)
  state = jax.device_put(TrainState(jnp.zeros((), jnp.int32), params, tx.init(params)), repl)
  ranker = _Ranker(proj, data, mesh)
  ckpts = Checkpoints(workdir)
  loop = {"epoch": 0, "best": -1.0, "best_epoch": 0, "history": []}
  if ckpts.latest() is not None:
    state, loop = ckpts.restore(ckpts.latest(), state)
    log.info("r2end projection resumed at epoch %d", loop["epoch"])
  epochs = cfg.epochs if trainable else 0  # no projection: nothing to train
  if loop["epoch"] == 0:  # the untrained projection (or none) is epoch 0's candidate
    valid = ranking.metrics_from_ranks(ranker.ranks(state.params, e_users["valid"], tables.E_items, "valid"))
    loop.update(best=valid[cfg.select_metric], best_epoch=0, best_valid=valid, valid_epoch0=valid)
    log.info("r2end epoch 0 (untrained projection) valid %s %.4f", cfg.select_metric, valid[cfg.select_metric])
    if trainable:
      save_params(workdir / "best_params", jax.device_get(state.params))
  if epochs:
    step_fn = jax.jit(make_projection_step(proj, tx, cfg, data.num_items),
                      in_shardings=(repl, sharding.batch_sharded(mesh), repl, repl), out_shardings=(repl, repl),
                      donate_argnums=0)
    E_rep = jax.device_put(E_items, repl)
    rng = jax.random.key(cfg.seed + 1)
    e_train = e_users["train"][rows]
    for epoch in range(loop["epoch"], epochs):
      t0, sums, n = time.perf_counter(), {}, 0
      batches = shuffled_batches(len(rows), sharding.round_up(cfg.batch_size, mesh.devices.size), cfg.seed, epoch)
      for idx, weight in tqdm(list(batches), desc=f"r2end epoch {epoch + 1}/{epochs}", unit="step",
                              disable=not progress, leave=False):
        batch = {"e_u": e_train[idx], "pos": pos[idx], "weight": weight}
        state, m = step_fn(state, sharding.put_batch(mesh, batch), rng, E_rep)
        for k, v in m.items():
          sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
      secs = time.perf_counter() - t0
      valid = ranking.metrics_from_ranks(ranker.ranks(state.params, e_users["valid"], tables.E_items, "valid"))
      loop["history"].append({"epoch": epoch + 1, **{k: v / n for k, v in sums.items()}, "seconds": secs,
                              "valid": valid})
      if valid[cfg.select_metric] > loop["best"]:
        loop.update(best=valid[cfg.select_metric], best_epoch=epoch + 1, best_valid=valid)
        save_params(workdir / "best_params", jax.device_get(state.params))
      loop["epoch"] = epoch + 1
      _write_log(workdir / "log.csv", loop["history"])
      log.info("r2end epoch %d loss %.4f valid %s %.4f (best %.4f @ %d)", epoch + 1, sums["loss"] / n,
               cfg.select_metric, valid[cfg.select_metric], loop["best"], loop["best_epoch"])
      ckpts.save(epoch + 1, state, loop)
  ckpts.close()
  best = load_params(workdir / "best_params", jax.device_get(state.params)) if trainable else params
  test_ranks = ranker.ranks(best, e_users["test"], tables.E_items, "test")
  np.save(workdir / "test_ranks.npy", test_ranks)
  result = {
      "channel": "r2end", "data": data.name, "synthetic": bool(data.synthetic), "num_users": data.num_users,
      "num_items": data.num_items, "train_users": int(len(rows)), "devices": int(mesh.devices.size), "config": dataclasses.asdict(cfg),
      "tables": {**tables.meta, "digest": fingerprint["tables"]}, "distill": distilled,
      "num_params": int(sum(x.size for x in jax.tree.leaves(best))),
      "valid": loop["best_valid"], "test": ranking.metrics_from_ranks(test_ranks),
      "test_head_tail": head_tail_split(test_ranks, np.array([max(len(q) - 2, 0) for q in data.sequences]),
                                        ranker.splits["test"].targets, train_item_counts(data)),
      "epochs": loop["epoch"], "best_epoch": loop["best_epoch"], "valid_epoch0": loop.get("valid_epoch0"),
      "history": loop["history"],
      "environment": provenance.environment(),
  }
  write_text_atomic(workdir / "metrics.json", json.dumps(result, indent=2) + "\n")
  return result
