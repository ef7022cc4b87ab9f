"""Orbax checkpoints: train state plus loop state (data iterator, early stopping), and params-only exports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """Keeps the latest `keep` epoch checkpoints under `<workdir>/checkpoints`; saves are atomic."""

  def __init__(self, workdir: str | os.PathLike, keep: int = 2):
    self.dir = Path(workdir).resolve() / "checkpoints"
    self.manager = ocp.CheckpointManager(
        self.dir, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, loop: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    loop=ocp.args.JsonSave(loop)))
    self.manager.wait_until_finished()

  def restore(self, step: int, like_state: Any) -> tuple[Any, dict]:
    """Restores onto the shapes, dtypes and shardings of `like_state`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
    out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                             loop=ocp.args.JsonRestore()))
    return out["state"], dict(out["loop"])

  def close(self) -> None:
    self.manager.close()


def save_params(path: str | os.PathLike, params: Any) -> None:
  """Writes a params-only artefact (for evaluation and export), replacing an older one."""
  path = Path(path).resolve()
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(path, params, force=True)


def load_params(path: str | os.PathLike, like_params: Any | None = None) -> Any:
  path = Path(path).resolve()
  with ocp.StandardCheckpointer() as ckpt:
    if like_params is None:
      return ckpt.restore(path)
    return ckpt.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, like_params))
