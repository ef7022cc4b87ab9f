"""One recommender run from plain settings: resolve data and presets, train, evaluate.

The experiment binaries call `run_recommender` with their parsed flags; everything else
(readers, presets, the loop) lives in the library.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from aser_jax import configs
from aser_jax.data.presets import PRESETS, load_sequences
from aser_jax.data.synthetic import SYNTHETIC_NAME
from aser_jax.models import registry
from aser_jax.train.loop import TrainConfig, train_and_evaluate


def parse_overrides(pairs: list[str], cfg_cls) -> dict:
  """Turns `["key=value", ...]` into typed config overrides (types taken from `cfg_cls`)."""
  fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
  out = {}
  for pair in pairs:
    key, sep, raw = pair.partition("=")
    if not sep or key not in fields:
      raise ValueError(f"--override {pair!r}: expected key=value with key in {sorted(fields)}")
    default = getattr(cfg_cls(), key)
    if isinstance(default, bool):
      out[key] = raw.lower() in ("1", "true", "yes")
    elif isinstance(default, (int, float, str)):
      out[key] = type(default)(raw)
    else:
      out[key] = raw
  return out


def run_recommender(*, backbone: str, data: str, data_dir: str | None, workdir: str,
                    use_paper_settings: bool = True, model_overrides: dict | None = None,
                    train_overrides: dict | None = None) -> dict:
  """Trains and tests one backbone; explicit overrides win over the paper presets."""
  if data != SYNTHETIC_NAME and data not in PRESETS and data_dir and not os.path.exists(data):
    data = os.path.join(data_dir, data)
  seqs = load_sequences(data, data_dir)
  if seqs.report is not None:
    logging.getLogger("aser_jax").info("%s", seqs.report.summary())
  model_kw, train_kw = configs.paper_settings(backbone, seqs.name) if use_paper_settings else ({}, {})
  model_kw.update(model_overrides or {})
  train_kw.update(train_overrides or {})
  registry.config_class(backbone)  # fails early on an unknown backbone
  return train_and_evaluate(seqs, backbone, workdir, TrainConfig(**train_kw), **model_kw)
