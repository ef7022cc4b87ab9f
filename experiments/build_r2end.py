"""The R2END channel's frozen tables (item and distillation-target embeddings) as `<out>/r2end.npz`.

  python experiments/build_r2end.py --data=beauty --data_dir=../shared/data --out=runs/r2end/beauty

With `--write_prompts` only `<out>/prompts/reasoning.jsonl` (oracle-guided, train cases only) and
`items.jsonl` are written, for an LLM run elsewhere; its answers ({"id", "text"} per line) come back
with `--reasoning` and `--descriptions`. Without `--reasoning` the distillation target is the true
item's metadata alone (the paper's "w.o. LLM reasoning"). Sharded and resumable.
"""

import json

from absl import app, flags

from aser_jax.bank import grasp, r2end, shards
from aser_jax.cli import setup_logging
from aser_jax.data.presets import load_sequences
from aser_jax.pipeline import item_texts

_DATA = flags.DEFINE_string("data", "synthetic", "Preset (beauty, toys, yelp, ...), a sequence file, or 'synthetic'.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root (e.g. ../shared/data) or the preset's folder.")
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_REASONING = flags.DEFINE_string("reasoning", None, "LLM oracle-guided reasoning, JSONL {id: user id, text}.")
_DESCRIPTIONS = flags.DEFINE_string("descriptions", None, "LLM item descriptions, JSONL {id: item id, text}.")
_WRITE_PROMPTS = flags.DEFINE_bool("write_prompts", False, "Only write <out>/prompts/{reasoning,items}.jsonl.")
_N_RECENT = flags.DEFINE_integer("n_recent", 8, "History items shown in a reasoning prompt.")
_ORACLE = flags.DEFINE_bool("oracle", True, "Show the true next item in the reasoning prompts (--nooracle: the "
                            "paper's 'w.o. oracle guide' ablation).")
_ENCODER = flags.DEFINE_enum("encoder", "all-minilm-l6-v2", list(shards.ENCODERS),
                             "Frozen text encoder; char-ngram is a fast hashed stand-in for smoke runs only "
                             "(it can only train --user_encoder=mean_pool).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Texts per encoder call.")
_SHARD = flags.DEFINE_integer("shard_size", 2048, "Texts per resumable shard.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv):
  del argv
  setup_logging()
  data = load_sequences(_DATA.value, _DATA_DIR.value)
  texts = item_texts(_DATA.value, _DATA_DIR.value)
  if _WRITE_PROMPTS.value:
    paths = r2end.write_prompts(f"{_OUT.value}/prompts", data, texts, n_recent=_N_RECENT.value,
                                oracle=_ORACLE.value)
    print(json.dumps({"prompts": [str(p) for p in paths]}, indent=2))
    return
  reasoning = grasp.read_generated(_REASONING.value, data.user_ids.tolist()) if _REASONING.value else None
  descriptions = grasp.read_generated(_DESCRIPTIONS.value, range(1, data.num_items + 1)) if _DESCRIPTIONS.value \
      else None
  embed_fn = shards.text_embedder(_ENCODER.value, _BATCH.value)
  path = r2end.build_r2end_tables(data, texts, _OUT.value, embed_fn, reasoning=reasoning, descriptions=descriptions,
                                  shard_size=_SHARD.value, progress=_PROGRESS.value, encoder=_ENCODER.value)
  print(json.dumps({"tables": str(path), **r2end.load_r2end_tables(path).meta}, indent=2))


if __name__ == "__main__":
  app.run(main)
