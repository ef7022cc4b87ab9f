"""Ablations of ASER_SPEC §6: fusion type (early/late), hidden size 64/128/256, representation channel.

  python experiments/run_ablations.py --ablation=channel --bank=runs/main/synthetic/bank_student/bank.npz
  python experiments/run_ablations.py --ablation=fusion --data=beauty --data_dir=../shared/data/amazon2014/beauty \\
      --bank=runs/table6/beauty/bank_student/bank.npz --seeds=0,1,2
"""

from absl import app, flags

from aser_jax.ablations import KINDS, run_ablation
from aser_jax.cli import setup_logging

FLAGS = flags.FLAGS
flags.DEFINE_enum("ablation", "fusion", KINDS, "Which ablation to run.")
flags.DEFINE_string("workdir", "runs/ablations", "Output folder (runs resume).")
flags.DEFINE_string("data", "synthetic", "Dataset preset, sequence file or 'synthetic'.")
flags.DEFINE_string("data_dir", None, "Folder holding the data.")
flags.DEFINE_string("backbone", "sasrec", "Backbone.")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_string("bank", None, "The ASER (or teacher) bank being ablated.", required=True)
flags.DEFINE_integer("epochs", None, "Maximum epochs per run.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_integer("workers", 1, "Runs trained at once, each in its own process pinned to its share of the "
                     "CPU cores (or sharing the accelerator); progress bars are off when > 1.")


def main(argv):
  del argv
  setup_logging()
  train = {"progress": FLAGS.progress}
  if FLAGS.epochs is not None:
    train["epochs"] = FLAGS.epochs
  path = run_ablation(FLAGS.ablation, workdir=FLAGS.workdir, data=FLAGS.data, data_dir=FLAGS.data_dir,
                      backbone=FLAGS.backbone, seeds=[int(s) for s in FLAGS.seeds], bank=FLAGS.bank,
                      train_overrides=train, workers=FLAGS.workers)
  print(path.read_text())


if __name__ == "__main__":
  app.run(main)
