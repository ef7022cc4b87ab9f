"""Prints JSON: seconds per training epoch and per full validation pass, and peak RSS.

  python experiments/bench_train.py --backbone=sasrec --data=beauty --data_dir=../shared/data/amazon2014/beauty

It times the step a run trains (the first compiled step, then the rest of seed 0's first epoch by
default); with --sensory_bank, the Sens model's step and validation pass; with --grasp_tables,
the GRASP channel's.
"""

import json

from absl import app, flags

from aser_jax.bank.grasp import load_grasp_tables
from aser_jax.bank.io import load_bank
from aser_jax.cli import setup_logging
from aser_jax.data.presets import load_sequences
from aser_jax.train.bench import bench_train
from aser_jax.models.registry import config_class
from aser_jax.train.run import parse_overrides, resolve_side

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone", "sasrec", "Registered backbone name.")
flags.DEFINE_string("data", "synthetic", "Preset, sequence file, or 'synthetic'.")
flags.DEFINE_string("data_dir", None, "Folder holding the preset's file.")
flags.DEFINE_integer("steps", 0, "Timed train steps after the compiled first step (0: the rest of the first epoch).")
flags.DEFINE_integer("batch_size", 256, "Training batch size.")
flags.DEFINE_integer("seeds", 1, "Seeds per step: >1 times the vmapped step of that many seeds (train.seeds); "
                     "seconds_per_epoch is then per seed.")
flags.DEFINE_multi_string("override", [], "Backbone config field as key=value, e.g. --override=loss=bce.")
flags.DEFINE_string("side_file", None, "Side information for backbones that use it (default: found beside the data).")
flags.DEFINE_string("sensory_bank", None, "Item facet bank (Orbax folder or .npz) to fuse in: times the Sens model.")
flags.DEFINE_string("grasp_tables", None, "GRASP tables (grasp.npz of build_grasp.py): times the GRASP model.")


def main(argv):
  del argv
  setup_logging()
  data = load_sequences(FLAGS.data, FLAGS.data_dir)
  side = resolve_side(FLAGS.backbone, FLAGS.data, FLAGS.data_dir, data.num_items, FLAGS.side_file)
  overrides = parse_overrides(FLAGS.override, config_class(FLAGS.backbone))
  bank = load_bank(FLAGS.sensory_bank)[0] if FLAGS.sensory_bank else None
  grasp = load_grasp_tables(FLAGS.grasp_tables) if FLAGS.grasp_tables else None
  print(json.dumps(bench_train(data, FLAGS.backbone, FLAGS.steps, FLAGS.batch_size, side=side, bank=bank,
                               model_overrides=overrides, seeds=FLAGS.seeds, grasp=grasp), indent=2))


if __name__ == "__main__":
  app.run(main)
