"""The four teacher backends behind one interface, with fakes for vLLM and HTTP."""

import json
import sys
import types

import pytest

from aser_jax.data.errors import DataError
from aser_jax.teacher import prompts
from aser_jax.teacher.backends import (HTTPStatusError, LexiconTeacher, OpenAIConfig, OpenAITeacher,
                                       ReplayTeacher, VllmConfig, VllmTeacher, make_teacher)
from aser_jax.teacher.schema import validate_output
from aser_jax.teacher.text import TextExample

GOOD = {"attribute": "scent", "value": "vanilla", "evidence": "smells like vanilla",
        "polarity": "positive", "negated": False, "confidence": 0.9}
EXAMPLES = [TextExample("i1", "review", "It smells like vanilla."),
            TextExample("i2", "review", "Arrived late."),
            TextExample("i3", "title", "Matte Lipstick, Red")]


def test_lexicon_teacher_interface():
  out = LexiconTeacher().annotate(EXAMPLES)
  assert len(out) == 3
  assert out[0].records and out[1].records == () and out[2].records
  assert all(v.rejected == () for v in out)


def test_prompt_example_is_itself_valid_output():
  messages = prompts.build_messages("Soft and fluffy.", domain="beauty", source="review")
  assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
  assert messages[-1]["content"].endswith("Soft and fluffy.")
  assert "Domain: beauty" in messages[-1]["content"]
  example = validate_output(messages[2]["content"])
  assert len(example.records) == 2 and example.rejected == () and not any(example.repairs)
  example_input = messages[1]["content"]
  assert all(r.evidence in example_input for r in example.records)
  assert len(prompts.build_messages("x", few_shot=False)) == 2


# -- vLLM -----------------------------------------------------------------------------------

class _FakeSampling:
  class StructuredOutputsParams:
    def __init__(self, json):
      self.json = json


class _FakeVllm(types.SimpleNamespace):
  def __init__(self):
    super().__init__(sampling_params=_FakeSampling, created=[])

  def SamplingParams(self, **kwargs):
    return kwargs


class _FakeLLM:
  def __init__(self, replies):
    self.replies = list(replies)
    self.calls = []

  def chat(self, conversations, params, use_tqdm, lora_request):
    self.calls.append((conversations, params, lora_request))
    out = []
    for _ in conversations:
      text = self.replies.pop(0)
      out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]))
    return out


def test_vllm_teacher_batches_guides_and_validates():
  replies = [json.dumps([GOOD]), "```json\n[]\n```", "not json"]
  llm = _FakeLLM(replies)
  teacher = VllmTeacher(VllmConfig(model="m", batch_size=2, max_records=4), llm=llm,
                        vllm_module=_FakeVllm())
  out = teacher.annotate(EXAMPLES)
  assert [len(c[0]) for c in llm.calls] == [2, 1]
  params = llm.calls[0][1]
  assert params["temperature"] == 0.0
  assert params["structured_outputs"].json["maxItems"] == 4
  assert llm.calls[0][0][0][-1]["content"].endswith("It smells like vanilla.")
  assert out[0].records[0].value == "vanilla"
  assert out[1].records == () and "stripped code fence" in out[1].output_repairs
  assert "unparseable" in out[2].rejected[0].reason
  assert teacher.raw_outputs == replies


def test_vllm_teacher_unguided_and_lora(monkeypatch):
  lora_module = types.ModuleType("vllm.lora.request")
  lora_module.LoRARequest = lambda name, idx, path: ("lora", name, idx, path)
  monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
  monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
  monkeypatch.setitem(sys.modules, "vllm.lora.request", lora_module)
  llm = _FakeLLM(["[]"])
  teacher = VllmTeacher(VllmConfig(model="m", guided=False, lora_path="/adapters/a"), llm=llm,
                        vllm_module=_FakeVllm())
  teacher.annotate(EXAMPLES[:1])
  conversations, params, lora = llm.calls[0]
  assert "structured_outputs" not in params
  assert lora == ("lora", "aser_teacher", 1, "/adapters/a")


def test_vllm_input_is_truncated_to_budget():
  llm = _FakeLLM(["[]"])
  teacher = VllmTeacher(VllmConfig(model="m", max_input_tokens=3), llm=llm, vllm_module=_FakeVllm())
  teacher.annotate([TextExample("i", "review", "one two three four five")])
  assert llm.calls[0][0][0][-1]["content"].endswith("one two three")


# -- OpenAI-compatible ----------------------------------------------------------------------

def _reply(content):
  return {"choices": [{"message": {"content": content}}]}


def test_openai_retries_with_backoff_then_succeeds():
  calls, sleeps = [], []

  def transport(url, payload, headers, timeout):
    calls.append((url, payload))
    if len(calls) < 3:
      raise HTTPStatusError(429 if len(calls) == 1 else 503, "slow down")
    return _reply(json.dumps({"records": [GOOD]}))

  teacher = OpenAITeacher(OpenAIConfig(model="m", base_url="http://h/v1/", backoff_s=0.5),
                          transport=transport, sleep=sleeps.append)
  (out,) = teacher.annotate(EXAMPLES[:1])
  assert calls[0][0] == "http://h/v1/chat/completions"
  assert sleeps == [0.5, 1.0]
  assert out.records[0].value == "vanilla" and out.output_repairs == () and not any(out.repairs)
  payload = calls[0][1]
  assert payload["temperature"] == 0.0 and payload["model"] == "m"
  assert payload["response_format"]["type"] == "json_schema"


def test_openai_unguided_output_is_validated_as_sent():
  teacher = OpenAITeacher(OpenAIConfig(model="m", guided=False),
                          transport=lambda *a: _reply(json.dumps({"records": [GOOD]})))
  (out,) = teacher.annotate(EXAMPLES[:1])
  assert "response_format" not in teacher._payload(EXAMPLES[0])
  assert "unwrapped records from object" in out.output_repairs


def test_openai_non_retryable_and_exhausted_errors_become_rejections():
  def bad_request(url, payload, headers, timeout):
    bad_request.n += 1
    raise HTTPStatusError(400, "bad")
  bad_request.n = 0
  teacher = OpenAITeacher(OpenAIConfig(model="m"), transport=bad_request, sleep=lambda s: None)
  (out,) = teacher.annotate(EXAMPLES[:1])
  assert bad_request.n == 1 and "HTTP 400" in out.rejected[0].reason

  def down(url, payload, headers, timeout):
    raise ConnectionError("refused")
  teacher = OpenAITeacher(OpenAIConfig(model="m", max_retries=2), transport=down,
                          sleep=lambda s: None)
  (out,) = teacher.annotate(EXAMPLES[:1])
  assert "after 3 attempt(s)" in out.rejected[0].reason

  teacher = OpenAITeacher(OpenAIConfig(model="m"), transport=lambda *a: {"oops": 1},
                          sleep=lambda s: None)
  (out,) = teacher.annotate(EXAMPLES[:1])
  assert "malformed chat-completions response" in out.rejected[0].reason


def test_openai_concurrent_requests_keep_input_order():
  import threading
  import time
  active, peak = [0], [0]
  lock = threading.Lock()

  def transport(url, payload, headers, timeout):
    with lock:
      active[0] += 1
      peak[0] = max(peak[0], active[0])
    time.sleep(0.05)
    with lock:
      active[0] -= 1
    text = payload["messages"][-1]["content"].split("Text:\n")[1]
    return _reply(json.dumps([{**GOOD, "value": text, "evidence": text}]))

  examples = [TextExample(f"i{k}", "review", f"text number {k}") for k in range(8)]
  teacher = OpenAITeacher(OpenAIConfig(model="m", max_concurrency=4), transport=transport)
  out = teacher.annotate(examples)
  assert [v.records[0].value for v in out] == [e.text for e in examples]
  assert 1 < peak[0] <= 4


def test_openai_rate_limit_spaces_requests():
  now = [0.0]
  sleeps = []

  def sleep(s):
    sleeps.append(s)
    now[0] += s

  teacher = OpenAITeacher(OpenAIConfig(model="m", requests_per_second=4.0, max_concurrency=1),
                          transport=lambda *a: _reply("[]"), sleep=sleep, clock=lambda: now[0])
  teacher.annotate(EXAMPLES)
  assert sleeps == [pytest.approx(0.25), pytest.approx(0.25)]


# -- replay ---------------------------------------------------------------------------------

def test_replay_validates_and_reports_missing(tmp_path):
  path = tmp_path / "replay.jsonl"
  lines = [
      {"item_id": "i1", "source": "review", "text": EXAMPLES[0].text, "records": [GOOD]},
      {"item_id": "i3", "source": "title", "text": EXAMPLES[2].text,
       "output": "```json\n[{\"attribute\": \"colour\", \"value\": \"red\", \"evidence\": \"Red\","
                 " \"polarity\": \"neutral\", \"negated\": false, \"confidence\": \"0.7\"},]\n```"},
  ]
  path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
  out = ReplayTeacher(path).annotate(EXAMPLES)
  assert out[0].records[0].value == "vanilla" and not any(out[0].repairs)
  assert "no replay line for item 'i2'" in out[1].rejected[0].reason
  (red,) = out[2].records
  assert red.attribute == "color" and red.confidence == 0.7
  assert {"stripped code fence", "removed trailing commas"} <= set(out[2].output_repairs)


@pytest.mark.parametrize("line, message", [
    ("{not json", r"replay\.jsonl:2: not JSON"),
    ('{"item_id": "a", "source": "review"}', r"replay\.jsonl:2 \[text\]"),
    ('{"item_id": "a", "source": "review", "text": "t"}', "needs a 'records' or 'output'"),
])
def test_replay_bad_lines_name_file_and_line(tmp_path, line, message):
  path = tmp_path / "replay.jsonl"
  path.write_text(json.dumps({"item_id": "i", "source": "review", "text": "t", "records": []})
                  + "\n" + line + "\n")
  with pytest.raises(DataError, match=message):
    ReplayTeacher(path)


def test_replay_reads_an_extraction_folder(tmp_path):
  """An extraction's output folder (shards and their summaries) replays as the teacher that wrote
  it: the same records per text; a bad line names its shard."""
  from aser_jax.teacher.extract import ExtractConfig, run_extraction
  from aser_jax.teacher.text import synthetic_examples

  examples = synthetic_examples()[:30]
  run_extraction(examples, LexiconTeacher(), tmp_path / "out", ExtractConfig(shard_size=8, batch_size=4),
                 data_name="synthetic", progress=False)
  assert len(list((tmp_path / "out").glob("shard-*.jsonl.gz"))) == 4
  replayed = ReplayTeacher(tmp_path / "out").annotate(examples)
  direct = LexiconTeacher().annotate(examples)
  assert [v.records for v in replayed] == [v.records for v in direct] and any(v.records for v in direct)
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no extraction shards"):
    ReplayTeacher(tmp_path / "empty")
  (tmp_path / "out" / "shard-00009.jsonl").write_text("{oops\n")
  with pytest.raises(DataError, match=r"shard-00009\.jsonl:1: not JSON"):
    ReplayTeacher(tmp_path / "out")


def test_make_teacher_checks_options():
  assert make_teacher("lexicon").name == "lexicon"
  with pytest.raises(ValueError, match="--model"):
    make_teacher("vllm")
  with pytest.raises(ValueError, match="--model"):
    make_teacher("openai")
  with pytest.raises(ValueError, match="--replay"):
    make_teacher("replay")
  with pytest.raises(ValueError, match="unknown teacher backend"):
    make_teacher("gpt")
  assert make_teacher("openai", model="m", base_url="http://x/v1").config.base_url == "http://x/v1"
