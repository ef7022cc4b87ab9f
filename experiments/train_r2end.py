"""Trains and evaluates the R2END channel on one catalogue (BACKBONES.md "R2END channel").

  python experiments/build_r2end.py --data=beauty --data_dir=../shared/data --out=runs/r2end/beauty
  python experiments/train_r2end.py --data=beauty --data_dir=../shared/data \\
      --tables=runs/r2end/beauty/r2end.npz --workdir=runs/r2end/beauty_s0

Distils the student encoder, embeds the users' histories, trains the projection and ranks the
whole catalogue by cosine; every stage resumes when the command is re-run. Writes
<workdir>/metrics.json, log.csv, test_ranks.npy, best_params/ and encoder_params/.
"""

import json

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.data.presets import load_sequences
from aser_jax.pipeline import item_texts
from aser_jax.train.r2end import USER_ENCODERS, R2endConfig, train_r2end

D = R2endConfig()
_DATA = flags.DEFINE_string("data", "synthetic", "Preset (beauty, toys, yelp, ...), a sequence file, or 'synthetic'.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root (e.g. ../shared/data) or the preset's folder.")
_TABLES = flags.DEFINE_string("tables", None, "r2end.npz from build_r2end.py.", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoint and output folder.", required=True)
_USER_ENCODER = flags.DEFINE_enum("user_encoder", D.user_encoder, list(USER_ENCODERS),
                                  "distilled (the method), frozen (no distillation) or mean_pool (mean of the "
                                  "history items' embeddings: the paper's 'w.o. text encoder').")
_ENCODER = flags.DEFINE_string("encoder", D.encoder, "Student encoder: all-minilm-l6-v2 or a HF folder.")
_N_RECENT = flags.DEFINE_integer("n_recent", D.n_recent, "History items in a user's text.")
_MAX_LEN = flags.DEFINE_integer("max_len", D.max_len, "Token limit of a history text.")
_DISTILL_BATCH = flags.DEFINE_integer("distill_batch", D.distill_batch, "Distillation batch size.")
_DISTILL_LR = flags.DEFINE_float("distill_lr", D.distill_lr, "Distillation learning rate (Adam).")
_DISTILL_EPOCHS = flags.DEFINE_integer("distill_epochs", D.distill_epochs, "Distillation epochs.")
_DISTILL_STEPS = flags.DEFINE_integer("distill_max_steps", D.distill_max_steps, "Cap on distillation steps (0: none).")
_PROJ_DIM = flags.DEFINE_integer("proj_dim", D.proj_dim, "Projection width (0: no projection).")
_TAU = flags.DEFINE_float("tau", D.tau, "InfoNCE temperature.")
_NEG = flags.DEFINE_integer("negatives", D.negatives, "Sampled negatives per positive.")
_REG = flags.DEFINE_float("reg_weight", D.reg_weight, "λ of L_reg (0: none).")
_EPOCHS = flags.DEFINE_integer("epochs", D.epochs, "Projection epochs.")
_BATCH = flags.DEFINE_integer("batch_size", D.batch_size, "Projection batch size.")
_LR = flags.DEFINE_float("lr", D.lr, "Projection learning rate (Adam).")
_SEED = flags.DEFINE_integer("seed", D.seed, "Seed.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv):
  del argv
  setup_logging()
  data = load_sequences(_DATA.value, _DATA_DIR.value)
  cfg = R2endConfig(user_encoder=_USER_ENCODER.value, encoder=_ENCODER.value, n_recent=_N_RECENT.value,
                    max_len=_MAX_LEN.value, distill_epochs=_DISTILL_EPOCHS.value, distill_batch=_DISTILL_BATCH.value,
                    distill_lr=_DISTILL_LR.value, distill_max_steps=_DISTILL_STEPS.value, proj_dim=_PROJ_DIM.value,
                    tau=_TAU.value, negatives=_NEG.value, reg_weight=_REG.value, epochs=_EPOCHS.value,
                    batch_size=_BATCH.value, lr=_LR.value, seed=_SEED.value)
  result = train_r2end(data, item_texts(_DATA.value, _DATA_DIR.value), _TABLES.value, _WORKDIR.value, cfg,
                       progress=_PROGRESS.value)
  print(json.dumps({k: result[k] for k in ("data", "train_users", "valid", "test", "best_epoch")}, indent=2))


if __name__ == "__main__":
  app.run(main)
