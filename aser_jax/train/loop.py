"""The training loop: epochs of the jitted step, validation, early stopping, checkpoints, resume.

Re-running with the same `workdir` resumes from the latest checkpoint (train state, data
iterator and early-stopping state), so a killed run finishes with the same metrics as an
uninterrupted one. The best epoch's params are exported to `<workdir>/best_params` and used
for the test evaluation written to `<workdir>/metrics.json`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from aser_jax import provenance
from aser_jax.data.pipeline import PipelineConfig, TrainIterator, steps_per_epoch
from aser_jax.data.sequences import SequenceData
from aser_jax.data.splits import TrainSamples, eval_split, train_item_counts, train_samples, train_sequences
from aser_jax.eval import ranking
from aser_jax.eval.significance import head_tail_split
from aser_jax.models import registry
from aser_jax.models.fusion import bank_variables, fusion_diagnostics
from aser_jax.models.grasp import catalogue_terms, grasp_variables, served_scores
from aser_jax.train import checkpoint, sharding
from aser_jax.train.state import adam, init_state, jit_train_step

log = logging.getLogger("aser_jax")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  lr: float = 1e-3
  batch_size: int = 256
  epochs: int = 200
  patience: int = 10  # epochs without improvement of `metric` before stopping
  metric: str = "NDCG@10"  # validation metric for early stopping and the best checkpoint
  seed: int = 0
  weight_decay: float = 0.0
  eval_chunk: int = 0  # users per evaluation chunk; 0 picks one from a 64 MB score budget
  data_workers: int = 0
  progress: bool = True
  empty_inputs: bool = False  # keep the reference's empty-input prefix samples (compatibility)
  # minutes of training in this invocation: it stops after the first epoch that ends past them and
  # tests the best epoch so far; re-running the same command continues (for a job's time limit)
  max_minutes: float | None = None


def _json_default(o):
  if isinstance(o, (np.integer, np.floating)):
    return o.item()
  raise TypeError(type(o))


class Evaluator:
  """Jitted full-ranking evaluation of one backbone on the validation and test splits."""

  def __init__(self, model, data: SequenceData, max_len: int, mesh, chunk: int = 0, consts: dict | None = None):
    self.mesh = mesh
    n_dev = mesh.devices.size
    per_user = getattr(model, "uses_users", False)
    # GRASP scores a chunk through a [chunk, I+1, hidden] activation: its chunks are sized for 512 MB
    # of it, and its item terms (params and tables only) are built once per pass, not per chunk
    width, budget = (model.cfg.hidden, 512 << 20) if per_user else (1, 64 << 20)
    self.chunk = sharding.round_up(chunk or ranking.default_chunk(data.num_items * width, budget), n_dev)
    self.splits = {w: eval_split(data, max_len, w) for w in ("valid", "test")}
    self.consts = jax.device_put(consts or {}, sharding.replicated(mesh))
    self.per_user = per_user
    seed_axes = {"params": 0, **{k: None for k in self.consts}}
    if per_user:
      terms = lambda variables: model.apply(variables, method=catalogue_terms)
      self.terms_fn = jax.jit(terms)
      self.terms_fn_seeds = jax.jit(jax.vmap(terms, in_axes=(seed_axes,)))
      score = lambda v, ids, users: model.apply(v["vars"], ids, users, v["terms"], method=served_scores)
      seed_axes = {"vars": seed_axes, "terms": 0}
    else:
      score = lambda variables, ids, users: model.apply(variables, ids, method=model.score)
    self.rank_fn = ranking.make_rank_fn(score)
    # several seeds' params ranked by one program (train.seeds), the constants shared
    self.rank_fn_seeds = ranking.make_rank_fn(score, seed_axes)

  def _variables(self, params, seeds: bool = False):
    variables = {"params": params, **self.consts}
    if not self.per_user:
      return variables
    return {"vars": variables, "terms": (self.terms_fn_seeds if seeds else self.terms_fn)(variables)}

  def _put(self, arrays):
    return sharding.put_batch(self.mesh, arrays)

  def ranks(self, params, which: str, progress: bool = False) -> np.ndarray:
    return ranking.evaluate_ranks(self.rank_fn, self._variables(params), self.splits[which],
                                  self.chunk, progress, desc=which, put=self._put)

  def ranks_seeds(self, params_S, which: str) -> np.ndarray:
    """`[S, users]` ranks of S models whose params are stacked on a leading axis; the chunk is
    cut S-fold, so the S score matrices stay within one chunk's memory budget."""
    n_dev = self.mesh.devices.size
    s = jax.tree.leaves(params_S)[0].shape[0]
    chunk = sharding.round_up(max(1, self.chunk // s), n_dev)
    return ranking.evaluate_ranks(self.rank_fn_seeds, self._variables(params_S, seeds=True), self.splits[which],
                                  chunk, put=self._put)


def training_samples(model, data: SequenceData, empty_inputs: bool = False) -> TrainSamples:
  """The module's training samples, chosen by its attribute `sample_mode`: "prefix" (default,
  prefix augmentation; `empty_inputs` keeps the reference's empty-input samples), "sequence"
  (whole training sequences, e.g. BERT4Rec's masking) or "next_items" (whole sequences one item
  longer than `max_len`, so inputs and next-item targets both span L positions)."""
  mode = getattr(model, "sample_mode", "prefix")
  if mode == "sequence":
    return train_sequences(data, model.cfg.max_len, getattr(model.cfg, "repeats", 1))
  if mode == "next_items":
    return train_sequences(data, model.cfg.max_len + 1)
  if mode == "prefix":
    return train_samples(data, model.cfg.max_len, empty_inputs)
  raise ValueError(f"unknown sample_mode {mode!r} of {type(model).__name__}")


@dataclasses.dataclass
class Setup:
  """What every run of one (data, backbone, settings) shares: model, samples, evaluator, optimiser."""
  model: Any
  model_cfg: Any
  consts: dict
  mesh: Any
  samples: TrainSamples
  steps_per_epoch: int
  evaluator: Evaluator
  tx: Any
  grasp: str | None = None  # digest of the GRASP tables, if the model has the channel


def prepare(data: SequenceData, backbone: str, train_cfg: TrainConfig, model_cfg: Any = None, side: Any = None,
            bank: Any = None, grasp: Any = None, **model_overrides) -> Setup:
  """Builds the model (fused with `bank`, or with the GRASP channel's `grasp` tables, if given),
  its training samples and the evaluator."""
  consts = {}
  if grasp is not None:
    if (grasp.num_users, grasp.num_items) != (data.num_users, data.num_items):
      raise ValueError(f"GRASP tables have {grasp.num_users} users and {grasp.num_items} items, "
                       f"data has {data.num_users} and {data.num_items}")
    model_overrides = {**model_overrides, "grasp_dim": grasp.dim, "grasp_users": grasp.num_users}
  if bank is not None:
    if bank.num_items != data.num_items:
      raise ValueError(f"bank has {bank.num_items} items, data has {data.num_items}")
    model_overrides = {**model_overrides, "bank_dim": int(bank.K.shape[-1])}
  model, model_cfg = registry.build(backbone, data.num_items, model_cfg, side, **model_overrides)
  if bank is not None:
    consts = bank_variables(model, np.zeros((1, model_cfg.max_len), np.int32), bank)
  if grasp is not None:
    consts = {**consts, **grasp_variables(model, np.zeros((1, model_cfg.max_len), np.int32), grasp)}
  mesh = sharding.data_mesh()
  if train_cfg.batch_size % mesh.devices.size:
    raise ValueError(f"batch_size {train_cfg.batch_size} is not divisible by {mesh.devices.size} devices")
  samples = training_samples(model, data, train_cfg.empty_inputs)
  n_steps = steps_per_epoch(samples, PipelineConfig(train_cfg.batch_size, train_cfg.seed, train_cfg.data_workers))
  evaluator = Evaluator(model, data, model_cfg.max_len, mesh, train_cfg.eval_chunk, consts)
  return Setup(model, model_cfg, consts, mesh, samples, n_steps, evaluator, adam(train_cfg.lr, train_cfg.weight_decay),
               None if grasp is None else tables_digest(grasp.arrays()))


def initial_state(setup: Setup, seed: int):
  """The seed's initial train state, replicated over the mesh."""
  sample_batch = {"input_ids": setup.samples.inputs[:1]}
  return jax.device_put(init_state(setup.model, setup.tx, sample_batch, seed), sharding.replicated(setup.mesh))


class RunBook:
  """One run's record in its `workdir`: Orbax checkpoints (train state, data iterator, early
  stopping), `log.csv`, `best_params/`, and at the end the test ranks and `metrics.json`.

  `train_and_evaluate` keeps one; `train.seeds` keeps one per seed of runs trained together, so
  each seed's folder is the same as a run of its own and either kind of run resumes it.
  """

  def __init__(self, workdir: str | Path, fingerprint: dict, train_cfg: TrainConfig, data_iter: TrainIterator,
               with_bank: bool, tag: str = ""):
    self.workdir, self.cfg, self.data_iter, self.tag = Path(workdir), train_cfg, data_iter, tag
    self.workdir.mkdir(parents=True, exist_ok=True)
    self.fingerprint = fingerprint
    self.ckpts = checkpoint.Checkpoints(self.workdir)
    self.loop = {"epoch": 0, "best": -1.0, "best_epoch": -1, "bad_epochs": 0, "done": False,
                 "best_valid": {}, "epoch_seconds": [], "valid_seconds": []}
    self.header = ["epoch", "step", "loss", "seconds", *(f"valid_{k}" for k in _metric_names())]
    if with_bank:
      self.header.append("sensory_alpha")  # the α trajectory, for diagnosing what the blend learns
    self._log_file = None

  def resume(self, state):
    """Restores the latest checkpoint onto `state` (refusing one trained with other settings),
    readies `log.csv`, and returns the state to continue from."""
    latest = self.ckpts.latest()
    if latest is not None:
      state, self.loop = self.ckpts.restore(latest, state)
      check_resume(self.loop.get("run"), self.fingerprint, self.ckpts.dir)
      self.data_iter.set_state(self.loop["data"])
      log.info("%sresumed from %s at epoch %d", self.tag, self.ckpts.dir, self.loop["epoch"])
    self.loop["run"] = self.fingerprint
    self.header = _resume_log(self.workdir / "log.csv", self.loop["epoch"], self.header)
    self._log_file = open(self.workdir / "log.csv", "a", newline="")
    return state

  @property
  def epoch(self) -> int:
    return self.loop["epoch"]

  @property
  def running(self) -> bool:
    return not self.loop["done"] and self.loop["epoch"] < self.cfg.epochs

  @classmethod
  def open(cls, setup: Setup, data: SequenceData, backbone: str, workdir: str | Path, train_cfg: TrainConfig,
           bank=None, tag: str = ""):
    """A run's book, its data iterator, its state (resumed from `workdir` if it holds one) and its
    step RNG `key(seed + 1)`: all that is the run's own, whatever loop trains it."""
    data_iter = TrainIterator(setup.samples, PipelineConfig(train_cfg.batch_size, train_cfg.seed,
                                                            train_cfg.data_workers))
    fingerprint = run_fingerprint(data, backbone, setup.model_cfg, train_cfg, len(setup.samples), bank)
    if setup.grasp is not None:  # absent otherwise, so fingerprints from before GRASP still match
      fingerprint["grasp"] = setup.grasp
    book = cls(workdir, fingerprint, train_cfg, data_iter, bank is not None, tag)
    state = book.resume(initial_state(setup, train_cfg.seed))
    return book, data_iter, state, jax.random.key(train_cfg.seed + 1)

  def end_epoch(self, setup: Setup, state, loss: float, train_s: float, validated=None) -> None:
    """Validation, early stopping, the best params, the epoch's log row, then the checkpoint.

    `validated`: `(valid ranks, seconds)` when the caller has ranked the validation split
    already (`train.seeds` ranks all seeds at once)."""
    if validated is None:
      t1 = time.perf_counter()
      validated = setup.evaluator.ranks(state.params, "valid"), time.perf_counter() - t1
    valid, valid_s = ranking.metrics_from_ranks(validated[0]), validated[1]
    loop, epoch = self.loop, self.loop["epoch"]
    loop["epoch_seconds"].append(train_s)
    loop["valid_seconds"].append(valid_s)
    score = valid[self.cfg.metric]
    if score > loop["best"]:
      loop.update(best=score, best_epoch=epoch, bad_epochs=0, best_valid=valid)
      checkpoint.save_params(self.workdir / "best_params", state.params)
    else:
      loop["bad_epochs"] += 1
      loop["done"] = loop["bad_epochs"] >= self.cfg.patience
    log.info("%sepoch %d loss %.4f valid %s %.4f (best %.4f @ %d) %.1fs + %.1fs", self.tag, epoch + 1, loss,
             self.cfg.metric, score, loop["best"], loop["best_epoch"] + 1, train_s, valid_s)
    row = [epoch + 1, int(state.step), f"{loss:.6f}", f"{train_s:.3f}", *(f"{valid[k]:.6f}" for k in _metric_names())]
    if "sensory_alpha" in self.header:
      alpha = _blend_alpha(state.params)
      row.append("" if alpha is None else f"{alpha:.6f}")
    csv.writer(self._log_file).writerow(row)
    self._log_file.flush()
    loop["epoch"] = epoch + 1
    self.data_iter.start_epoch(epoch + 1)
    loop["data"] = self.data_iter.get_state()
    self.ckpts.save(epoch + 1, state, loop)

  def finish(self, setup: Setup, like_params, data: SequenceData, backbone: str, bank=None,
             extra: dict | None = None) -> dict:
    """Tests the best epoch's params and writes `test_ranks.npy` and `metrics.json` (returned)."""
    self.ckpts.close()
    if self._log_file is not None:
      self._log_file.close()
    loop, cfg = self.loop, self.cfg
    # the loop ends by patience, at the cap (or a resume with a lower --epochs), or by --max_minutes
    stopped_by = "patience" if loop["done"] else "epochs" if loop["epoch"] >= cfg.epochs else "max_minutes"
    if stopped_by == "max_minutes":
      log.info("%sstopped by --max_minutes=%g after epoch %d; re-run to continue", self.tag, cfg.max_minutes,
               loop["epoch"])
    best = checkpoint.load_params(self.workdir / "best_params", like_params)
    best = jax.device_put(best, sharding.replicated(setup.mesh))
    test_ranks = setup.evaluator.ranks(best, "test")
    np.save(self.workdir / "test_ranks.npy", test_ranks)
    secs = loop["epoch_seconds"]
    result = {
        "data": data.name,
        "synthetic": bool(data.synthetic),
        "backbone": backbone,
        "model_config": dataclasses.asdict(setup.model_cfg),
        "train_config": dataclasses.asdict(cfg),
        "num_users": data.num_users,
        "num_items": data.num_items,
        "train_samples": len(setup.samples),
        "devices": setup.mesh.devices.size,
        "num_params": int(sum(x.size for x in jax.tree.leaves(best))),
        "bank": loop["run"]["bank"],  # digest of the fused bank's arrays (None for Base)
        "grasp": loop["run"].get("grasp"),  # digest of the GRASP channel's tables, if any
        "sensory_alpha": _blend_alpha(best),
        "fusion": None if bank is None else fusion_diagnostics(jax.device_get(best), bank,
                                                               setup.model_cfg.fusion == "early",
                                                               setup.model_cfg.blend),
        "valid": loop["best_valid"],
        "test": ranking.metrics_from_ranks(test_ranks),
        # GRASP's Pareto view: the 20% of users with the longest training histories, the 20% of items
        # with the most training interactions (by test target), and the rest
        "test_head_tail": head_tail_split(test_ranks, np.array([max(len(q) - 2, 0) for q in data.sequences]),
                                          setup.evaluator.splits["test"].targets, train_item_counts(data)),
        "epochs": loop["epoch"],
        "best_epoch": loop["best_epoch"] + 1,
        "stopped_early": stopped_by == "patience",
        "stopped_by": stopped_by,
        "seconds_per_epoch": float(np.mean(secs)) if secs else None,
        # the median is not moved by the first epoch's compile or by a paused process
        "seconds_per_epoch_median": float(np.median(secs)) if secs else None,
        "seconds_per_validation": float(np.mean(loop["valid_seconds"])) if loop["valid_seconds"] else None,
        **(extra or {}),
        "environment": provenance.environment(),
    }
    (self.workdir / "metrics.json").write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    return result


def over_budget(train_cfg: TrainConfig, started: float) -> bool:
  """Whether this invocation's `max_minutes` have passed since `started` (a perf_counter time)."""
  return train_cfg.max_minutes is not None and time.perf_counter() - started > 60 * train_cfg.max_minutes


def train_and_evaluate(data: SequenceData, backbone: str, workdir: str | Path, train_cfg: TrainConfig,
                       model_cfg: Any = None, side: Any = None, bank: Any = None, grasp: Any = None,
                       **model_overrides) -> dict:
  """Trains `backbone` on `data` with early stopping, then tests the best epoch; returns metrics.json's dict.

  `bank`: an item facet bank (`aser_jax.bank.Bank`) to fuse into the item table (Sens); it is
  passed as frozen constants and never trained or checkpointed. `grasp`: the GRASP channel's
  tables (`aser_jax.bank.grasp.GraspTables`), frozen the same way.

  `side`: item side information for backbones that need it (see `registry.build`).
  """
  setup = prepare(data, backbone, train_cfg, model_cfg, side, bank, grasp, **model_overrides)
  mesh = setup.mesh
  book, data_iter, state, rng = RunBook.open(setup, data, backbone, workdir, train_cfg, bank)
  step_fn = jit_train_step(setup.model, setup.tx, mesh, setup.consts)
  started = time.perf_counter()
  while book.running:
    epoch = book.epoch
    data_iter.start_epoch(epoch)
    t0 = time.perf_counter()
    losses = []
    bar = tqdm(data_iter, total=setup.steps_per_epoch, desc=f"epoch {epoch + 1}", unit="step",
               disable=not train_cfg.progress, leave=False)
    for batch in bar:
      state, metrics = step_fn(state, sharding.put_batch(mesh, batch), rng)
      losses.append(metrics["loss"])
      if len(losses) % 50 == 0:
        bar.set_postfix(loss=f"{float(losses[-1]):.4f}")
    loss = float(np.mean(jax.device_get(losses)))
    book.end_epoch(setup, state, loss, time.perf_counter() - t0)
    if over_budget(train_cfg, started):
      break
  return book.finish(setup, state.params, data, backbone, bank)


# Train settings a resumed run may change: how long it runs and how it shows progress.
_RESUMABLE_CHANGES = ("epochs", "patience", "progress", "eval_chunk", "data_workers", "max_minutes")


def run_fingerprint(data: SequenceData, backbone: str, model_cfg, train_cfg: TrainConfig, num_samples: int,
                    bank=None) -> dict:
  """What a checkpoint was trained on: data, backbone config, train settings and the bank's digest."""
  digest = None if bank is None else bank_digest(bank)
  train = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in _RESUMABLE_CHANGES}
  run = {"data": data.name, "users": data.num_users, "items": data.num_items, "train_samples": num_samples,
         "backbone": backbone, "model": dataclasses.asdict(model_cfg), "train": train, "bank": digest}
  return json.loads(json.dumps(run, default=_json_default))


def bank_digest(bank) -> str:
  """A short digest of a bank's arrays: which bank a run fused, whatever its file was called."""
  return tables_digest(bank.arrays())


def tables_digest(arrays: dict) -> str:
  """A short digest of named arrays (a bank's, the GRASP tables)."""
  h = hashlib.sha256()
  for name, arr in sorted(arrays.items()):
    h.update(name.encode())
    h.update(np.ascontiguousarray(arr).tobytes())
  return h.hexdigest()[:16]


# Settings added after run fingerprints were, by (backbone or "*", setting), with the value that does
# what older versions did: a checkpoint whose fingerprint lacks one resumes when the run keeps it.
_ADDED_SETTINGS = {("*", "model.blend"): "convex", ("bert4rec", "model.loss"): "mlm",
                   ("*", "model.grasp_dim"): 0, ("*", "model.grasp_users"): 0, ("*", "model.grasp_ids"): False}
_MISSING = object()


def _added_later(backbone: str, name: str, saved_has_it: bool, value) -> bool:
  if saved_has_it:
    return False
  old = _ADDED_SETTINGS.get((backbone, name), _ADDED_SETTINGS.get(("*", name), _MISSING))
  return old is not _MISSING and value == old


def check_resume(saved: dict | None, current: dict, where) -> None:
  """Refuses to resume a checkpoint trained with other settings (a changed default or flag would
  otherwise silently mix two runs); checkpoints from before fingerprints only get a warning."""
  if saved is None:
    log.warning("%s has no run fingerprint (written by an older version): resuming unchecked", where)
    return
  diffs = []
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key), current.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += [f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k) and not _added_later(current.get("backbone"), f"{key}.{k}", k in a, b.get(k))]
    elif a != b:
      diffs.append(f"{key}: {a!r} -> {b!r}")
  if diffs:
    raise ValueError(f"{where} holds a run with other settings ({'; '.join(diffs)}); use a new --workdir "
                     "or pass the original settings")


def _blend_alpha(params) -> float | None:
  """The learned sensory blend α = σ(a) (ASER_SPEC §5), or None for a model without a bank."""
  found = [v for path, v in jax.tree_util.tree_leaves_with_path(params)
           if getattr(path[-1], "key", None) == "blend_logit"]
  return float(jax.nn.sigmoid(found[0])) if found else None


def _resume_log(path: Path, epochs_done: int, header: list[str]) -> list[str]:
  """Readies `log.csv` for appending epoch rows and returns its columns.

  A resumed run keeps its log's columns and drops rows of epochs after the restored checkpoint
  (a killed run may have logged them). A missing or empty log (a run killed before its first
  epoch) gets `header`, written and closed at once so that a later kill cannot leave it headerless;
  a headerless log left by older versions gets `header` put back in front of its rows. A last
  line without its newline was torn by a kill mid-write; it is dropped (every row is written
  before its epoch's checkpoint, so a torn row always belongs to an epoch that is redone).
  """
  text = path.read_text() if path.exists() else ""
  lines = text.splitlines()
  torn = bool(text) and not text.endswith("\n")
  rows = [r for r in csv.reader(lines[:-1] if torn else lines) if r]
  headed = bool(rows) and rows[0][0] == "epoch"
  if not headed:
    rows = [header, *rows]
  kept = rows[:1] + [r for r in rows[1:] if int(r[0]) <= epochs_done]
  if torn or not headed or len(kept) != len(rows):
    with open(path, "w", newline="") as f:
      csv.writer(f).writerows(kept)
  return kept[0]


def _metric_names():
  return [f"{m}@{k}" for k in ranking.KS for m in ("HR", "NDCG")]
