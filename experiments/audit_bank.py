"""Bank audit: coverage heatmap (PNG), strongest evidence per facet, items with no active facet.

  python experiments/audit_bank.py --bank=beauty=runs/bank/beauty --bank=toys=runs/bank/toys --out=runs/audit
"""

from absl import app, flags

from aser_jax.bank.audit import audit_banks
from aser_jax.cli import setup_logging

_BANK = flags.DEFINE_multi_string("bank", [], "domain=folder written by build_bank.py (repeatable).")
_OUT = flags.DEFINE_string("out", None, "Report folder.", required=True)
_TOP = flags.DEFINE_integer("top", 5, "Items listed per facet.")


def main(argv):
  del argv
  setup_logging()
  if not _BANK.value:
    raise app.UsageError("give at least one --bank=domain=folder")
  audit_banks(dict(b.split("=", 1) for b in _BANK.value), _OUT.value, _TOP.value)
  print(open(f"{_OUT.value}/audit.md").read())


if __name__ == "__main__":
  app.run(main)
