"""The README's main job: teacher -> bank -> Base vs Sens table, on the synthetic default or real data.

  python experiments/run_pipeline.py                       # embedded synthetic catalogue
  python experiments/run_pipeline.py --data=beauty --data_dir=../shared/data/amazon2014/beauty
"""

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.pipeline import run_pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/main", "Output folder (re-running resumes finished and unfinished runs).")
flags.DEFINE_string("data", None, "Dataset preset or sequence file; default: the synthetic catalogue.")
flags.DEFINE_string("data_dir", None, "Folder holding the real data files.")
flags.DEFINE_list("backbones", ["sasrec"], "Backbones to train.")
flags.DEFINE_list("seeds", ["0"], "Seeds; the table reports their mean.")
flags.DEFINE_integer("epochs", None, "Maximum epochs per run (default: 200 with early stopping on real data, "
                     "20 on the synthetic default).")
flags.DEFINE_string("teacher", "lexicon", "Teacher backend for stage 1 (lexicon needs no model).")
flags.DEFINE_bool("sens", True, "Also build the bank and train the Sens variant of every backbone.")
flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv):
  del argv
  setup_logging()
  data = FLAGS.data or ("synthetic" if FLAGS.data_dir is None else None)
  if data is None:
    raise app.UsageError("--data_dir needs --data (a preset name or a file name inside it)")
  train = {"progress": FLAGS.progress}
  epochs = FLAGS.epochs if FLAGS.epochs is not None else (20 if data == "synthetic" else None)
  if epochs is not None:
    train["epochs"] = epochs
  table = run_pipeline(workdir=FLAGS.workdir, data=data, data_dir=FLAGS.data_dir, backbones=FLAGS.backbones,
                       seeds=[int(s) for s in FLAGS.seeds], train_overrides=train, teacher=FLAGS.teacher,
                       sens=FLAGS.sens)
  print(table.read_text())


if __name__ == "__main__":
  app.run(main)
