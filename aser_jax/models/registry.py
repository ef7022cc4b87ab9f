"""Backbone registry: a name maps to its Flax module class and its config dataclass.

Every backbone module exposes the same methods, used through `module.apply(..., method=...)`:
`item_table()` -> [I+1, D] scoring table (tied with the input embedding);
`encode(input_ids_BxL, train)` -> [B, D] user state for the next position;
`score(input_ids_BxL)` -> [B, I+1] scores against all items (evaluation);
`loss(batch, train)` -> [B] per-row training loss (rows with weight 0 are ignored by the caller).
A backbone built with the GRASP channel (`grasp_channel`, `grasp_dim > 0`) has `uses_users` true:
its items depend on the user, so `score` takes the users' rows (`score(input_ids_BxL, user_B)`),
its loss reads `batch["user"]`, and it has no user-independent `item_table`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_REGISTRY: dict[str, tuple[type, type]] = {}


def register(name: str, config_cls: type):
  def wrap(module_cls):
    _REGISTRY[name] = (module_cls, config_cls)
    return module_cls
  return wrap


def names() -> list[str]:
  _import_all()
  return sorted(_REGISTRY)


def config_class(name: str) -> type:
  _import_all()
  if name not in _REGISTRY:
    raise KeyError(f"unknown backbone {name!r}; known: {', '.join(sorted(_REGISTRY))}")
  return _REGISTRY[name][1]


def build(name: str, num_items: int, config: Any = None, side: Any = None, **overrides):
  """Returns `(module, config)`; `overrides` replace fields of the (default) config.

  `side` (item side information, e.g. DIFF's attributes) goes to modules that declare `needs_side`.
  """
  cfg_cls = config_class(name)
  cfg = config if config is not None else cfg_cls()
  if overrides:
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cfg_cls)}
    if unknown:
      raise KeyError(f"{name} config has no field(s) {sorted(unknown)}")
    cfg = dataclasses.replace(cfg, **overrides)
  module_cls = _REGISTRY[name][0]
  if getattr(cfg, "grasp_dim", 0) and not takes_grasp(name):
    grasp = sorted(n for n in _REGISTRY if takes_grasp(n))
    raise ValueError(f"{name} does not take the GRASP channel; backbones that do: {', '.join(grasp)}")
  if side is not None and needs_side(name):
    return module_cls(cfg, num_items, side), cfg
  return module_cls(cfg, num_items), cfg


def takes_grasp(name: str) -> bool:
  """Whether the backbone takes the GRASP channel (class attribute `grasp_channel`)."""
  _import_all()
  return bool(getattr(_REGISTRY[name][0], "grasp_channel", False))


def needs_side(name: str) -> bool:
  """Whether the backbone is built with item side information (class attribute `needs_side`)."""
  _import_all()
  return bool(getattr(_REGISTRY[name][0], "needs_side", False))


def _import_all() -> None:
  """Imports the backbone modules so their `register` decorators run."""
  import importlib
  import pkgutil

  import aser_jax.models.backbones as pkg
  for mod in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(f"{pkg.__name__}.{mod.name}")
