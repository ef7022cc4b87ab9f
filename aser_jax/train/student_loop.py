"""Student training (ASER_SPEC §3): phase A then phase B, AdamW with separate encoder and head
learning rates and linear warmup, domain- and source-balanced batches, Orbax checkpoints per
epoch with resume, and the table-8 validation metrics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from aser_jax import provenance
from aser_jax.bank.facets import FACETS
from aser_jax.models import student as S
from aser_jax.supervision import store
from aser_jax.supervision.examples import balanced_batches, domain_token, special_tokens, UNK_DOMAIN
from aser_jax.train.checkpoint import Checkpoints, load_params, save_params
from aser_jax.train.state import TrainState

log = logging.getLogger("aser_jax")
MODEL_KEYS = ("input_ids", "attention_mask", "content", "domain")


@dataclasses.dataclass(frozen=True)
class StudentTrainConfig:
  kind: str = "facet"  # facet | single (table-8 baseline)
  encoder: str = "all-minilm-l6-v2"
  encoder_path: str | None = None
  epochs_a: int = 2
  epochs_b: int = 4
  batch_size: int = 64
  lr_encoder: float = 2e-5
  lr_heads: float = 1e-4
  warmup_fraction: float = 0.1
  weight_decay: float = 0.01  # (chosen)
  theta: float = 0.5
  max_steps_per_epoch: int = 0  # 0: ⌊N / batch⌋
  seed: int = 0
  token_bias_init: float = S.StudentConfig.token_bias_init  # initial token-evidence logit
  token_loss: str = "token_mean"  # reduction of the token-evidence loss (S.TOKEN_REDUCTIONS)
  center_targets: bool = False  # regress targets minus their facet's mean unit target (not in §3)


def make_optimizer(cfg: StudentTrainConfig, total_steps: int) -> optax.GradientTransformation:
  """AdamW, encoder at lr_encoder and adapters/heads at lr_heads, each warmed up linearly."""
  warm = max(int(cfg.warmup_fraction * total_steps), 1)

  def sched(lr):
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), optax.constant_schedule(lr)], [warm])

  def labels(params):
    return {k: jax.tree.map(lambda _: "encoder" if k == "encoder" else "heads", v) for k, v in params.items()}

  return optax.multi_transform({"encoder": optax.adamw(sched(cfg.lr_encoder), weight_decay=cfg.weight_decay),
                                "heads": optax.adamw(sched(cfg.lr_heads), weight_decay=cfg.weight_decay)}, labels)


def build_model(kind: str, encoder_module, manifest: dict, target_dim: int,
                token_bias_init: float = S.StudentConfig.token_bias_init):
  """FacetStudent or SingleVectorStudent whose domain-token ids match the supervision tokenizer."""
  ids = manifest["special_token_ids"]
  cfg = S.StudentConfig(num_domains=len(manifest["domains"]),
                        domain_token_ids=tuple(ids[domain_token(d)] for d in manifest["domains"]),
                        unk_domain_token_id=ids[domain_token(UNK_DOMAIN)], target_dim=target_dim,
                        token_bias_init=token_bias_init)
  cls = {"facet": S.FacetStudent, "single": S.SingleVectorStudent}[kind]
  return cls(encoder_module, cfg)


def load_student_encoder(cfg: StudentTrainConfig, manifest: dict):
  """The pretrained encoder with the supervision's added tokens; checks their ids agree."""
  from aser_jax.models.encoders import add_special_tokens, load_encoder

  enc = load_encoder(cfg.encoder, path=cfg.encoder_path)
  params, tok = add_special_tokens(enc.params, enc.tokenizer, special_tokens(manifest["domains"]))
  for t, i in manifest["special_token_ids"].items():
    if tok.token_to_id(t) != i:
      raise ValueError(f"token {t}: id {tok.token_to_id(t)} in encoder {cfg.encoder}, {i} in the supervision "
                       "(build the supervision with the same student encoder)")
  return enc.module, params, tok


def make_train_step(model, tx, phase_a_steps: int, kind: str, token_loss: str = "token_mean"):
  """The pure step `(state, batch, rng) -> (state, metrics)`; phase B from step `phase_a_steps`."""

  def step(state: TrainState, batch: dict, rng: jax.Array):
    rng = jax.random.fold_in(rng, state.step)
    phase_b = (state.step >= phase_a_steps).astype(jnp.float32)

    def loss_fn(params):
      out = model.apply({"params": params}, {k: batch[k] for k in MODEL_KEYS}, True, rngs={"dropout": rng})
      if kind == "single":
        loss, parts = S.single_vector_loss(out, batch)
      else:
        parts = S.facet_losses(out, batch, token_loss)
        loss = S.student_loss(parts, phase_b)
      return loss, {k: v.mean() for k, v in parts.items()}

    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), {"loss": loss, **parts}

  return step


def predict(model, params, arrays: dict, batch_size: int) -> dict[str, np.ndarray]:
  """Model outputs over all rows of `arrays` (the last batch padded), as numpy."""
  fn = jax.jit(lambda p, b: {k: v for k, v in model.apply({"params": p}, b, False).items()
                             if k in ("P", "e", "k", "conf", "pol", "p")})
  n = len(arrays["input_ids"])
  outs = []
  for start in range(0, n, batch_size):
    idx = np.arange(start, start + batch_size) % n
    o = fn(params, {k: arrays[k][idx] for k in MODEL_KEYS})
    outs.append({k: np.asarray(v)[:min(batch_size, n - start)] for k, v in o.items()})
  return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


# (target, the indicator of the slots where it applies), for the example and the canonical targets
TARGET_SLOTS = (("target", "presence"), ("canonical", "canonical_active"))


def facet_mean_directions(arrays: dict, normalize: bool = True) -> dict[str, np.ndarray]:
  """Per facet, the mean direction of the active example targets (`target`, over `presence`) and
  of the active canonical targets (`canonical`, over `canonical_active`): [F, D] each. A student
  that outputs these constants is the baseline its embedding cosines should beat. With
  `normalize=False`, the mean of the unit targets itself (zero for a facet with none active)."""
  out = {}
  for key, mask in TARGET_SLOTS:
    if key in arrays and mask in arrays:
      z, y = _unit(arrays[key].astype(np.float64)), arrays[mask] > 0
      sums = np.stack([z[y[:, f], f].sum(0) for f in range(y.shape[1])])
      out[key] = _unit(sums) if normalize else sums / np.maximum(y.sum(0), 1)[:, None]
  return out


def center_targets(arrays: dict, means: dict[str, np.ndarray]) -> dict:
  """`arrays` with each active example and canonical target replaced by snorm(unit(z) − m_f),
  m_f the facet's mean unit target on the training split (`facet_mean_directions(train,
  normalize=False)`). MiniLM targets of one facet share most of their direction (a constant
  direction scores cosine 0.86–0.97 on them), so the uncentred cosine loss is nearly satisfied
  by a constant; centred, only item-specific content scores. Inactive slots stay zero."""
  out = dict(arrays)
  for key, mask in TARGET_SLOTS:
    if key in arrays and key in means:
      z = _unit(arrays[key].astype(np.float64)) - means[key][None]
      on = (arrays[mask] > 0)[..., None]
      out[key] = np.where(on, _unit(z), 0.0).astype(arrays[key].dtype)
  return out


def _mean_cos(pred_NxFxD: np.ndarray, z_NxFxD: np.ndarray, y_NxF: np.ndarray) -> float:
  cos = np.sum(_unit(pred_NxFxD.astype(np.float64)) * _unit(z_NxFxD.astype(np.float64)), -1)
  return float(cos[y_NxF].mean()) if y_NxF.any() else float("nan")


def table8_metrics(out: dict, arrays: dict, theta: float = 0.5, means: dict | None = None) -> dict[str, Any]:
  """Facet-presence macro F1 at θ, active-facet embedding cosine, confidence Brier (active slots).

  With `means` (`facet_mean_directions` of the training split), also the canonical head's cosine
  to its targets and, for both heads, the cosine a constant per-facet mean direction would get:
  an embedding cosine at its baseline means the head has learned nothing item-specific.
  """
  y = arrays["presence"] > 0
  pred = out["P"] >= theta
  f1 = []
  for f in range(len(FACETS)):
    tp = np.sum(pred[:, f] & y[:, f])
    denom = np.sum(pred[:, f]) + np.sum(y[:, f])
    f1.append(2 * tp / denom if denom else 1.0)
  result = {"presence_macro_f1": float(np.mean(f1)), "presence_f1": dict(zip(FACETS, map(float, f1))),
            "active_cosine": _mean_cos(out["e"], arrays["target"], y),
            "confidence_brier": float(((out["conf"] - arrays["kappa"]) ** 2)[y].mean()) if y.any() else float("nan"),
            "active_slots": int(y.sum()), "examples": int(len(y))}
  if means:
    result["active_cosine_mean_baseline"] = _mean_cos(np.broadcast_to(means["target"], arrays["target"].shape),
                                                      arrays["target"], y)
    if "canonical" in means and "k" in out:
      yc = arrays["canonical_active"] > 0
      result["canonical_cosine"] = _mean_cos(out["k"], arrays["canonical"], yc)
      result["canonical_cosine_mean_baseline"] = _mean_cos(
          np.broadcast_to(means["canonical"], arrays["canonical"].shape), arrays["canonical"], yc)
  return result


def train_student(data_dir: str | os.PathLike, workdir: str | os.PathLike,
                  cfg: StudentTrainConfig = StudentTrainConfig(), encoder=None, progress: bool = True) -> dict:
  """Trains (resuming from the latest checkpoint in `workdir`), writes `params/` and
  `metrics.json`; returns the metrics. `encoder` = (module, params) overrides the pretrained one."""
  workdir = Path(workdir)
  manifest = store.read_manifest(data_dir)
  train, _ = store.load_split(data_dir, "train")
  val, _ = store.load_split(data_dir, "val")
  module, enc_params = encoder if encoder is not None else load_student_encoder(cfg, manifest)[:2]
  model = build_model(cfg.kind, module, manifest, train["target"].shape[-1], cfg.token_bias_init)
  n = len(train["input_ids"])
  if cfg.center_targets:
    centre = facet_mean_directions(train, normalize=False)
    train, val = center_targets(train, centre), center_targets(val, centre)
  means = facet_mean_directions(train)
  steps_per_epoch = max(n // cfg.batch_size, 1)
  if cfg.max_steps_per_epoch:
    steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
  epochs = cfg.epochs_a + cfg.epochs_b
  tx = make_optimizer(cfg, epochs * steps_per_epoch)
  sample = {k: train[k][:2] for k in MODEL_KEYS}
  params = model.init({"params": jax.random.key(cfg.seed), "dropout": jax.random.key(1)}, sample, False)["params"]
  params = {**params, "encoder": enc_params}
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  step_fn = jax.jit(make_train_step(model, tx, cfg.epochs_a * steps_per_epoch, cfg.kind, cfg.token_loss),
                    donate_argnums=0)
  ckpts = Checkpoints(workdir)
  start_epoch, history = 0, []
  if ckpts.latest() is not None:
    state, loop = ckpts.restore(ckpts.latest(), state)
    start_epoch, history = loop["epoch"], loop["history"]
    log.info("resumed from epoch %d", start_epoch)
  rng = jax.random.key(cfg.seed)
  for epoch in range(start_epoch, epochs):
    order = balanced_batches(train["domain"], train["source"], cfg.batch_size,
                             np.random.default_rng([cfg.seed, epoch]))[:steps_per_epoch]
    t0, sums = time.perf_counter(), {}
    for idx in tqdm(order, desc=f"student epoch {epoch + 1}/{epochs}", unit="step", disable=not progress):
      state, m = step_fn(state, {k: v[idx] for k, v in train.items()}, rng)
      for k, v in m.items():
        sums[k] = sums.get(k, 0.0) + float(v)
    secs = time.perf_counter() - t0
    metrics = table8_metrics(predict(model, state.params, val, cfg.batch_size), val, cfg.theta, means)
    history.append({"epoch": epoch + 1, "phase": "A" if epoch < cfg.epochs_a else "B",
                    "steps_per_s": len(order) / secs, **{k: v / len(order) for k, v in sums.items()},
                    **{k: metrics[k] for k in ("presence_macro_f1", "active_cosine", "active_cosine_mean_baseline",
                                               "canonical_cosine", "canonical_cosine_mean_baseline",
                                               "confidence_brier") if k in metrics}})
    log.info("epoch %d %s", epoch + 1, json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                    for k, v in history[-1].items()}))
    ckpts.save(epoch + 1, state, {"epoch": epoch + 1, "history": history})
  ckpts.close()
  save_params(workdir / "params", state.params)
  final = table8_metrics(predict(model, state.params, val, cfg.batch_size), val, cfg.theta, means)
  result = {"kind": cfg.kind, "config": dataclasses.asdict(cfg), "train_examples": n,
            "val_examples": int(len(val["input_ids"])), "steps_per_epoch": steps_per_epoch, "history": history,
            "val": final, "supervision": str(Path(data_dir).resolve()),
            "environment": provenance.environment()}
  (workdir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
  return result


def load_student(workdir: str | os.PathLike, data_dir: str | os.PathLike | None = None):
  """(model, params, tokenizer, manifest, config) of a trained student in `workdir`."""
  workdir = Path(workdir)
  result = json.loads((workdir / "metrics.json").read_text())
  cfg = StudentTrainConfig(**result["config"])
  manifest = store.read_manifest(data_dir or result["supervision"])
  module, enc_params, tok = load_student_encoder(cfg, manifest)
  model = build_model(cfg.kind, module, manifest, manifest["target_dim"])
  params = load_params(workdir / "params")
  return model, params, tok, manifest, cfg
