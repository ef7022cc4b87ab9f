"""Console set-up shared by the experiment binaries: our progress lines on, library chatter off."""

from __future__ import annotations

import logging
import sys

from absl import logging as absl_logging


def setup_logging(verbose: bool = False) -> None:
  """Shows `aser_jax` INFO lines on stderr; other libraries (Orbax, JAX) only warn."""
  absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.WARNING)
  ours = logging.getLogger("aser_jax")
  if not ours.handlers:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    ours.addHandler(handler)
  ours.setLevel(logging.INFO)
  ours.propagate = False


def sens_override_flag(pairs: list[str]) -> dict:
  """`--sens_override` values as the Sens runs' fusion overrides (`train.run.fusion_overrides`);
  a bad one stops the binary with a usage message instead of a traceback."""
  from absl import app

  from aser_jax.train.run import fusion_overrides

  try:
    return fusion_overrides(pairs)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
