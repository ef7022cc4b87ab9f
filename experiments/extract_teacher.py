"""Stage-1 teacher extraction (ASER_SPEC §1) into sharded, resumable JSONL(.gz).

Example:
  python experiments/extract_teacher.py --backend=lexicon --data=beauty --out=runs/teacher/beauty
"""

from absl import app, flags

from aser_jax.teacher.backends import BACKENDS
from aser_jax.teacher.extract import extract_corpus
from aser_jax.teacher.text import PRESETS

_BACKEND = flags.DEFINE_enum("backend", "lexicon", list(BACKENDS), "Teacher backend.")
_DATA = flags.DEFINE_enum("data", "beauty", sorted(PRESETS) + ["synthetic"],
                          "Corpus preset; the embedded synthetic texts when the data root does not exist.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data root (default: ../shared/data).")
_OUT = flags.DEFINE_string("out", None, "Output folder for shards and summary.json.",
                           required=True)
_LIMIT = flags.DEFINE_integer("limit", 0, "Keep only the first N texts (0: all).")
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 1000, "Texts per output shard.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Texts per teacher call (vllm: also per generate batch).")
_COMPRESS = flags.DEFINE_bool("compress", True, "Write .jsonl.gz shards.")
_MODEL = flags.DEFINE_string("model", "", "vllm: HF folder; openai: served model name.")
_LORA = flags.DEFINE_string("lora", "", "vllm: optional LoRA adapter folder.")
_BASE_URL = flags.DEFINE_string("base_url", "", "openai: endpoint base URL (…/v1).")
_RPS = flags.DEFINE_float("requests_per_second", 0.0, "openai: rate limit (0: none).")
_CONCURRENCY = flags.DEFINE_integer("max_concurrency", 4, "openai: requests in flight.")
_REPLAY = flags.DEFINE_string("replay", "", "replay: JSONL file of records, or an earlier run's --out folder.")
_GUIDED = flags.DEFINE_bool("guided", True, "LLM backends: JSON-schema-guided decoding.")
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 1024, "LLM backends: output budget.")
_MAX_RECORDS = flags.DEFINE_integer("max_records", 5, "LLM backends: records per text (schema).")
_FEW_SHOT = flags.DEFINE_bool("few_shot", True, "LLM backends: include the worked example.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  del argv
  extract_corpus(_BACKEND.value, _DATA.value, _DATA_DIR.value, _OUT.value, limit=_LIMIT.value,
                 shard_size=_SHARD_SIZE.value, batch_size=_BATCH_SIZE.value,
                 compress=_COMPRESS.value, progress=_PROGRESS.value, model=_MODEL.value, lora_path=_LORA.value,
                 base_url=_BASE_URL.value, requests_per_second=_RPS.value,
                 max_concurrency=_CONCURRENCY.value,
                 replay_path=_REPLAY.value, guided=_GUIDED.value,
                 max_new_tokens=_MAX_NEW_TOKENS.value, max_records=_MAX_RECORDS.value,
                 few_shot=_FEW_SHOT.value)


if __name__ == "__main__":
  app.run(main)
