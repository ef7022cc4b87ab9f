"""The embedded default: a small, deterministic, clearly synthetic catalogue.

Items belong to latent taste clusters; each cluster has a sensory profile (colour, finish,
scent, texture, flavour words) that appears in the item titles, so the text carries signal
the ID sequences also carry. Users draw mostly from one or two clusters and often step to
an item's successor within its cluster, which a sequential model can learn.
"""

from __future__ import annotations

import numpy as np

from aser_jax.data.items import ItemTable
from aser_jax.data.sequences import ReadReport, SequenceData

SYNTHETIC_NAME = "synthetic"

_PRODUCTS = ["lipstick", "lotion", "shampoo", "candle", "body wash", "nail polish", "face cream", "perfume"]
_PROFILES = [
    ("matte", "ruby red", "rose scented", "velvety"),
    ("glossy", "coral pink", "vanilla scented", "creamy"),
    ("shimmering", "gold", "citrus scented", "silky"),
    ("satin", "deep plum", "lavender scented", "smooth"),
    ("clear", "transparent", "fragrance-free", "lightweight"),
    ("metallic", "silver", "musky", "sticky"),
    ("pearly", "ivory white", "coconut scented", "whipped"),
    ("neon", "electric blue", "mint scented", "gel-like"),
]


def synthetic_dataset(num_users: int = 800, num_items: int = 300, num_clusters: int = 8,
                      seed: int = 0) -> tuple[SequenceData, ItemTable]:
  """Returns `(sequences, item_text)`; the same arguments always give the same data."""
  rng = np.random.default_rng(seed)
  cluster = np.sort(rng.integers(0, num_clusters, num_items))  # item (0-based) -> cluster
  members = [np.flatnonzero(cluster == c) for c in range(num_clusters)]
  popularity = rng.zipf(1.6, num_items).clip(1, 50).astype(np.float64)
  seqs = []
  for _ in range(num_users):
    tastes = rng.choice(num_clusters, size=rng.integers(1, 3), replace=False)
    length = int(rng.integers(5, 21))
    seq = []
    cur = None
    for _ in range(length):
      if cur is not None and rng.random() < 0.5:
        pool = members[cluster[cur]]
        nxt = pool[(np.searchsorted(pool, cur) + 1) % len(pool)]
      else:
        c = tastes[rng.integers(len(tastes))] if rng.random() < 0.9 else rng.integers(num_clusters)
        pool = members[c]
        p = popularity[pool] / popularity[pool].sum()
        nxt = pool[rng.choice(len(pool), p=p)]
      seq.append(int(nxt) + 1)
      cur = int(nxt)
    seqs.append(np.asarray(seq, np.int32))
  data = SequenceData(np.arange(1, num_users + 1, dtype=np.int64), tuple(seqs), num_items,
                      SYNTHETIC_NAME, synthetic=True,
                      report=ReadReport("<synthetic>", num_users, sum(len(s) for s in seqs)))
  rows = {}
  for i in range(num_items):
    finish, colour, scent, texture = _PROFILES[cluster[i] % len(_PROFILES)]
    product = _PRODUCTS[(i * 7 + cluster[i]) % len(_PRODUCTS)]
    rows[i + 1] = {
        "item_id": i + 1,
        "title": f"Synthetic {finish} {colour} {product} no. {i + 1}",
        "brand": f"Brand{cluster[i]}",
        "categories": ["Synthetic", product.title()],
        "description": f"A {texture} {product} with a {finish} finish, {scent}.",
    }
  return data, ItemTable("item_id", rows, ("item_id", "title", "brand", "categories", "description"),
                         "<synthetic>")


_REVIEW_TEMPLATES = (
    "This {product} feels {texture} and the {colour} shade is lovely.",
    "Love the {finish} {colour} look; it is {scent}.",
    "The {product} is {scent} and goes on {texture}.",
    "Arrived quickly and works as described, good value for the {product}.",
    "Not {scent} at all, and the {finish} finish looks cheap.",
    "My second {product} from this brand, still happy with it.",
)


def synthetic_supervision_texts(num_items: int = 240, seed: int = 1) -> list[tuple[str, str, str]]:
  """`(item_id, source, text)` review-like texts about items that are NOT in the synthetic
  catalogue (ids `sup-k`), built from the same sensory vocabulary: the embedded supervision
  corpus of the student (ASER_SPEC §2 removes benchmark items, so it must not reuse them)."""
  rng = np.random.default_rng(seed)
  out = []
  for k in range(num_items):
    finish, colour, scent, texture = _PROFILES[rng.integers(len(_PROFILES))]
    product = _PRODUCTS[rng.integers(len(_PRODUCTS))]
    for t in rng.choice(len(_REVIEW_TEMPLATES), size=2, replace=False):
      text = _REVIEW_TEMPLATES[t].format(product=product, texture=texture, colour=colour, finish=finish, scent=scent)
      out.append((f"sup-{k}", "review", text))
    out.append((f"sup-{k}", "title", f"Synthetic {finish} {colour} {product}"))
  return out
