"""Table 6 of the ASER paper on the data we have: Base vs Sens for every (domain, backbone) over 5 seeds.

  python experiments/run_table6.py --data_dir=../shared/data --workdir=runs/table6

Beauty, Toys and Yelp have item text offline and get Base and Sens rows; Grocery has none here
and gets Base rows only. Writes report/table6.{md,csv,png}, report/cold_start.{md,png} and
report/facet_targets.{md,png} (Base vs Sens for test users whose target has / has no active facet).
The same stages as the main job (experiments/run_pipeline.py), with the paper's grid as defaults.
Prebuilt banks skip the student stage for their domains:

  python experiments/run_table6.py --data_dir=../shared/data --data=beauty --backbones=sasrec \
      --bank=beauty=runs/bank/beauty/bank.npz
"""

from absl import app, flags

from aser_jax.cli import sens_override_flag, setup_logging
from aser_jax.data.presets import PRESETS
from aser_jax.pipeline import run_pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/table6", "Output folder; re-running resumes every run.")
flags.DEFINE_string("data_dir", None, "The shared data root (holding amazon2014/ and yelp/).", required=True)
flags.DEFINE_list("data", ["beauty", "toys", "yelp", "grocery"], "Domains.")
flags.DEFINE_list("backbones", ["sasrec", "bert4rec", "bsarec", "diff"], "Backbones.")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds (paired over Base and Sens).")
flags.DEFINE_multi_string("bank", [], "domain=path of a prebuilt bank (build_bank.py) for that domain's Sens rows "
                          "(repeatable); other domains get the pipeline's student bank.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_integer("workers", 1, "Recommender runs trained at once, each in its own process pinned to its share "
                     "of the CPU cores (or sharing the accelerator); progress bars are off when > 1.")
flags.DEFINE_multi_string("sens_override", [], "key=value for the Sens runs' fusion only (fusion, rho0, blend), "
                          "e.g. blend=residual; repeatable.")
flags.DEFINE_bool("seeds_together", False, "Train the seeds of each backbone and variant as one program, the "
                  "step vmapped over seeds (for an accelerator; each seed's run is unchanged).")


def main(argv):
  del argv
  setup_logging()
  banks = dict(b.split("=", 1) for b in FLAGS.bank)
  unknown = sorted(set(banks) - set(FLAGS.data))
  if unknown:
    raise app.UsageError(f"--bank names domains not in --data: {unknown}")
  domains = [(d, f"{FLAGS.data_dir}/{PRESETS[d].subdir}" if d in PRESETS else FLAGS.data_dir) for d in FLAGS.data]
  table = run_pipeline(workdir=FLAGS.workdir, domains=domains, backbones=FLAGS.backbones,
                       seeds=[int(s) for s in FLAGS.seeds], banks=banks, train_overrides={"progress": FLAGS.progress},
                       workers=FLAGS.workers, seeds_together=FLAGS.seeds_together,
                       sens_overrides=sens_override_flag(FLAGS.sens_override))
  print(table.read_text())


if __name__ == "__main__":
  app.run(main)
