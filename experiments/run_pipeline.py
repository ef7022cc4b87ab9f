"""The README's main job: teacher -> supervision -> student -> bank -> Base vs Sens -> table 6, on the
synthetic default or real data.

  python experiments/run_pipeline.py                                  # embedded synthetic catalogue
  python experiments/run_pipeline.py --data=beauty,toys,yelp --data_dir=../shared/data --seeds=0,1,2,3,4 \\
      --backbones=sasrec,bert4rec,bsarec,diff
"""

from absl import app, flags

from aser_jax.cli import sens_override_flag, setup_logging
from aser_jax.data.presets import PRESETS
from aser_jax.pipeline import StudentStage, run_pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/main", "Output folder (re-running resumes finished and unfinished runs).")
flags.DEFINE_list("data", None, "Dataset presets or sequence files; default: the synthetic catalogue.")
flags.DEFINE_string("data_dir", None, "Folder holding the real data (the shared data root or a domain folder); "
                    "a preset's files are looked for in <data_dir>/<preset's usual subfolder> too.")
flags.DEFINE_list("backbones", ["sasrec"], "Backbones to train.")
flags.DEFINE_list("seeds", ["0"], "Seeds; the table reports their mean and a paired t-test.")
flags.DEFINE_integer("epochs", None, "Maximum epochs per run (default: the backbone's paper setting, else 200, "
                     "with early stopping on real data; 20 on the synthetic default).")
flags.DEFINE_enum("teacher", "lexicon", ["lexicon", "openai", "replay"], "Teacher backend for stage 1: lexicon "
                  "(needs no model), openai (a local OpenAI-compatible server, e.g. vLLM's, --teacher_model and "
                  "--teacher_base_url) or replay (--teacher_replay: records written earlier, e.g. by "
                  "extract_teacher.py --backend=vllm in vLLM's own environment; a text without a record "
                  "counts as rejected).")
flags.DEFINE_string("teacher_model", "", "Served model name, for --teacher=openai.")
flags.DEFINE_string("teacher_base_url", "", "Server URL, for --teacher=openai (default: the backend's, localhost).")
flags.DEFINE_string("teacher_replay", "", "JSONL file of teacher records, or an extraction's output folder "
                    "(extract_teacher.py --out), for --teacher=replay.")
flags.DEFINE_string("sensory_bank", None, "Use this bank for Sens instead of building one (one domain only).")
flags.DEFINE_enum("bank", "student", ["student", "teacher"], "Sens bank: the trained student's (ASER_SPEC §4) or "
                  "the canonical-target bank straight from the teacher's records (§2).")
flags.DEFINE_integer("student_steps", None, "Student steps per epoch (default: 10 on the synthetic default, "
                     "a full pass over the supervision on real data).")
flags.DEFINE_bool("sens", True, "Also build the bank and train the Sens variant of every backbone.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_integer("workers", 1, "Recommender runs trained at once, each in its own process pinned to its share "
                     "of the CPU cores (or sharing the accelerator); progress bars are off when > 1.")
flags.DEFINE_multi_string("sens_override", [], "key=value for the Sens runs' fusion only (fusion, rho0, blend), "
                          "e.g. blend=residual; repeatable.")
flags.DEFINE_bool("seeds_together", False, "Train the seeds of each backbone and variant as one program, the "
                  "step vmapped over seeds (for an accelerator; each seed's run is unchanged).")


def _domain_dir(data: str, data_dir: str | None) -> str | None:
  """The folder holding a preset's sequence file: `data_dir` or its usual subfolder of it."""
  if data_dir is None or data not in PRESETS:
    return data_dir
  import os
  sub = os.path.join(data_dir, PRESETS[data].subdir)
  return sub if os.path.isdir(sub) else data_dir


def main(argv):
  del argv
  setup_logging()
  datas = FLAGS.data or (["synthetic"] if FLAGS.data_dir is None else None)
  if datas is None:
    raise app.UsageError("--data_dir needs --data (preset names or file names inside it)")
  if FLAGS.sensory_bank and len(datas) > 1:
    raise app.UsageError("--sensory_bank serves one domain; run one --data at a time")
  if FLAGS.teacher == "openai" and not FLAGS.teacher_model:
    raise app.UsageError("--teacher=openai needs --teacher_model (the served model name)")
  if FLAGS.teacher == "replay" and not FLAGS.teacher_replay:
    raise app.UsageError("--teacher=replay needs --teacher_replay (a JSONL file of records)")
  teacher_options = {k: v for k, v in (("model", FLAGS.teacher_model), ("base_url", FLAGS.teacher_base_url),
                                       ("replay_path", FLAGS.teacher_replay)) if v}
  train = {"progress": FLAGS.progress}
  epochs = FLAGS.epochs if FLAGS.epochs is not None else (20 if datas == ["synthetic"] else None)
  if epochs is not None:
    train["epochs"] = epochs
  table = run_pipeline(workdir=FLAGS.workdir, domains=[(d, _domain_dir(d, FLAGS.data_dir)) for d in datas],
                       backbones=FLAGS.backbones, seeds=[int(s) for s in FLAGS.seeds], train_overrides=train,
                       teacher=FLAGS.teacher, teacher_options=teacher_options, sens=FLAGS.sens,
                       sensory_bank=FLAGS.sensory_bank,
                       stage=StudentStage(bank=FLAGS.bank, steps_per_epoch=FLAGS.student_steps), workers=FLAGS.workers,
                       seeds_together=FLAGS.seeds_together, sens_overrides=sens_override_flag(FLAGS.sens_override))
  print(table.read_text())


if __name__ == "__main__":
  app.run(main)
