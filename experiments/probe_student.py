"""Checks whether a trained student's facet presence follows a text's content or its length.

  python experiments/probe_student.py --student=runs/student --data=beauty --data_dir=../shared/data

Prints, per facet, the share of catalogue texts flagged when read once and when read twice over
(aser_jax/bank/probe.py); the two should agree for a student whose presence comes from evidence.
"""

import json

from absl import app, flags

from aser_jax.bank.probe import probe_student
from aser_jax.cli import setup_logging

_STUDENT = flags.DEFINE_string("student", None, "Workdir of a trained student.", required=True)
_DATA = flags.DEFINE_enum("data", "beauty", ["beauty", "toys", "yelp", "synthetic"], "Catalogue.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root (e.g. ../shared/data).")
_ITEMS = flags.DEFINE_integer("items", 2000, "How many catalogue texts to read (the first ones).")
_SOURCE = flags.DEFINE_enum("source", "title", ["title", "description", "review"], "Source token.")


def main(argv):
  del argv
  setup_logging()
  print(json.dumps(probe_student(_STUDENT.value, _DATA.value, _DATA_DIR.value, _ITEMS.value, _SOURCE.value),
                   indent=2))


if __name__ == "__main__":
  app.run(main)
