"""The ASER paper's table 6 (five-run means, full ranking), as reference figures for our runs.

Keyed by our preset names (`aser_jax.data.presets`); values are fractions (the paper prints
percentages). The paper's out-of-domain Yelp rows are on YelpHF (530k users), another dataset
than the S3-Rec `Yelp.txt` we have, so they are not listed here.
"""

from __future__ import annotations

METRIC_ORDER = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20")

# domain -> backbone -> (Base row, Sens row), each in METRIC_ORDER, in percent as printed.
_TABLE6_PERCENT = {
    "beauty": {
        "sasrec": ((3.93, 6.01, 9.21, 2.55, 3.22, 4.02), (4.08, 6.64, 9.72, 2.74, 3.56, 4.33)),
        "bert4rec": ((3.00, 4.63, 6.88, 1.90, 2.43, 2.99), (3.32, 4.83, 7.12, 2.21, 2.73, 3.25)),
        "bsarec": ((7.05, 9.69, 12.96, 4.92, 5.42, 6.21), (7.15, 9.73, 13.96, 5.10, 5.95, 6.77)),
        "diff": ((6.99, 10.74, 15.31, 4.84, 6.05, 7.20), (7.63, 11.53, 16.59, 5.30, 6.56, 7.83)),
    },
    "toys": {
        "sasrec": ((5.05, 7.27, 10.08, 3.46, 4.17, 4.88), (5.12, 7.42, 10.22, 3.53, 4.27, 4.98)),
        "bert4rec": ((2.33, 3.63, 5.58, 1.55, 1.96, 2.45), (2.42, 3.71, 5.71, 1.68, 2.12, 2.52)),
        "bsarec": ((7.90, 10.63, 13.99, 5.73, 6.61, 7.45), (7.80, 10.46, 13.81, 5.72, 6.58, 7.42)),
        "diff": ((5.00, 7.62, 11.19, 3.18, 4.03, 4.93), (5.27, 7.99, 11.95, 3.49, 4.36, 5.36)),
    },
    "sports": {
        "sasrec": ((1.71, 2.79, 4.16, 1.09, 1.44, 1.78), (2.46, 3.71, 5.54, 1.62, 2.02, 2.47)),
        "bert4rec": ((1.46, 2.41, 3.91, 0.93, 1.23, 1.61), (1.80, 2.60, 4.06, 1.26, 1.72, 1.91)),
        "bsarec": ((4.14, 5.96, 8.32, 2.89, 3.47, 4.06), (4.34, 6.19, 8.52, 3.01, 3.64, 4.20)),
        "diff": ((4.28, 6.39, 9.57, 2.79, 3.47, 4.27), (4.41, 6.84, 10.14, 2.96, 3.74, 4.57)),
    },
    "video_games": {
        "sasrec": ((7.75, 10.28, 14.07, 6.09, 6.91, 7.86), (7.80, 10.62, 14.88, 6.08, 6.98, 8.04)),
        "bert4rec": ((4.38, 6.39, 9.53, 3.11, 3.76, 4.55), (5.33, 7.80, 10.10, 3.45, 3.92, 4.89)),
        "bsarec": ((8.35, 11.99, 16.76, 5.92, 7.09, 8.29), (8.43, 12.05, 16.80, 5.98, 7.14, 8.31)),
        "diff": ((9.31, 12.84, 17.58, 7.01, 8.14, 9.33), (9.81, 13.42, 18.34, 7.44, 8.60, 9.84)),
    },
    "grocery": {
        "sasrec": ((4.30, 7.14, 10.94, 2.75, 3.66, 4.61), (4.76, 7.89, 11.65, 3.23, 4.14, 5.16)),
        "bert4rec": ((5.27, 8.00, 12.07, 3.47, 4.35, 5.37), (5.80, 8.63, 13.20, 4.10, 5.01, 5.91)),
        "bsarec": ((6.79, 9.82, 14.42, 4.73, 5.71, 6.86), (7.90, 11.75, 15.90, 5.85, 6.86, 8.27)),
        "diff": ((6.55, 10.25, 15.47, 4.17, 5.35, 6.67), (7.05, 10.96, 16.43, 4.67, 5.93, 7.31)),
    },
}


def table6_gain(domain: str, backbone: str) -> dict[str, float] | None:
  """The paper's relative gain of Sens over Base per metric, or None where it lacks either row."""
  base, sens = table6_reference(domain, backbone, "base"), table6_reference(domain, backbone, "sens")
  return {m: sens[m] / base[m] - 1 for m in base} if base and sens else None


def table6_reference(domain: str, backbone: str, variant: str) -> dict[str, float] | None:
  """The paper's table-6 metrics (fractions) of one row, or None where the paper has none."""
  rows = _TABLE6_PERCENT.get(domain, {}).get(backbone)
  if rows is None or variant not in ("base", "sens"):
    return None
  row = rows[0] if variant == "base" else rows[1]
  return {m: round(v / 100, 6) for m, v in zip(METRIC_ORDER, row)}
