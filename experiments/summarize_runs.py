"""Mean ± std over seeds of finished runs, against the ASER paper's table 6; Base vs Sens paired.

  python experiments/summarize_runs.py --runs=runs/real --out=runs/summary

`--runs` takes run folders (`--workdir` of train_recommender.py) or folders holding them; runs
with the same data, backbone, bank and settings form one seed set. Each `--bank` also splits its
Base-vs-Sens pairs by the test target (active facet in that bank or not), from the runs'
`test_ranks.npy` and the data's test targets:

  python experiments/summarize_runs.py --runs=runs/real --out=runs/summary \
      --bank=runs/real/pipe/beauty/bank_student/bank.npz --data_dir=../shared/data
"""

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.eval.summary import add_target_splits, load_runs, summarize, write_summary

_RUNS = flags.DEFINE_list("runs", None, "Run folders, or folders holding run folders.", required=True)
_OUT = flags.DEFINE_string("out", None, "Report folder (summary.md, summary.csv, summary.json; pairs.png when "
                           "a Sens set pairs with Base).", required=True)
_BANK = flags.DEFINE_multi_string("bank", [], "A bank a Sens set fused (matched by its digest): split its pairs "
                                   "by the test target's facets (repeatable).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root (or folder) of the runs' preset data, for --bank.")
_TOL = flags.DEFINE_float("tolerance", 0.10, "Relative gap to the paper's row that counts as reproduced.")


def main(argv):
  del argv
  setup_logging()
  runs, unfinished = load_runs(_RUNS.value)
  if not runs:
    raise app.UsageError(f"no finished run (metrics.json of train_recommender.py) under {', '.join(_RUNS.value)}")
  summary = summarize(runs, _TOL.value)
  if _BANK.value:
    summary = add_target_splits(summary, _BANK.value, _DATA_DIR.value)
  path = write_summary(summary, unfinished, _OUT.value)
  print(path.read_text())


if __name__ == "__main__":
  app.run(main)
