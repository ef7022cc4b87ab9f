"""Free-text generation for the GRASP/R2END prompt files: the backends' `generate`, resume after a
kill (torn last line, failed answers asked again), bad prompt files, and the binary against a
local OpenAI-compatible server feeding `build_r2end_tables`."""

import http.server
import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import REPO
from test_teacher_backends import _FakeLLM, _FakeVllm
from aser_jax.bank import grasp, r2end
from aser_jax.data.errors import DataError
from aser_jax.teacher.backends import OpenAIConfig, OpenAITeacher, VllmConfig, VllmTeacher
from aser_jax.teacher.generate import generate_texts, read_prompts


def _prompts(path, n=5):
  path.write_text("".join(json.dumps({"id": str(i), "prompt": f"why {i}?"}) + "\n" for i in range(n)))
  return path


def _lines(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_openai_generate_sends_one_plain_user_turn_and_gives_empty_on_failure():
  sent = []

  def transport(url, payload, headers, timeout):
    sent.append((url, payload))
    if payload["messages"][0]["content"] == "bad":
      raise ConnectionError("down")
    return {"choices": [{"message": {"content": "because " + payload["messages"][0]["content"]}}]}

  teacher = OpenAITeacher(OpenAIConfig(model="m", max_new_tokens=7, max_retries=0), transport=transport,
                          sleep=lambda s: None)
  assert teacher.generate(["a", "bad", "c"]) == ["because a", "", "because c"]
  url, payload = sent[0]
  assert url.endswith("/chat/completions") and "response_format" not in payload
  assert (payload["messages"], payload["temperature"], payload["max_tokens"]) == (
      [{"role": "user", "content": "a"}], 0.0, 7)


def test_vllm_generate_batches_unguided_greedy():
  llm = _FakeLLM(["x", "y", "z"])
  teacher = VllmTeacher(VllmConfig(model="m", batch_size=2, max_new_tokens=9), llm=llm, vllm_module=_FakeVllm())
  assert teacher.generate(["p1", "p2", "p3"]) == ["x", "y", "z"]
  assert [len(c[0]) for c in llm.calls] == [2, 1]
  assert llm.calls[0][1] == {"temperature": 0.0, "max_tokens": 9} and llm.calls[0][2] is None
  assert llm.calls[1][0] == [[{"role": "user", "content": "p3"}]]


class _Dies(RuntimeError):
  pass


def test_generation_resumes_after_a_kill_and_asks_again_for_empty_answers(tmp_path):
  prompts, out = _prompts(tmp_path / "p.jsonl"), tmp_path / "out" / "a.jsonl"
  asked = []

  def dying(ps):
    asked.append(list(ps))
    if len(asked) == 2:
      raise _Dies()
    return [f"answer to {p}" for p in ps]

  with pytest.raises(_Dies):
    generate_texts(prompts, out, dying, batch_size=2, progress=False)
  assert [r["id"] for r in _lines(out)] == ["0", "1"]
  with open(out, "a") as f:
    f.write('{"id": "2", "te')  # a kill in the middle of a write
  flaky = lambda ps: ["" if p == "why 3?" else f"answer to {p}" for p in ps]
  s = generate_texts(prompts, out, flaky, batch_size=2, progress=False)
  assert (s["answered_before"], s["written"], s["empty"]) == (2, 2, 1)
  assert [r["id"] for r in _lines(out)] == ["0", "1", "2", "4"]
  s = generate_texts(prompts, out, lambda ps: [f"late {p}" for p in ps], progress=False)
  assert (s["answered_before"], s["written"]) == (4, 1) and _lines(out)[-1] == {"id": "3", "text": "late why 3?"}
  assert generate_texts(prompts, tmp_path / "few.jsonl", lambda ps: ["t"] * len(ps), limit=2,
                        progress=False)["written"] == 2
  with pytest.raises(ValueError, match="2 answers for 1"):
    generate_texts(prompts, tmp_path / "n.jsonl", lambda ps: ["a", "b"], batch_size=1, progress=False)


def test_bad_prompt_files_are_named_by_line_and_field(tmp_path):
  bad = tmp_path / "bad.jsonl"
  for line in ('{"id": true, "prompt": "y"}', '{"id": "", "prompt": "y"}', '{"id": [2], "prompt": "y"}',
               '{"prompt": "y"}'):
    bad.write_text('{"id": "1", "prompt": "x"}\n' + line + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2.*\[id\]"):
      read_prompts(bad)
  for second in ('"1"', "1"):  # an integer id is the same id as its string
    bad.write_text('{"id": "1", "prompt": "x"}\n{"id": ' + second + ', "prompt": "y"}\n')
    with pytest.raises(DataError, match="already on line 1"):
      read_prompts(bad)
  bad.write_text('{"id": "1"}\n')
  with pytest.raises(DataError, match=r"\[prompt\]"):
    read_prompts(bad)


class _Handler(http.server.BaseHTTPRequestHandler):
  def do_POST(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    prompt = body["messages"][0]["content"]
    reply = json.dumps({"choices": [{"message": {"content": f"The shopper likes colour ({len(prompt)} chars)."}}]})
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.end_headers()
    self.wfile.write(reply.encode())

  def log_message(self, *args):
    pass


def test_binary_answers_r2end_prompts_through_a_local_server_and_the_tables_read_them(tmp_path):
  from test_r2end import _data, _fake_embed, _texts

  data = _data()
  reasoning_prompts, _ = r2end.write_prompts(tmp_path / "prompts", data, _texts())
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    res = subprocess.run([sys.executable, str(REPO / "experiments" / "generate_texts.py"),
                          f"--prompts={reasoning_prompts}", f"--out={tmp_path / 'reasoning.jsonl'}",
                          "--backend=openai", "--model=m", f"--base_url=http://127.0.0.1:{server.server_port}/v1",
                          "--progress=false"], check=True, capture_output=True, text=True)
  finally:
    server.shutdown()
  assert json.loads(res.stdout)["written"] == 2
  answers = grasp.read_generated(tmp_path / "reasoning.jsonl", data.user_ids.tolist())
  assert sorted(answers) == ["10", "12"] and answers["10"].startswith("The shopper likes colour")
  path = r2end.build_r2end_tables(data, _texts(), tmp_path / "t", _fake_embed([]), reasoning=answers, progress=False)
  tab = r2end.load_r2end_tables(path)
  assert (tab.meta["reasoning_source"], tab.meta["targets_with_reasoning"]) == ("llm", 2)
  _, targets = r2end.table_texts(data, _texts(), reasoning=answers)
  assert targets[0].startswith(answers["10"]) and np.all(tab.E_targets[0, 0] == len(targets[0]))


def test_integer_prompt_ids_resume_and_read_back_like_string_ids(tmp_path):
  """A hand-written prompt file may number its ids; answers are keyed by the id's string, so a
  re-run skips what was answered and `grasp.read_generated` reads them back."""
  prompts = tmp_path / "p.jsonl"
  prompts.write_text("".join(json.dumps({"id": i, "prompt": f"why {i}?"}) + "\n" for i in (1, 2, 3)))
  assert read_prompts(prompts) == [("1", "why 1?"), ("2", "why 2?"), ("3", "why 3?")]
  out = tmp_path / "a.jsonl"
  assert generate_texts(prompts, out, lambda ps: [f"a {p}" for p in ps], limit=2, progress=False)["written"] == 2
  calls = []
  s = generate_texts(prompts, out, lambda ps: calls.append(ps) or ["late"] * len(ps), progress=False)
  assert (s["answered_before"], s["written"], calls) == (2, 1, [["why 3?"]])
  assert grasp.read_generated(out, [1, 2, 3]) == {"1": "a why 1?", "2": "a why 2?", "3": "late"}
  with open(out, "a") as f:
    f.write('{"text": "no id"}\n')
  with pytest.raises(DataError, match=r"a.jsonl:4.*\[id\]"):
    generate_texts(prompts, out, lambda ps: ["x"] * len(ps), progress=False)
