"""Answers a GRASP or R2END prompt file with an LLM: `{"id", "prompt"}` lines in, `{"id", "text"}` out.

  python experiments/build_r2end.py --data=beauty --data_dir=../shared/data --out=runs/r2end/beauty --write_prompts
  python experiments/generate_texts.py --prompts=runs/r2end/beauty/prompts/reasoning.jsonl \\
      --out=runs/r2end/beauty/reasoning.jsonl --backend=openai --base_url=http://localhost:8011/v1 --model=MODEL
  python experiments/build_r2end.py ... --reasoning=runs/r2end/beauty/reasoning.jsonl

Greedy decoding. `--backend=vllm` runs in the separate vLLM environment (experiments/vllm/); a
re-run asks only for the ids missing from --out, so a killed run loses at most one batch.
"""

import json

from absl import app, flags

from aser_jax.cli import setup_logging
from aser_jax.teacher.backends import OpenAIConfig, OpenAITeacher, VllmConfig, VllmTeacher
from aser_jax.teacher.generate import generate_texts

_PROMPTS = flags.DEFINE_string("prompts", None, "Prompt file (JSONL {id, prompt}).", required=True)
_OUT = flags.DEFINE_string("out", None, "Answer file (JSONL {id, text}); appended to on a re-run.", required=True)
_BACKEND = flags.DEFINE_enum("backend", "openai", ["openai", "vllm"], "LLM backend.")
_MODEL = flags.DEFINE_string("model", None, "Served model name (openai) or model folder (vllm).", required=True)
_BASE_URL = flags.DEFINE_string("base_url", OpenAIConfig.base_url, "OpenAI-compatible endpoint (openai).")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 768, "Tokens per answer (the papers ask for <= 512 words).")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Prompts per batch (and per flush of --out).")
_CONCURRENCY = flags.DEFINE_integer("max_concurrency", 4, "Parallel requests (openai).")
_LIMIT = flags.DEFINE_integer("limit", 0, "Answer only the first N prompts (0: all).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  del argv
  setup_logging()
  if _BACKEND.value == "vllm":
    llm = VllmTeacher(VllmConfig(model=_MODEL.value, batch_size=_BATCH.value, max_new_tokens=_MAX_NEW.value))
  else:
    llm = OpenAITeacher(OpenAIConfig(model=_MODEL.value, base_url=_BASE_URL.value, max_new_tokens=_MAX_NEW.value,
                                     max_concurrency=_CONCURRENCY.value))
  summary = generate_texts(_PROMPTS.value, _OUT.value, llm.generate, batch_size=_BATCH.value, limit=_LIMIT.value,
                           progress=_PROGRESS.value)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  app.run(main)
