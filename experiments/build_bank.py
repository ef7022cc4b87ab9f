"""Item facet bank (ASER_SPEC §4): the frozen student over every item text of a catalogue.

  python experiments/build_bank.py --student=runs/student --data=beauty --data_dir=../shared/data \
      --out=runs/bank/beauty

Sharded over items and resumable (a killed build restarts at the first missing shard); the bank
is one Orbax checkpoint (<out>/bank) with its metadata, and <out>/bank.npz unless --noexport_npz.
"""

import json

from absl import app, flags

from aser_jax.bank.build import BankBuildConfig, build_student_bank
from aser_jax.cli import setup_logging

_STUDENT = flags.DEFINE_string("student", None, "Workdir of a trained student.", required=True)
_DATA = flags.DEFINE_enum("data", "synthetic", ["beauty", "toys", "yelp", "synthetic"], "Catalogue.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root (e.g. ../shared/data).")
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_DOMAIN = flags.DEFINE_string("domain", "", "Student domain token (default: --data if the student knows it, "
                              "else [DOM_unk]).")
_SOURCE = flags.DEFINE_enum("source", "title", ["title", "description", "review"],
                            "Source token the catalogue texts are fed with ([SRC_...]).")
_HEAD = flags.DEFINE_enum("head", "canonical", ["canonical", "example"],
                          "Student head whose embeddings form K: the canonical head (ASER_SPEC §4), or the "
                          "example head (ablation: keeps per-text detail that item-level targets average away).")
_THETA = flags.DEFINE_float("theta", 0.5, "Presence threshold θ.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Texts per student call.")
_SHARD = flags.DEFINE_integer("shard_items", 2000, "Items per resumable shard.")
_EXPORT = flags.DEFINE_bool("export_npz", True, "Also write <out>/bank.npz (K, C, Pi, N, A, item_ids).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  del argv
  setup_logging()
  cfg = BankBuildConfig(theta=_THETA.value, batch_size=_BATCH.value, shard_items=_SHARD.value, domain=_DOMAIN.value,
                        source=_SOURCE.value, head=_HEAD.value)
  _, stats = build_student_bank(_STUDENT.value, _DATA.value, _DATA_DIR.value, _OUT.value, cfg,
                                export=_EXPORT.value, progress=_PROGRESS.value)
  print(json.dumps(stats, indent=2))


if __name__ == "__main__":
  app.run(main)
