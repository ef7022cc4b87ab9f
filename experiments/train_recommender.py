"""Trains one sequential recommender and writes `<workdir>/metrics.json`.

  python experiments/train_recommender.py --backbone=sasrec --data=beauty \
      --data_dir=../shared/data/amazon2014/beauty --workdir=runs/sasrec_beauty_s0 --seed=0

With no --data_dir the embedded synthetic catalogue is used (labelled synthetic everywhere).
Re-running with the same --workdir resumes from its latest checkpoint. `--seeds=0,1,2
--workdir=runs/sasrec_beauty_s{seed}` trains the seeds together, one vmapped step (for a GPU).
"""

import json

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.models import registry
from aser_jax.train.run import parse_overrides, run_recommender, run_recommender_seeds

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone", "sasrec", "Registered backbone name.")
flags.DEFINE_string("data", None, "Preset (beauty, sports, toys, video_games, grocery, yelp), a sequence "
                    "file path, or 'synthetic'. Default: a preset-less synthetic run without --data_dir.")
flags.DEFINE_string("data_dir", None, "Folder holding the preset's file (e.g. Beauty.txt or Beauty.txt.gz).")
flags.DEFINE_string("workdir", "runs/default", "Output and checkpoint folder; an existing one is resumed.")
flags.DEFINE_integer("seed", 0, "Seed for init, data order, dropout and negatives.")
flags.DEFINE_list("seeds", None, "Train these seeds together in one process, one step vmapped over them (fills "
                  "an accelerator that one small run leaves idle; each seed's run is unchanged). --workdir must "
                  "contain {seed}, e.g. runs/sasrec_beauty_s{seed}; each folder resumes alone or with others.")
flags.DEFINE_integer("epochs", None, "Maximum epochs (default: the paper setting of the backbone, else 200).")
flags.DEFINE_integer("patience", None, "Early-stopping patience in epochs (default: the paper setting of the "
                     "backbone, else 10).")
flags.DEFINE_string("metric", None, "Validation metric for early stopping (default NDCG@10).")
flags.DEFINE_integer("batch_size", None, "Training batch size (default 256).")
flags.DEFINE_float("lr", None, "Learning rate (default: the paper setting of the backbone).")
flags.DEFINE_integer("max_len", None, "Maximum sequence length L (default 50).")
flags.DEFINE_integer("hidden", None, "Hidden size (default 64).")
flags.DEFINE_bool("empty_inputs", None, "Keep the reference's one training sample per user whose input is "
                  "empty (default False: dropped, per BACKBONES.md).")
flags.DEFINE_float("max_minutes", None, "Minutes of training in this invocation: stop after the first epoch "
                   "that ends past them and test the best epoch so far; re-running the command continues.")
flags.DEFINE_integer("data_workers", None, "Grain worker processes for batching (default 0: in-process).")
flags.DEFINE_string("side_file", None, "Item side information for backbones that use it (DIFF): an S3-Rec "
                    "item2attributes json or an item-text table. Default: <Name>_item2attributes*.json(.gz) "
                    "beside the sequence file.")
flags.DEFINE_multi_string("override", [], "Backbone config field as key=value, e.g. --override=heads=1.")
flags.DEFINE_string("sensory_bank", None, "Item facet bank (Orbax folder or .npz) to fuse into the item table.")
flags.DEFINE_string("grasp_tables", None, "GRASP channel tables (grasp.npz of experiments/build_grasp.py): "
                    "user-conditioned item embeddings for sasrec, bert4rec or gru4rec, instead of ID embeddings.")
flags.DEFINE_bool("paper_settings", True, "Apply the paper's settings for (backbone, dataset) first.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_bool("verbose", False, "Also show INFO logs of JAX and Orbax.")


def main(argv):
  del argv
  setup_logging(FLAGS.verbose)
  cfg_cls = registry.config_class(FLAGS.backbone)
  model_kw = parse_overrides(FLAGS.override, cfg_cls)
  for name in ("max_len", "hidden"):
    if FLAGS[name].value is not None:
      model_kw[name] = FLAGS[name].value
  train_kw = {"seed": FLAGS.seed, "progress": FLAGS.progress}
  for name in ("epochs", "patience", "metric", "batch_size", "lr", "data_workers", "empty_inputs", "max_minutes"):
    if FLAGS[name].value is not None:
      train_kw[name] = FLAGS[name].value
  data = FLAGS.data or ("synthetic" if FLAGS.data_dir is None else None)
  if data is None:
    raise app.UsageError("--data_dir needs --data (a preset name or a file name inside it)")
  kwargs = dict(backbone=FLAGS.backbone, data=data, data_dir=FLAGS.data_dir, workdir=FLAGS.workdir,
                use_paper_settings=FLAGS.paper_settings, model_overrides=model_kw, train_overrides=train_kw,
                side_file=FLAGS.side_file, sensory_bank=FLAGS.sensory_bank,
                grasp_tables=FLAGS.grasp_tables)
  if FLAGS.seeds:
    if FLAGS["seed"].present:
      raise app.UsageError("pass --seed or --seeds, not both")
    results = run_recommender_seeds(seeds=[int(s) for s in FLAGS.seeds], **kwargs)
  else:
    results = [run_recommender(**kwargs)]
  for result in results:
    print(json.dumps({"data": result["data"], "synthetic": result["synthetic"], "backbone": result["backbone"],
                      "seed": result["train_config"]["seed"], "test": result["test"], "epochs": result["epochs"],
                      "seconds_per_epoch": result["seconds_per_epoch"]}, indent=2))


if __name__ == "__main__":
  app.run(main)
