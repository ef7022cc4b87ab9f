"""Mean ± std over seeds of finished runs, against the ASER paper's table 6; Base vs Sens paired.

  python experiments/summarize_runs.py --runs=runs/real --out=runs/summary

`--runs` takes run folders (`--workdir` of train_recommender.py) or folders holding them; runs
with the same data, backbone, bank and settings form one seed set.
"""

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.eval.summary import load_runs, summarize, write_summary

_RUNS = flags.DEFINE_list("runs", None, "Run folders, or folders holding run folders.", required=True)
_OUT = flags.DEFINE_string("out", None, "Report folder (summary.md, summary.csv, summary.json).", required=True)
_TOL = flags.DEFINE_float("tolerance", 0.10, "Relative gap to the paper's row that counts as reproduced.")


def main(argv):
  del argv
  setup_logging()
  runs, unfinished = load_runs(_RUNS.value)
  if not runs:
    raise app.UsageError(f"no finished run (metrics.json of train_recommender.py) under {', '.join(_RUNS.value)}")
  path = write_summary(summarize(runs, _TOL.value), unfinished, _OUT.value)
  print(path.read_text())


if __name__ == "__main__":
  app.run(main)
