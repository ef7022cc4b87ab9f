"""Stage 2 (ASER_SPEC §2): teacher shards of several domains -> the student's supervision corpus.

  python experiments/build_supervision.py --out=runs/supervision \
      --teacher=beauty=runs/teacher/all_beauty_2018 --teacher=food=runs/teacher/fine_food \
      --data_dir=../shared/data

Benchmark items (Beauty, Toys, Yelp ids found under --data_dir) are removed and the result is
checked for leakage; the cleaning table (paper table 2) lands in <out>/cleaning_table.md.
"""

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.supervision.corpus import CorpusConfig, build_corpus
from aser_jax.supervision.examples import SupervisionConfig

_OUT = flags.DEFINE_string("out", None, "Output folder (ArrayRecord shards + manifest.json).", required=True)
_TEACHER = flags.DEFINE_multi_string("teacher", [], "domain=folder of teacher shards (repeatable).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root whose benchmark item ids are removed (leakage).")
_MAX_PER_SOURCE = flags.DEFINE_integer("max_per_source", 3000, "Texts kept per (domain, source).")
_VAL = flags.DEFINE_float("val_fraction", 0.15, "Share of items held out for validation.")
_MAX_LEN = flags.DEFINE_integer("max_len", 64, "Student input length in tokens.")
_ENCODER = flags.DEFINE_string("encoder", "all-minilm-l6-v2", "Student encoder (its tokenizer is used).")
_ENCODER_PATH = flags.DEFINE_string("encoder_path", None, "Folder of the student encoder (e.g. DeBERTa-v3 "
                                    "weights); its tokenizer replaces --encoder's.")
_TARGET = flags.DEFINE_string("target_encoder", "all-minilm-l6-v2", "Frozen target encoder E_T.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the caps and the split.")


def main(argv):
  del argv
  setup_logging()
  dirs = dict(t.split("=", 1) for t in _TEACHER.value)
  if not dirs:
    raise app.UsageError("give at least one --teacher=domain=folder")
  cfg = CorpusConfig(max_per_source=_MAX_PER_SOURCE.value, val_fraction=_VAL.value, seed=_SEED.value,
                     student_encoder=_ENCODER_PATH.value or _ENCODER.value, target_encoder=_TARGET.value,
                     supervision=SupervisionConfig(max_len=_MAX_LEN.value))
  manifest = build_corpus(dirs, _OUT.value, _DATA_DIR.value, cfg)
  print(open(f"{_OUT.value}/cleaning_table.md").read())
  print({k: v for k, v in manifest["counts"].items()})


if __name__ == "__main__":
  app.run(main)
