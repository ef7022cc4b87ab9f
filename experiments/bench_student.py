"""Prints JSON: facet-student train steps/s and bank-build (student forward) texts/s, peak RSS.

  python experiments/bench_student.py --supervision=runs/supervision --steps=20

Uses the supervision corpus's train split for the timed steps and its texts for the forward
pass; the first step (compilation) is timed apart; float32. `--encoder` must be the encoder the
corpus was tokenised for (as for train_student.py).
"""

import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from aser_jax import provenance
from aser_jax.cli import setup_logging
from aser_jax.supervision import store
from aser_jax.train.state import TrainState
from aser_jax.train.student_loop import (MODEL_KEYS, StudentTrainConfig, build_model, load_student_encoder,
                                         make_optimizer, make_train_step)

_SUP = flags.DEFINE_string("supervision", None, "Folder written by build_supervision.py.", required=True)
_KIND = flags.DEFINE_enum("kind", "facet", ["facet", "single"], "Student kind.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed train steps.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size (train and forward).")
_FORWARD = flags.DEFINE_integer("forward_batches", 10, "Timed forward batches.")
_ENCODER = flags.DEFINE_string("encoder", "all-minilm-l6-v2", "all-minilm-l6-v2, deberta-v3-small, or a HF folder.")
_ENCODER_PATH = flags.DEFINE_string("encoder_path", None, "Folder of the encoder's weights (DeBERTa).")


def main(argv):
  del argv
  setup_logging()
  cfg = StudentTrainConfig(kind=_KIND.value, batch_size=_BATCH.value, encoder=_ENCODER.value,
                           encoder_path=_ENCODER_PATH.value)
  manifest = store.read_manifest(_SUP.value)
  train, _ = store.load_split(_SUP.value, "train")
  module, enc_params, _ = load_student_encoder(cfg, manifest)
  model = build_model(cfg.kind, module, manifest, train["target"].shape[-1])
  B = cfg.batch_size
  rng = np.random.default_rng(0)
  batches = [rng.integers(0, len(train["input_ids"]), B) for _ in range(_STEPS.value + 1)]
  forward = [rng.integers(0, len(train["input_ids"]), B) for _ in range(_FORWARD.value)]
  params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                      {k: train[k][:2] for k in MODEL_KEYS}, False)["params"]
  params = {**params, "encoder": enc_params}
  tx = make_optimizer(cfg, 1000)
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  step = jax.jit(make_train_step(model, tx, 0, cfg.kind), donate_argnums=0)
  t = time.perf_counter()
  state, m = step(state, {k: v[batches[0]] for k, v in train.items()}, jax.random.key(0))
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  for idx in batches[1:]:
    state, m = step(state, {k: v[idx] for k, v in train.items()}, jax.random.key(0))
  jax.block_until_ready(m)
  train_s = time.perf_counter() - t
  fwd = jax.jit(lambda p, b: model.apply({"params": p}, b, False)["P"])
  jax.block_until_ready(fwd(state.params, {k: train[k][batches[0]] for k in MODEL_KEYS}))
  t = time.perf_counter()
  for idx in forward:
    out = fwd(state.params, {k: train[k][idx] for k in MODEL_KEYS})
  jax.block_until_ready(out)
  fwd_s = time.perf_counter() - t
  print(json.dumps({
      "kind": cfg.kind, "encoder": cfg.encoder, "batch_size": B, "max_len": int(train["input_ids"].shape[1]),
      "compile_seconds": compile_s, "train_steps_per_s": _STEPS.value / train_s,
      "train_examples_per_s": _STEPS.value * B / train_s,
      "forward_texts_per_s": _FORWARD.value * B / fwd_s,
      "backend": jax.default_backend(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "environment": provenance.environment(),
  }, indent=2))


if __name__ == "__main__":
  app.run(main)
