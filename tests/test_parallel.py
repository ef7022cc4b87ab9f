"""Many runs at once (`aser_jax.train.parallel`): core slots, worker settings, errors, and the
table-6 runs trained in parallel giving the folders a sequential re-run resumes."""

import json
import os

import pytest

import parallel_probe
from aser_jax.pipeline import base_vs_sens
from aser_jax.train.parallel import core_slots, map_in_processes


def test_core_slots_split_contiguously_and_share_when_short():
  assert core_slots(2, [0, 1, 2, 3]) == [[0, 1], [2, 3]]
  assert core_slots(2, [0, 1, 2, 3, 4]) == [[0, 1, 2], [3, 4]]
  assert core_slots(3, [4, 6]) == [[4], [6], [4]]
  assert core_slots(1, [0, 1]) == [[0, 1]]


def test_workers_are_pinned_to_their_slots_and_run_xla_single_threaded_on_one_core():
  jobs = [{"tag": t} for t in range(4)]
  got = map_in_processes(parallel_probe.where, jobs, workers=2)
  assert [g["tag"] for g in got] == [0, 1, 2, 3]  # results in job order
  assert [g["sum"] for g in got] == [0.0, 1.0, 3.0, 6.0]
  assert os.getpid() not in {g["pid"] for g in got}
  slots = core_slots(2)
  assert all(g["cores"] in slots for g in got)
  assert all(g["preallocate"] == "false" for g in got)
  by_pid = {g["pid"]: g["cores"] for g in got}
  if len(by_pid) == 2 and len(os.sched_getaffinity(0)) >= 2:
    a, b = by_pid.values()
    assert not set(a) & set(b)  # two workers never share a core when there are enough
  for g in got:
    single = "--xla_cpu_multi_thread_eigen=false" in g["xla_flags"]
    assert single == (len(g["cores"]) == 1)
    assert "--xla_gpu_autotune_level=0" in g["xla_flags"].split()


def test_a_users_autotune_level_is_kept(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_autotune_level=2")
  got = map_in_processes(parallel_probe.where, [{"tag": 0}, {"tag": 1}], workers=2)
  for g in got:
    levels = [f for f in g["xla_flags"].split() if f.startswith("--xla_gpu_autotune_level")]
    assert levels == ["--xla_gpu_autotune_level=2"]


def test_in_process_when_one_worker_and_done_callback_order():
  seen = []
  got = map_in_processes(parallel_probe.where, [{"tag": 2}, {"tag": 0}], workers=1,
                         on_done=lambda i, r: seen.append((i, r["tag"])))
  assert {g["pid"] for g in got} == {os.getpid()} and seen == [(0, 2), (1, 0)]


def test_a_failed_job_is_named():
  with pytest.raises(RuntimeError, match=r"job 1 \(\{'tag': 1, 'bad': 1\}\) failed: tag 1 is bad"):
    map_in_processes(parallel_probe.fail_on, [{"tag": t, "bad": 1} for t in range(3)], workers=2)


def test_parallel_runs_match_what_a_sequential_rerun_resumes(tmp_path, tiny_data_file):
  kw = dict(workdir=tmp_path, data=str(tiny_data_file), data_dir=None, backbones=["sasrec", "gru4rec"],
            seeds=[0, 1], sens=False, train_overrides={"epochs": 2, "progress": False, "batch_size": 64})
  par, _, _ = base_vs_sens(workers=2, **kw)
  runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
  assert runs == ["gru4rec_base_seed0", "gru4rec_base_seed1", "sasrec_base_seed0", "sasrec_base_seed1"]
  for name in runs:
    m = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
    assert m["train_config"]["seed"] == int(name[-1]) and not m["train_config"]["progress"]
  seq, _, _ = base_vs_sens(workers=1, **kw)  # every run is finished: resumed, not retrained
  assert par == seq
  (key, sasrec), = [(k, v) for k, v in par.items() if k[1] == "sasrec"]
  stored = [json.loads((tmp_path / "runs" / f"sasrec_base_seed{s}" / "metrics.json").read_text())["test"]["NDCG@10"]
            for s in (0, 1)]
  assert [r["NDCG@10"] for r in sasrec["base"]] == stored and stored[0] != stored[1]
