"""Sharded, resumable extraction: kill/exception mid-shard, idempotent re-runs, summary, binary."""

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aser_jax.teacher.backends import LexiconTeacher, ReplayTeacher
from aser_jax.teacher.extract import (ExtractConfig, Summary, is_grounded, load_texts,
                                      read_shards, run_extraction)
from aser_jax.teacher.text import TextExample, synthetic_examples

REPO = Path(__file__).resolve().parents[1]
CONFIG = ExtractConfig(shard_size=10, batch_size=4)


class CountingTeacher:
  """Wraps a teacher, records which texts it saw, and can fail on the n-th text."""

  def __init__(self, fail_at: int | None = None):
    self.inner = LexiconTeacher()
    self.name = self.inner.name
    self.seen: list[str] = []
    self.fail_at = fail_at

  def annotate(self, examples):
    for ex in examples:
      if self.fail_at is not None and len(self.seen) == self.fail_at:
        raise RuntimeError("injected failure")
      self.seen.append(ex.text)
    return self.inner.annotate(examples)


def _shards(out: Path) -> list[str]:
  return sorted(p.name for p in out.glob("shard-*.jsonl.gz"))


def test_rows_keep_order_format_and_unicode(tmp_path):
  examples = synthetic_examples()
  summary = run_extraction(examples, LexiconTeacher(), tmp_path, CONFIG, progress=False)
  rows = read_shards(tmp_path)
  assert [(r["item_id"], r["source"], r["text"]) for r in rows] == [
      (e.item_id, e.source, e.text) for e in examples]
  assert set(rows[0]) == {"item_id", "source", "text", "records", "rejected"}
  assert len(_shards(tmp_path)) == 4  # 37 texts in shards of 10
  empty = next(r for r in rows if r["text"] == "")
  assert empty["records"] == [] and empty["rejected"] == []
  uni = next(r for r in rows if "🌹" in r["text"])
  assert uni["text"] == next(e.text for e in examples if "🌹" in e.text)
  assert summary.texts == len(examples) and summary.accepted == sum(len(r["records"]) for r in rows)
  assert json.loads((tmp_path / "summary.json").read_text())["texts"] == len(examples)


def test_rerun_is_idempotent_and_skips_finished_shards(tmp_path):
  examples = synthetic_examples()
  first = run_extraction(examples, LexiconTeacher(), tmp_path, CONFIG, progress=False)
  stamps = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.glob("shard-*")}
  teacher = CountingTeacher()
  second = run_extraction(examples, teacher, tmp_path, CONFIG, progress=False)
  assert teacher.seen == []
  assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.glob("shard-*")} == stamps
  assert second.to_dict() == first.to_dict()


def test_resume_after_exception_mid_shard(tmp_path):
  examples = synthetic_examples()
  with pytest.raises(RuntimeError, match="injected"):
    run_extraction(examples, CountingTeacher(fail_at=25), tmp_path, CONFIG, progress=False)
  assert _shards(tmp_path) == ["shard-00000.jsonl.gz", "shard-00001.jsonl.gz"]
  teacher = CountingTeacher()
  resumed = run_extraction(examples, teacher, tmp_path, CONFIG, progress=False)
  assert teacher.seen == [e.text for e in examples[20:]], "only unfinished shards are redone"
  clean = run_extraction(examples, LexiconTeacher(), tmp_path / "clean", CONFIG, progress=False)
  assert read_shards(tmp_path) == read_shards(tmp_path / "clean")
  assert resumed.to_dict() == clean.to_dict()


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from aser_jax.teacher.backends import LexiconTeacher
    from aser_jax.teacher.extract import ExtractConfig, run_extraction
    from aser_jax.teacher.text import synthetic_examples

    class KillingTeacher(LexiconTeacher):
      seen = 0
      def annotate(self, examples):
        for _ in examples:
          KillingTeacher.seen += 1
          if KillingTeacher.seen == 15:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().annotate(examples)

    run_extraction(synthetic_examples(), KillingTeacher(), sys.argv[1],
                   ExtractConfig(shard_size=10, batch_size=1), progress=False)
""")


def test_resume_after_process_killed_mid_shard(tmp_path):
  out = tmp_path / "run"
  proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(out)], cwd=REPO,
                        capture_output=True, timeout=120)
  assert proc.returncode == -9, proc.stderr.decode()
  assert _shards(out) == ["shard-00000.jsonl.gz"]
  config = ExtractConfig(shard_size=10, batch_size=1)
  teacher = CountingTeacher()
  run_extraction(synthetic_examples(), teacher, out, config, progress=False)
  assert len(teacher.seen) == len(synthetic_examples()) - 10
  assert len(read_shards(out)) == len(synthetic_examples())
  assert not list(out.glob("*.tmp"))


def test_changed_settings_need_a_fresh_output(tmp_path):
  run_extraction(synthetic_examples(), LexiconTeacher(), tmp_path, CONFIG, progress=False)
  with pytest.raises(ValueError, match="shard_size"):
    run_extraction(synthetic_examples(), LexiconTeacher(), tmp_path,
                   ExtractConfig(shard_size=5), progress=False)


def test_summary_counts_repaired_and_rejected_per_attribute(tmp_path):
  good = {"attribute": "scent", "value": "vanilla", "evidence": "Smells like VANILLA",
          "polarity": "positive", "negated": False, "confidence": 0.9}
  examples = [TextExample("a", "review", "smells like   vanilla"),
              TextExample("b", "review", "so soft"),
              TextExample("c", "review", "nothing"),
              TextExample("d", "review", "red")]
  lines = [
      {"item_id": "a", "source": "review", "text": examples[0].text, "records": [good]},
      {"item_id": "b", "source": "review", "text": examples[1].text,
       "output": json.dumps([{**good, "attribute": "feel", "value": "soft", "evidence": "soft",
                              "confidence": "0.8"},
                             {**good, "attribute": "weight", "evidence": "so soft"}])},
      {"item_id": "c", "source": "review", "text": examples[2].text, "output": "sorry, no"},
  ]
  replay = tmp_path / "r.jsonl"
  replay.write_text("\n".join(json.dumps(x) for x in lines))
  s = run_extraction(examples, ReplayTeacher(replay), tmp_path / "out",
                     ExtractConfig(shard_size=3, compress=False), progress=False)
  assert (s.texts, s.outputs_valid, s.outputs_repaired, s.outputs_with_rejections) == (4, 1, 0, 3)
  assert (s.accepted, s.repaired, s.rejected, s.grounded) == (2, 1, 3, 2)
  assert s.attribute["scent"] == {"accepted": 1, "repaired": 0, "rejected": 0}
  assert s.attribute["texture"] == {"accepted": 1, "repaired": 1, "rejected": 0}
  assert s.attribute["other"]["rejected"] == 1 and s.facet["tactile"]["repaired"] == 1
  assert s.reject_reasons == {"no replay line for item X": 1, "unparseable JSON": 1,
                             "attribute X is not one of the 13 sensory attributes": 1}
  assert sorted(p.name for p in (tmp_path / "out").glob("shard-*.jsonl")) == [
      "shard-00000.jsonl", "shard-00001.jsonl"]
  rows = read_shards(tmp_path / "out")
  assert rows[2]["rejected"][0]["raw"] == "sorry, no"
  assert Summary.from_dict(json.loads((tmp_path / "out" / "summary.json").read_text())) == s


def test_is_grounded_normalises_case_and_space():
  assert is_grounded("Smells  like\nVANILLA", "it smells like vanilla!")
  assert is_grounded("doesn’t smell", "It doesn't smell")
  assert not is_grounded("", "anything") and not is_grounded("rose", "vanilla")


def test_load_texts_falls_back_to_synthetic(tmp_path, capsys):
  name, texts = load_texts("beauty", tmp_path / "absent", limit=5)
  assert name == "synthetic" and len(texts) == 5
  assert "synthetic" in capsys.readouterr().out


def test_binary_runs_and_resumes_on_synthetic(tmp_path):
  cmd = [sys.executable, str(REPO / "experiments" / "extract_teacher.py"), "--backend=lexicon",
         "--data=synthetic", f"--out={tmp_path}", "--shard_size=16"]
  first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert first.returncode == 0, first.stderr
  assert "records accepted" in first.stdout and "f:olfactory" in first.stdout
  second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert second.returncode == 0 and second.stdout.split("\n")[:3] == first.stdout.split("\n")[:3]
  with gzip.open(tmp_path / "shard-00000.jsonl.gz", "rt", encoding="utf-8") as f:
    assert len(f.readlines()) == 16
