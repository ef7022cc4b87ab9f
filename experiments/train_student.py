"""Stage 3 (ASER_SPEC §3): trains the facet-aware student (or the table-8 single-vector baseline).

  python experiments/train_student.py --supervision=runs/supervision --workdir=runs/student

Phase A then phase B; an Orbax checkpoint per epoch, so re-running the command resumes.
Writes <workdir>/params (params-only) and <workdir>/metrics.json (table-8 validation metrics).
"""

import json

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.models.student import TOKEN_REDUCTIONS
from aser_jax.train.student_loop import StudentTrainConfig, train_student

_SUP = flags.DEFINE_string("supervision", None, "Folder written by build_supervision.py.", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoint and output folder.", required=True)
_KIND = flags.DEFINE_enum("kind", "facet", ["facet", "single"], "facet-aware student or single-vector baseline.")
_ENCODER = flags.DEFINE_string("encoder", "all-minilm-l6-v2", "all-minilm-l6-v2, deberta-v3-small, or a HF folder.")
_ENCODER_PATH = flags.DEFINE_string("encoder_path", None, "Folder of the encoder's weights (DeBERTa).")
_EPOCHS_A = flags.DEFINE_integer("epochs_a", 2, "Phase-A epochs.")
_EPOCHS_B = flags.DEFINE_integer("epochs_b", 4, "Phase-B epochs.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_LR_ENC = flags.DEFINE_float("lr_encoder", 2e-5, "Encoder learning rate.")
_LR_HEADS = flags.DEFINE_float("lr_heads", 1e-4, "Adapter and head learning rate.")
_MAX_STEPS = flags.DEFINE_integer("max_steps_per_epoch", 0, "Cap on steps per epoch (0: one pass).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")
_BIAS = flags.DEFINE_float("token_bias_init", StudentTrainConfig.token_bias_init,
                           "Initial token-evidence logit: -6 starts the noisy-or presence near the corpus' presence "
                           "rates; -2 (the earlier default) starts it near 1.")
_TOKEN_LOSS = flags.DEFINE_enum("token_loss", StudentTrainConfig.token_loss, list(TOKEN_REDUCTIONS),
                                "Token-evidence loss: mean over the batch's content tokens, or summed per "
                                "(text, facet) slot and averaged over texts like the other losses.")
_CENTER = flags.DEFINE_bool("center_targets", StudentTrainConfig.center_targets,
                            "Regress example and canonical targets minus their facet's mean unit target "
                            "(an ablation outside ASER_SPEC §3; the bank's K then lives in that centred space).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv):
  del argv
  setup_logging()
  cfg = StudentTrainConfig(kind=_KIND.value, encoder=_ENCODER.value, encoder_path=_ENCODER_PATH.value,
                           epochs_a=_EPOCHS_A.value, epochs_b=_EPOCHS_B.value, batch_size=_BATCH.value,
                           lr_encoder=_LR_ENC.value, lr_heads=_LR_HEADS.value,
                           max_steps_per_epoch=_MAX_STEPS.value, seed=_SEED.value,
                           token_bias_init=_BIAS.value, token_loss=_TOKEN_LOSS.value,
                           center_targets=_CENTER.value)
  result = train_student(_SUP.value, _WORKDIR.value, cfg, progress=_PROGRESS.value)
  print(json.dumps({"kind": result["kind"], "val": result["val"],
                    "steps_per_s": [round(h["steps_per_s"], 2) for h in result["history"]]}, indent=2))


if __name__ == "__main__":
  app.run(main)
