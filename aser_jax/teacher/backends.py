"""Teacher backends behind one interface: texts in, validated records out (ASER_SPEC §1).

Every backend maps a batch of TextExample to one schema.Validation per text, so the rest of
the pipeline (and the recommender) never depends on which backend ran:

- lexicon: the model-free curated lexicon (the embedded default);
- vllm: an offline vllm.LLM engine with JSON-schema-guided decoding, chat template,
  batching, optional LoRA adapter, greedy decoding (runs in the separate vLLM venv);
- openai: any OpenAI-compatible chat endpoint (e.g. `vllm serve`), with retries and a rate
  limit;
- replay: records produced elsewhere (JSONL), validated like the rest.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from aser_jax.data.errors import DataError
from aser_jax.data.io import iter_json_objects
from aser_jax.teacher import prompts
from aser_jax.teacher.lexicon import LexiconConfig, LexiconExtractor
from aser_jax.teacher.schema import Rejected, Validation, record_json_schema, validate_output
from aser_jax.teacher.text import TextExample, truncate_tokens


class Teacher(Protocol):
  """Texts in, validated records out."""

  name: str

  def annotate(self, examples: Sequence[TextExample]) -> list[Validation]:
    ...


def _failed(reason: str, raw: str = "") -> Validation:
  return Validation((), (), (Rejected(raw, reason),), ())


class LexiconTeacher:
  """The curated-lexicon teacher (teacher/lexicon.py); needs no model."""

  name = "lexicon"

  def __init__(self, config: LexiconConfig = LexiconConfig()):
    self.extractor = LexiconExtractor(config)

  def annotate(self, examples: Sequence[TextExample]) -> list[Validation]:
    out = []
    for ex in examples:
      records = tuple(self.extractor.extract(ex.text, ex.source))
      out.append(Validation(records, ((),) * len(records), (), ()))
    return out


@dataclasses.dataclass(frozen=True)
class LLMConfig:
  """Settings shared by the LLM backends."""

  model: str
  max_new_tokens: int = 1024  # covers max_records at the schema's length caps
  max_input_tokens: int = 384
  max_records: int = 5
  batch_size: int = 32
  guided: bool = True
  few_shot: bool = True
  domain: str | None = None


@dataclasses.dataclass(frozen=True)
class VllmConfig(LLMConfig):
  """vllm.LLM engine settings; lora_path adds a LoRA adapter (the paper's r=16 teacher)."""

  lora_path: str | None = None
  max_lora_rank: int = 16
  max_model_len: int = 2048
  dtype: str = "auto"
  seed: int = 0


def _messages(config: LLMConfig, ex: TextExample) -> list[dict[str, str]]:
  text = truncate_tokens(ex.text, config.max_input_tokens)
  return prompts.build_messages(text, config.domain, ex.source, config.few_shot)


def _vllm_sampling_params(vllm_module: Any, config: LLMConfig) -> Any:
  """Greedy SamplingParams with JSON-schema guidance, across vLLM API generations."""
  kwargs: dict[str, Any] = {"temperature": 0.0, "max_tokens": config.max_new_tokens}
  if config.guided:
    schema = record_json_schema(config.max_records)
    sampling = vllm_module.sampling_params
    if hasattr(sampling, "StructuredOutputsParams"):
      kwargs["structured_outputs"] = sampling.StructuredOutputsParams(json=schema)
    else:
      kwargs["guided_decoding"] = sampling.GuidedDecodingParams(json=schema)
  return vllm_module.SamplingParams(**kwargs)


class VllmTeacher:
  """Offline vLLM teacher; builds vllm.LLM on construction unless `llm` is injected (tests).

  `raw_outputs` keeps the model's text per annotated example, for audits.
  """

  name = "vllm"

  def __init__(self, config: VllmConfig, llm: Any = None, vllm_module: Any = None):
    self.config = config
    self._llm = llm
    self._vllm = vllm_module
    self.raw_outputs: list[str] = []
    self._engine()  # load the model now, so timing the annotation excludes start-up

  def _engine(self):
    if self._vllm is None:
      import vllm  # only present in the separate vLLM environment
      self._vllm = vllm
    if self._llm is None:
      c = self.config
      self._llm = self._vllm.LLM(model=c.model, max_model_len=c.max_model_len, dtype=c.dtype,
                                 seed=c.seed, enable_lora=c.lora_path is not None,
                                 max_lora_rank=c.max_lora_rank)
    return self._llm

  def generate(self, prompts_: Sequence[str]) -> list[str]:
    """Free text, greedy and unguided, one user turn per prompt (the GRASP and R2END prompts)."""
    llm = self._engine()
    params = self._vllm.SamplingParams(temperature=0.0, max_tokens=self.config.max_new_tokens)
    out = []
    for start in range(0, len(prompts_), self.config.batch_size):
      batch = [[{"role": "user", "content": p}] for p in prompts_[start:start + self.config.batch_size]]
      for result in llm.chat(batch, params, use_tqdm=False, lora_request=None):
        out.append(result.outputs[0].text if result.outputs else "")
    return out

  def annotate(self, examples: Sequence[TextExample]) -> list[Validation]:
    llm = self._engine()
    params = _vllm_sampling_params(self._vllm, self.config)
    lora = None
    if self.config.lora_path:
      from vllm.lora.request import LoRARequest
      lora = LoRARequest("aser_teacher", 1, self.config.lora_path)
    out = []
    for start in range(0, len(examples), self.config.batch_size):
      batch = examples[start:start + self.config.batch_size]
      conversations = [_messages(self.config, ex) for ex in batch]
      results = llm.chat(conversations, params, use_tqdm=False, lora_request=lora)
      for result in results:
        text = result.outputs[0].text if result.outputs else ""
        self.raw_outputs.append(text)
        out.append(validate_output(text))
    return out


@dataclasses.dataclass(frozen=True)
class OpenAIConfig(LLMConfig):
  """An OpenAI-compatible chat endpoint (`base_url` ends before /chat/completions)."""

  base_url: str = "http://localhost:8000/v1"
  api_key_env: str = "OPENAI_API_KEY"
  max_retries: int = 5
  backoff_s: float = 1.0
  requests_per_second: float = 0.0
  timeout_s: float = 120.0
  max_concurrency: int = 4


Transport = Callable[[str, dict, dict, float], dict]
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class HTTPStatusError(RuntimeError):
  def __init__(self, status: int, body: str):
    super().__init__(f"HTTP {status}: {body[:200]}")
    self.status = status


def urllib_transport(url: str, payload: dict, headers: dict, timeout: float) -> dict:
  """POSTs JSON with the standard library; raises HTTPStatusError on an HTTP error."""
  request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"),
                                   headers={"Content-Type": "application/json", **headers})
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      return json.loads(response.read().decode("utf-8"))
  except urllib.error.HTTPError as err:
    raise HTTPStatusError(err.code, err.read().decode("utf-8", errors="replace")) from None


class OpenAITeacher:
  """Chat-completions teacher: concurrent requests, retries with backoff, a rate limit.

  Results keep input order; the rate limit spaces request starts across all threads.
  """

  name = "openai"

  def __init__(self, config: OpenAIConfig, transport: Transport = urllib_transport,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic):
    self.config = config
    self.transport = transport
    self.sleep = sleep
    self.clock = clock
    self._last_request = -float("inf")
    self._lock = threading.Lock()
    self.raw_outputs: list[str] = []

  def _payload(self, ex: TextExample) -> dict:
    payload = {"model": self.config.model, "messages": _messages(self.config, ex),
               "temperature": 0.0, "max_tokens": self.config.max_new_tokens}
    if self.config.guided:
      # OpenAI-style structured output needs an object at the top; the validator unwraps it.
      schema = {"type": "object",
                "properties": {"records": record_json_schema(self.config.max_records)},
                "required": ["records"], "additionalProperties": False}
      payload["response_format"] = {"type": "json_schema",
                                    "json_schema": {"name": "sensory_records", "schema": schema}}
    return payload

  def _throttle(self) -> None:
    with self._lock:
      if self.config.requests_per_second > 0:
        wait = self._last_request + 1.0 / self.config.requests_per_second - self.clock()
        if wait > 0:
          self.sleep(wait)
      self._last_request = self.clock()

  def _complete(self, ex: TextExample) -> str:
    return self._post(self._payload(ex))

  def generate(self, prompts_: Sequence[str]) -> list[str]:
    """Free text, greedy and unguided, one user turn per prompt, requests in parallel; a prompt
    whose request fails after the retries gets "" (the caller retries it on its next run)."""

    def one(prompt: str) -> str:
      payload = {"model": self.config.model, "messages": [{"role": "user", "content": prompt}],
                 "temperature": 0.0, "max_tokens": self.config.max_new_tokens}
      try:
        return self._post(payload)
      except (ConnectionError, ValueError):
        return ""

    workers = max(1, min(self.config.max_concurrency, len(prompts_)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      return list(pool.map(one, prompts_))

  def _post(self, payload: dict) -> str:
    url = self.config.base_url.rstrip("/") + "/chat/completions"
    key = os.environ.get(self.config.api_key_env, "EMPTY")
    headers = {"Authorization": f"Bearer {key}"}
    last_error = ""
    for attempt in range(self.config.max_retries + 1):
      self._throttle()
      try:
        response = self.transport(url, payload, headers, self.config.timeout_s)
        return response["choices"][0]["message"]["content"] or ""
      except HTTPStatusError as err:
        last_error = str(err)
        if err.status not in _RETRY_STATUS:
          break
      except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        last_error = f"{type(err).__name__}: {err}"
      except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"malformed chat-completions response: {err!r}") from None
      if attempt < self.config.max_retries:
        self.sleep(self.config.backoff_s * 2 ** attempt)
    raise ConnectionError(f"request failed after {attempt + 1} attempt(s): {last_error}")

  def _annotate_one(self, ex: TextExample) -> tuple[str | None, Validation]:
    try:
      text = self._complete(ex)
    except (ConnectionError, ValueError) as err:
      return None, _failed(f"endpoint error: {err}")
    return text, validate_output(self._requested_list(text))

  def annotate(self, examples: Sequence[TextExample]) -> list[Validation]:
    workers = max(1, min(self.config.max_concurrency, len(examples)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      results = list(pool.map(self._annotate_one, examples))
    self.raw_outputs.extend(text for text, _ in results if text is not None)
    return [validation for _, validation in results]

  def _requested_list(self, text: str) -> Any:
    """Unwraps the {"records": [...]} object that guided requests ask for (not a repair)."""
    if self.config.guided:
      try:
        obj = json.loads(text)
      except json.JSONDecodeError:
        return text
      if isinstance(obj, dict) and set(obj) == {"records"} and isinstance(obj["records"], list):
        return obj["records"]
    return text


class ReplayTeacher:
  """Serves records produced elsewhere from JSONL, validated like live output.

  Each line: {"item_id", "source", "text", and "records" (a list) or "output" (raw model
  text)}. Lines are matched to examples by (item_id, source, text); a text with no line
  yields a rejected entry, so a partial replay file is visible in the summary. `path` is one
  file (.jsonl or .jsonl.gz) or an extraction's output folder, whose shards are read in order.
  """

  name = "replay"

  def __init__(self, path: str | Path):
    self.path = Path(path)
    self.table: dict[tuple[str, str, str], Any] = {}
    from aser_jax.teacher.extract import shard_files

    if not self.path.exists():
      raise DataError(self.path, None, "replay file not found")
    files = shard_files(self.path) if self.path.is_dir() else [self.path]
    if not files:
      raise DataError(self.path, None, "no extraction shards (shard-*.jsonl[.gz]) in this folder")
    for file in files:
      self._read(file)

  def _read(self, path: Path) -> None:
    for line_no, obj in iter_json_objects(path):
      for field in ("item_id", "source", "text"):
        if field not in obj:
          raise DataError(path, line_no, "missing field", field=field)
      if "records" in obj:
        payload = obj["records"]
      elif "output" in obj:
        payload = obj["output"]
      else:
        raise DataError(path, line_no, "needs a 'records' or 'output' field")
      self.table[(str(obj["item_id"]), obj["source"], obj["text"])] = payload

  def annotate(self, examples: Sequence[TextExample]) -> list[Validation]:
    out = []
    for ex in examples:
      key = (ex.item_id, ex.source, ex.text)
      if key not in self.table:
        out.append(_failed(f"no replay line for item {ex.item_id!r} ({ex.source})"))
      else:
        out.append(validate_output(self.table[key]))
    return out


BACKENDS = ("lexicon", "vllm", "openai", "replay")


def make_teacher(backend: str, *, model: str = "", replay_path: str = "",
                 base_url: str = "", lora_path: str = "", batch_size: int = 32,
                 max_new_tokens: int = 1024, max_records: int = 5, guided: bool = True,
                 few_shot: bool = True, requests_per_second: float = 0.0,
                 max_concurrency: int = 4) -> Teacher:
  """Builds a backend by name with the options that apply to it."""
  if backend == "lexicon":
    return LexiconTeacher()
  if backend == "vllm":
    if not model:
      raise ValueError("--backend=vllm needs --model (an HF folder or hub id available offline)")
    return VllmTeacher(VllmConfig(model=model, lora_path=lora_path or None, batch_size=batch_size,
                                  max_new_tokens=max_new_tokens, max_records=max_records,
                                  guided=guided, few_shot=few_shot))
  if backend == "openai":
    if not model:
      raise ValueError("--backend=openai needs --model (the served model name)")
    return OpenAITeacher(OpenAIConfig(model=model, base_url=base_url or OpenAIConfig.base_url,
                                      max_new_tokens=max_new_tokens, max_records=max_records,
                                      guided=guided, few_shot=few_shot,
                                      requests_per_second=requests_per_second,
                                      max_concurrency=max_concurrency))
  if backend == "replay":
    if not replay_path:
      raise ValueError("--backend=replay needs --replay (a JSONL file of records)")
    return ReplayTeacher(replay_path)
  raise ValueError(f"unknown teacher backend {backend!r}; choose one of {BACKENDS}")
