"""Bank audit: coverage heatmap (PNG), strongest evidence per facet, items with no active facet.

  python experiments/audit_bank.py --bank=beauty=runs/bank/beauty --bank=toys=runs/bank/toys --out=runs/audit \
      --data_dir=../shared/data   # adds the bank-vs-lexicon-teacher agreement on the catalogue texts
"""

from absl import app, flags

from aser_jax.bank.audit import audit_banks
from aser_jax.bank.build import catalogue_texts
from aser_jax.bank.io import load_bank
from aser_jax.cli import setup_logging

_BANK = flags.DEFINE_multi_string("bank", [], "domain=folder written by build_bank.py (repeatable).")
_OUT = flags.DEFINE_string("out", None, "Report folder.", required=True)
_TOP = flags.DEFINE_integer("top", 5, "Items listed per facet.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root of the catalogues the banks were built from: "
                                "adds the lexicon teacher's agreement on the same texts.")


def main(argv):
  del argv
  setup_logging()
  if not _BANK.value:
    raise app.UsageError("give at least one --bank=domain=folder")
  banks = dict(b.split("=", 1) for b in _BANK.value)
  texts = None
  if _DATA_DIR.value:
    texts = {d: catalogue_texts(load_bank(f"{path}/bank")[1]["data"], _DATA_DIR.value)[1] for d, path in banks.items()}
  audit_banks(banks, _OUT.value, _TOP.value, texts)
  print(open(f"{_OUT.value}/audit.md").read())


if __name__ == "__main__":
  app.run(main)
