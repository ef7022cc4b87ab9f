"""The GRASP channel's frozen tables (U, U_bar, I, I_bar) of one catalogue, as `<out>/grasp.npz`.

  python experiments/build_grasp.py --data=beauty --data_dir=../shared/data --out=runs/grasp/beauty

With `--write_prompts` only `<out>/prompts/items.jsonl` and `users.jsonl` are written, for an
LLM run elsewhere; its answers ({"id", "text"} per line) come back with `--item_texts` and
`--user_texts`. Without them the texts are templates (item texts; titles of the user's training
items). Sharded and resumable: a killed build re-embeds only the missing shards.
"""

import json

from absl import app, flags

from aser_jax.bank import grasp, shards
from aser_jax.cli import setup_logging
from aser_jax.data.presets import load_sequences
from aser_jax.pipeline import item_texts

_DATA = flags.DEFINE_string("data", "synthetic", "Preset (beauty, toys, yelp, ...), a sequence file, or 'synthetic'.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root (e.g. ../shared/data) or the preset's folder.")
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_K = flags.DEFINE_integer("k", 10, "Neighbours averaged into U_bar / I_bar.")
_ITEM_TEXTS = flags.DEFINE_string("item_texts", None, "LLM item descriptions, JSONL {id, text} (default: templates).")
_USER_TEXTS = flags.DEFINE_string("user_texts", None, "LLM user preference summaries, JSONL {id, text}.")
_WRITE_PROMPTS = flags.DEFINE_bool("write_prompts", False, "Only write <out>/prompts/{items,users}.jsonl.")
_ENCODER = flags.DEFINE_enum("encoder", "all-minilm-l6-v2", list(shards.ENCODERS),
                             "Text encoder; char-ngram is a fast hashed stand-in for smoke runs only.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Texts per encoder call.")
_SHARD = flags.DEFINE_integer("shard_size", 2048, "Texts per resumable shard.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv):
  del argv
  setup_logging()
  data = load_sequences(_DATA.value, _DATA_DIR.value)
  texts = item_texts(_DATA.value, _DATA_DIR.value)
  if _WRITE_PROMPTS.value:
    paths = grasp.write_prompts(f"{_OUT.value}/prompts", data, texts)
    print(json.dumps({"prompts": [str(p) for p in paths]}, indent=2))
    return
  gen_items = gen_users = None
  if _ITEM_TEXTS.value:
    gen_items = grasp.read_generated(_ITEM_TEXTS.value, range(1, data.num_items + 1))
  if _USER_TEXTS.value:
    gen_users = grasp.read_generated(_USER_TEXTS.value, data.user_ids.tolist())
  embed_fn = shards.text_embedder(_ENCODER.value, _BATCH.value)
  path = grasp.build_grasp_tables(data, texts, _OUT.value, embed_fn, k=_K.value, item_texts_override=gen_items,
                                  user_texts_override=gen_users, shard_size=_SHARD.value,
                                  progress=_PROGRESS.value, encoder=_ENCODER.value)
  print(json.dumps({"tables": str(path), **grasp.load_grasp_tables(path).meta}, indent=2))


if __name__ == "__main__":
  app.run(main)
