"""Does the student's presence follow what a text says, or how long it is?

The noisy-or presence of ASER_SPEC §3 grows with the number of content tokens when the token
evidence is spread thinly over many tokens instead of sitting on the evidence span. Reading every
text once and then twice over (`text` + newline + `text`) says nothing new, so a student whose
presence comes from evidence spans flags the same facets both times; one that has learned a bag of
weak tokens flags more on the doubled text. On the Beauty titles our first students flagged
tactile on 5% of single titles and 17% of doubled ones.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from aser_jax.bank.facets import FACETS


def length_probe(predict: Callable[[list[str]], tuple[dict, list]], texts: Sequence[str],
                 theta: float = 0.5) -> dict[str, dict[str, float]]:
  """Per facet: the share of texts active (P >= θ) read once and read twice, the mean presence
  of each, and the share whose decision flips. `predict` is `make_predict_fn`'s function."""
  texts = list(texts)
  if not texts:
    raise ValueError("length_probe needs at least one text")
  once, _ = predict(texts)
  twice, _ = predict([f"{t}\n{t}" for t in texts])
  p1, p2 = np.asarray(once["P"]), np.asarray(twice["P"])
  a1, a2 = p1 >= theta, p2 >= theta
  return {f: {"active_once": float(a1[:, j].mean()), "active_twice": float(a2[:, j].mean()),
              "mean_P_once": float(p1[:, j].mean()), "mean_P_twice": float(p2[:, j].mean()),
              "flipped": float((a1[:, j] != a2[:, j]).mean())}
          for j, f in enumerate(FACETS)}


def probe_student(student_dir: str, data: str, data_dir: str | None, items: int = 2000,
                  source: str = "title") -> dict:
  """`length_probe` of a trained student on the first `items` texts of catalogue `data`."""
  from aser_jax.bank.build import BankBuildConfig, catalogue_texts, load_student_predictor

  predict, cfg, _, _ = load_student_predictor(student_dir, data, BankBuildConfig(source=source))
  _, texts = catalogue_texts(data, data_dir)
  chosen = [t for _, t in texts[:items]]
  return {"student": student_dir, "data": data, "texts": len(chosen), "domain": cfg.domain,
          "facets": length_probe(predict, chosen, cfg.theta)}
