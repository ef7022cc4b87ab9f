"""Reading Hugging Face style checkpoints (config.json + weights) into Flax param trees.

The encoders name their submodules after the Hugging Face modules (`encoder/layer_0/attention/
self/query` for `encoder.layer.0.attention.self.query`), so one converter serves every model:
it walks the param tree the module would create and looks each leaf up in the state dict.
Neither torch nor transformers is needed for `.safetensors`; torch is needed only for `.bin`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_LEAF_NAMES = {"kernel": ("weight",), "embedding": ("weight",), "scale": ("weight", "gamma"),
               "bias": ("bias", "beta")}


class CheckpointError(ValueError):
  """A checkpoint file is missing, malformed, or does not fit the model."""


def read_json(path: str | Path) -> dict[str, Any]:
  """A JSON object from `path`; errors name the file and, for syntax errors, the line."""
  path = Path(path)
  if not path.is_file():
    raise CheckpointError(f"{path}: file not found")
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
  if not isinstance(data, dict):
    raise CheckpointError(f"{path}:1: expected a JSON object, got {type(data).__name__}")
  return data


_MISSING = object()


def field(cfg: dict[str, Any], name: str, kind: type | tuple[type, ...], source: str,
          default: Any = _MISSING) -> Any:
  """`cfg[name]` checked against `kind`; a missing required or mistyped field names file and field."""
  if name not in cfg or cfg[name] is None:
    if default is _MISSING:
      raise CheckpointError(f"{source}: required field '{name}' is missing")
    return default
  value = cfg[name]
  if isinstance(value, bool) and kind in (int, float):
    raise CheckpointError(f"{source}: field '{name}' should be {kind.__name__}, got bool")
  if kind is float and isinstance(value, int):
    return float(value)
  if not isinstance(value, kind):
    want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
    raise CheckpointError(f"{source}: field '{name}' should be {want}, got {value!r}")
  return value


def load_state_dict(model_dir: str | Path) -> tuple[dict[str, np.ndarray], str]:
  """(name -> float32 array, file it came from) from `model.safetensors` or `pytorch_model.bin`."""
  model_dir = Path(model_dir)
  for name in _WEIGHT_FILES:
    path = model_dir / name
    if path.is_file():
      return load_weight_file(path), str(path)
  present = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else "no such directory"
  raise CheckpointError(f"{model_dir}: none of {', '.join(_WEIGHT_FILES)} found (present: {present})")


def load_weight_file(path: str | Path) -> dict[str, np.ndarray]:
  """A state dict from a `.safetensors` file (no torch needed) or a torch pickle (`.bin`/`.pt`)."""
  path = Path(path)
  if path.suffix == ".safetensors":
    from safetensors.numpy import load_file
    try:
      raw = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
      raise CheckpointError(f"{path}: cannot read safetensors file ({e})") from e
    return {k: np.asarray(v) for k, v in raw.items()}
  try:
    import torch
  except ImportError as e:
    raise CheckpointError(f"{path}: reading a torch checkpoint needs torch; "
                          "convert it to model.safetensors or `pip install torch`") from e
  state = torch.load(str(path), map_location="cpu", weights_only=True)
  return state_dict_to_numpy(state)


def state_dict_to_numpy(state: dict[str, Any]) -> dict[str, np.ndarray]:
  """Torch tensors (any float dtype) or arrays as numpy; floats become float32."""
  out = {}
  for k, v in state.items():
    if hasattr(v, "detach"):
      v = v.detach().cpu()
      v = v.float().numpy() if v.is_floating_point() else v.numpy()
    out[k] = np.asarray(v)
  return out


def _hf_key(path: tuple[str, ...]) -> str:
  return ".".join(re.sub(r"^layer_(\d+)$", r"layer.\1", p) for p in path)


def _to_flax(leaf: str, value: np.ndarray) -> np.ndarray:
  if leaf == "kernel" and value.ndim == 2:  # torch Linear [out, in] -> [in, out]
    return value.T
  if leaf == "kernel" and value.ndim == 3:  # torch Conv1d [out, in/groups, k] -> [k, in/groups, out]
    return value.transpose(2, 1, 0)
  return value


def find_prefix(state: dict[str, np.ndarray], anchor: str, source: str,
                prefixes: tuple[str, ...] = ("", "bert.", "deberta.", "model.")) -> str:
  """The prefix (`""`, `"deberta."`...) under which the base model's `anchor` key is stored."""
  for prefix in prefixes:
    if prefix + anchor in state:
      return prefix
  raise CheckpointError(f"{source}: no '{anchor}' under any of the prefixes {prefixes}; "
                        f"first keys: {sorted(state)[:5]}")


def params_from_state_dict(state: dict[str, np.ndarray], target: Any, source: str,
                           anchor: str = "embeddings.word_embeddings.weight") -> Any:
  """Fill a param tree shaped like `target` (arrays or ShapeDtypeStructs) from a HF state dict.

  Each leaf at path (..., module, leaf) is read from key `module.path.weight|bias` (a bare
  param `name` from `name.weight`), with
  `layer_i` spelt `layer.i`, Linear and Conv1d kernels transposed to Flax layout; extra keys in
  the state dict (LM heads, pooler, buffers) are ignored.
  """
  prefix = find_prefix(state, anchor, source)

  def convert(key_path, spec):
    path = tuple(k.key for k in key_path)
    if path[-1] in _LEAF_NAMES:
      candidates = [f"{prefix}{_hf_key(path[:-1])}.{n}" for n in _LEAF_NAMES[path[-1]]]
    else:  # a bare param such as DeBERTa's `rel_embeddings` is an nn.Embedding in HF
      candidates = [f"{prefix}{_hf_key(path)}.weight"]
    key = next((c for c in candidates if c in state), None)
    if key is None:
      raise CheckpointError(f"{source}: missing weight '{candidates[0]}' for param {'/'.join(path)}")
    value = _to_flax(path[-1], np.asarray(state[key], np.float32))
    if tuple(value.shape) != tuple(spec.shape):
      raise CheckpointError(f"{source}: '{key}' has shape {tuple(value.shape)}, the config implies "
                            f"{tuple(spec.shape)} for {'/'.join(path)}")
    return value

  return jax.tree_util.tree_map_with_path(convert, target)


def param_shapes(init_fn: Callable[[], Any]) -> Any:
  """The param tree `init_fn` would build, as shapes only (nothing is allocated)."""
  return jax.eval_shape(init_fn)
