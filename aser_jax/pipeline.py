"""The main job: teacher -> supervision -> student -> bank -> Base vs Sens -> table 6, on the
synthetic default or on real data.

Stages, each resumable (a finished stage is skipped on re-run):
1. `student/`, shared by every domain (ASER_SPEC §1-§3): the teacher (lexicon by default)
   annotates the supervision corpus (the review corpora under the data root, or the embedded
   synthetic reviews about non-catalogue items), which becomes facet supervision with the
   benchmark items removed, and the facet-aware student is trained on it.
2. `<domain>/bank_student/`: the frozen student embeds every item text into the facet bank (§4).
   With `bank="teacher"` the bank is instead the canonical-target bank of §2 built from the
   teacher's records of the item texts (`<domain>/teacher/`, `<domain>/bank/`).
3. `<domain>/runs/`: each backbone trained and tested per seed, without (Base) and with the
   bank (Sens).
4. `report/`: table 6 (Markdown, CSV, PNG) with relative gains and paired t-tests, cold-start
   buckets, and per-backbone qualitative rank-change cases.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from aser_jax.data.presets import load_sequences
from aser_jax.data.synthetic import SYNTHETIC_NAME, synthetic_dataset, synthetic_supervision_texts

log = logging.getLogger("aser_jax")

# Review corpora of the shared data root used as the student's supervision (domain -> preset).
REAL_SUPERVISION = {"beauty": "all_beauty_2018", "fine_food": "fine_food", "foodcom": "foodcom",
                    "games": "video_games_qa"}


@dataclasses.dataclass(frozen=True)
class StudentStage:
  """How the main job trains its student. The synthetic default is cut to a few steps so the
  job runs in minutes; on real data the paper's settings apply unless `steps_per_epoch` is set."""

  bank: str = "student"  # student (ASER_SPEC §4) | teacher (canonical-target bank, §2)
  steps_per_epoch: int | None = None  # None: 10 on the synthetic default, a full pass on real data
  max_per_source: int = 3000
  max_len: int | None = None  # None: 32 on the synthetic default, 64 on real data


def _data_root(data_dir: str | None, rel: str) -> Path | None:
  """The data root holding `rel`: `data_dir` itself or one of its two parents (data_dir may be
  the shared root or a domain folder inside it)."""
  if data_dir is None:
    return None
  base = Path(data_dir)
  for root in (base, base.parent, base.parent.parent):
    if (root / rel).exists():
      return root
  return None


def train_pipeline_student(workdir: Path, data_dir: str | None, teacher: str = "lexicon",
                           stage: StudentStage = StudentStage(), progress: bool = True,
                           teacher_options: dict | None = None) -> Path:
  """Teacher -> supervision -> student (ASER_SPEC §1-§3) in `workdir/student`; returns its folder.
  `teacher_options` go to `teacher.backends.make_teacher` (model, base_url, replay_path, ...)."""
  from aser_jax.supervision.corpus import CorpusConfig, build_corpus
  from aser_jax.supervision.examples import SupervisionConfig
  from aser_jax.teacher import text as text_lib
  from aser_jax.teacher.backends import make_teacher
  from aser_jax.teacher.extract import ExtractConfig, run_extraction
  from aser_jax.train.student_loop import StudentTrainConfig, train_student

  out = workdir / "student"
  corpora = {}
  for domain, preset in REAL_SUPERVISION.items():
    root = _data_root(data_dir, text_lib.PRESETS[preset].relpath)
    if root is not None:
      corpora[domain] = list(text_lib.read_preset(preset, root))
  synthetic = not corpora
  if synthetic:
    corpora = {"synthetic": [text_lib.TextExample(*t) for t in synthetic_supervision_texts()]}
  sup_dir = out / "supervision"
  if not (sup_dir / "manifest.json").exists():
    dirs = {}
    backend = make_teacher(teacher, **(teacher_options or {}))  # once: a replay teacher reads its records here
    for domain, examples in corpora.items():
      dirs[domain] = str(out / "teacher" / domain)
      run_extraction(examples, backend, dirs[domain], ExtractConfig(), data_name=domain, progress=progress)
    max_len = stage.max_len or (32 if synthetic else 64)
    build_corpus(dirs, sup_dir, None if synthetic else _data_root(data_dir, "amazon2014"),
                 CorpusConfig(max_per_source=stage.max_per_source, supervision=SupervisionConfig(max_len=max_len)))
  steps = stage.steps_per_epoch if stage.steps_per_epoch is not None else (10 if synthetic else 0)
  cfg = (StudentTrainConfig(epochs_a=1, epochs_b=2, batch_size=32, lr_encoder=5e-5, lr_heads=1e-3,
                            max_steps_per_epoch=steps) if synthetic else StudentTrainConfig(max_steps_per_epoch=steps))
  train_student(sup_dir, out / "run", cfg, progress=progress)
  return out / "run"


def build_pipeline_student_bank(student_dir: Path, data: str, data_dir: str | None, workdir: Path,
                                progress: bool = True) -> Path | None:
  """The student bank of one catalogue (ASER_SPEC §4) as `.npz`, or None without item text here."""
  from aser_jax.bank.build import CATALOGUE_FIELDS, build_student_bank
  from aser_jax.bank.io import load_bank
  from aser_jax.teacher import text as text_lib

  path = workdir / "bank_student" / "bank.npz"
  if path.exists():
    load_bank(path)  # validates
    return path
  if data == SYNTHETIC_NAME:
    root = None
  elif data in CATALOGUE_FIELDS:
    root = _data_root(data_dir, text_lib.PRESETS[data].relpath)
    if root is None:
      return None
  else:
    log.info("no item text for %s here: Sens rows are skipped", data)
    return None
  _, stats = build_student_bank(student_dir, data, root, workdir / "bank_student", export=True, progress=progress)
  log.info("student bank: %d of %d items have an active facet; coverage %s", stats["items_with_active_facet"],
           stats["items"], stats["coverage"])
  return path


def item_texts(data: str, data_dir: str | None) -> list:
  """Item texts of the recommendation catalogue as teacher inputs (item ids are sequence ids)."""
  from aser_jax.teacher import text as text_lib

  if data == SYNTHETIC_NAME:
    _, table = synthetic_dataset()
    out = []
    for i, row in table.rows.items():
      out.append(text_lib.TextExample(str(i), "title", table.text(i, ("title", "categories"))))
      out.append(text_lib.TextExample(str(i), "description", row["description"]))
    return out
  if data not in text_lib.PRESETS:
    return []
  root = _data_root(data_dir, text_lib.PRESETS[data].relpath)
  return list(text_lib.read_preset(data, root)) if root is not None else []


def build_teacher_bank(data: str, data_dir: str | None, workdir: Path, num_items: int, backend: str = "lexicon",
                       progress: bool = True, teacher_options: dict | None = None):
  """Stages 1-2; returns the bank path, or None when the catalogue has no item text here."""
  from aser_jax.bank.io import export_npz, load_bank, save_bank
  from aser_jax.bank.teacher_bank import teacher_bank
  from aser_jax.models.encoders import embed_texts
  from aser_jax.teacher.backends import make_teacher
  from aser_jax.teacher.extract import ExtractConfig, read_shards, run_extraction

  bank_dir = workdir / "bank"
  if (bank_dir / "bank.npz").exists():
    load_bank(bank_dir / "bank.npz")  # validates
    return bank_dir / "bank.npz"
  examples = item_texts(data, data_dir)
  if not examples:
    log.info("no item text for %s here: Sens rows are skipped", data)
    return None
  run_extraction(examples, make_teacher(backend, **(teacher_options or {})), workdir / "teacher", ExtractConfig(),
                 data_name=data, progress=progress)
  rows = read_shards(workdir / "teacher")
  bank, stats = teacher_bank(rows, num_items, embed_texts)
  bank_dir.mkdir(parents=True, exist_ok=True)
  meta = {"kind": "canonical-target bank (ASER_SPEC §2)", "teacher": backend, "encoder": "all-minilm-l6-v2",
          "data": data}
  save_bank(bank_dir / "orbax", bank, meta)
  export_npz(bank_dir / "bank.npz", bank, meta)
  (bank_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
  log.info("bank: %d of %d items have an active facet; coverage %s", stats["items_with_active_facet"],
           num_items, {k: round(v, 3) for k, v in stats["coverage"].items()})
  return bank_dir / "bank.npz"


def base_vs_sens(*, workdir: str | Path, data: str, data_dir: str | None, backbones: list[str], seeds: list[int],
                 train_overrides: dict | None = None, teacher: str = "lexicon", teacher_options: dict | None = None,
                 sens: bool = True,
                 sensory_bank: str | None = None, student_dir: Path | None = None,
                 workers: int = 1, seeds_together: bool = False,
                 sens_overrides: dict | None = None) -> tuple[dict, dict, dict]:
  """Base and Sens runs of every backbone and seed on one domain; returns table-6 input, the
  per-run cold-start buckets of the test targets' training counts, and the per-run metrics of
  the test users whose target has / has no active facet in the bank (empty without a bank).

  The bank is `sensory_bank` when given, else the bank of the student in `student_dir`, else the
  teacher bank built in `workdir`; a domain without item text gets Base rows only. With
  `workers > 1` the runs train that many at a time in their own processes (`train.run.run_recommenders`),
  without progress bars; each finished run is logged. With `seeds_together` the seeds of each
  (backbone, variant) train as one vmapped program (`train.seeds`), for an accelerator.
  `sens_overrides` (fusion settings only, `train.run.fusion_overrides`) apply to the Sens runs.
  """
  from aser_jax.train.run import run_recommenders

  out = Path(workdir)
  seqs = load_sequences(data, data_dir)
  bank_path = sensory_bank
  progress = (train_overrides or {}).get("progress", True)
  if sens and bank_path is None and student_dir is not None:
    bank_path = build_pipeline_student_bank(student_dir, data, data_dir, out, progress)
  elif sens and bank_path is None:
    bank_path = build_teacher_bank(data, data_dir, out, seqs.num_items, teacher, progress, teacher_options)
  from aser_jax.data.splits import eval_split, train_item_counts
  from aser_jax.eval.significance import cold_start_buckets, facet_target_split

  targets = eval_split(seqs, 1, "test").targets
  target_counts = train_item_counts(seqs)[targets]
  target_active = None
  if sens and bank_path is not None:
    from aser_jax.bank.io import load_bank

    target_active = load_bank(bank_path)[0].A.any(-1)[targets]
  grid = [(backbone, seed, variant, bank) for backbone in backbones for seed in seeds
          for variant, bank in (("base", None), ("sens", bank_path if sens else None))
          if variant == "base" or bank is not None]
  sens_overrides = sens_overrides or {}
  jobs = [dict(backbone=backbone, data=data, data_dir=data_dir,
               workdir=str(_run_dir(out, backbone, variant, seed, bank, sens_overrides)),
               train_overrides={"seed": seed, **(train_overrides or {})}, sensory_bank=str(bank) if bank else None,
               model_overrides=sens_overrides if bank else {})
          for backbone, seed, variant, bank in grid]
  finished = run_recommenders(jobs, workers, seeds_together)
  results, buckets, facet_splits = {}, {}, {}
  for backbone in backbones:
    runs = {"base": [], "sens": []}
    cold = {"base": [], "sens": []}
    facet = {"base": [], "sens": []}
    for (b, _, variant, _), job, r in zip(grid, jobs, finished):
      if b != backbone:
        continue
      runs[variant].append({**r["test"], "sensory_alpha": r.get("sensory_alpha")})
      ranks = np.load(Path(job["workdir"]) / "test_ranks.npy")
      cold[variant].append(cold_start_buckets(ranks, target_counts))
      if target_active is not None:
        facet[variant].append(facet_target_split(ranks, target_active))
    if runs["sens"]:
      _qualitative(out, backbone, seeds[0], bank_path, seqs, sens_overrides)
    label = f"{seqs.name} (SYNTHETIC)" if seqs.synthetic else seqs.name
    results[(label, backbone)] = runs
    buckets[(label, backbone)] = cold
    if target_active is not None:
      facet_splits[(label, backbone)] = facet
  return results, buckets, facet_splits


def _run_dir(out: Path, backbone: str, variant: str, seed: int, bank=None, sens_overrides=None) -> Path:
  """A run's folder; a Sens run's name carries a digest of its bank's path and of its fusion
  overrides (when any), so switching banks (student, teacher, --sensory_bank) or fusion settings
  in one workdir never resumes a run trained on another."""
  if variant == "sens":
    import hashlib

    key = str(Path(bank).resolve()) + (json.dumps(sens_overrides, sort_keys=True) if sens_overrides else "")
    variant = f"sens-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
  return out / "runs" / f"{backbone}_{variant}_seed{seed}"


def _qualitative(out: Path, backbone: str, seed: int, bank_path, seqs, sens_overrides=None) -> Path:
  """Rank-change cases of one seed with the evidence spans of the targets' active facets."""
  from aser_jax.bank.io import load_bank
  from aser_jax.data.splits import eval_split
  from aser_jax.eval.qualitative import evidence_by_item, rank_changes, write_cases
  from aser_jax.teacher.extract import read_shards

  from aser_jax.bank.audit import student_evidence_by_item

  ranks = {v: np.load(_run_dir(out, backbone, v, seed, bank_path, sens_overrides) / "test_ranks.npy")
           for v in ("base", "sens")}
  build_dir = Path(bank_path).parent
  if (build_dir / "shards").is_dir():
    evidence = student_evidence_by_item(build_dir)
  elif (out / "teacher").exists():
    evidence = evidence_by_item(read_shards(out / "teacher"))
  else:
    evidence = {}
  cases = rank_changes(ranks["base"], ranks["sens"], eval_split(seqs, 1, "test").targets, load_bank(bank_path)[0],
                       evidence)
  return write_cases(cases, out / f"qualitative_{backbone}_seed{seed}.md")


def run_pipeline(*, workdir: str, domains: list[tuple[str, str | None]], stage: StudentStage = StudentStage(),
                 banks: dict[str, str] | None = None, **kwargs) -> Path:
  """The student (once), then `base_vs_sens` for every `(data, data_dir)` domain, then one table 6
  and the cold-start buckets (ASER_SPEC §6); returns the table's Markdown path.

  `banks` {data: bank path} gives prebuilt banks (e.g. from `build_bank.py`) to the domains it
  names; the student is trained only when some domain still needs a bank from it."""
  from aser_jax.eval.report import cold_start_report, table6

  banks = banks or {}
  results, buckets, facet_splits = {}, {}, {}
  student_dir = None
  needs_student = any(d not in banks for d, _ in domains) and kwargs.get("sensory_bank") is None
  if kwargs.get("sens", True) and stage.bank == "student" and needs_student:
    student_dir = train_pipeline_student(Path(workdir), domains[0][1], kwargs.get("teacher", "lexicon"), stage,
                                         (kwargs.get("train_overrides") or {}).get("progress", True),
                                         kwargs.get("teacher_options"))
  for data, data_dir in domains:
    dkw = {**kwargs, "sensory_bank": banks[data]} if data in banks else kwargs
    r, b, f = base_vs_sens(workdir=Path(workdir) / Path(data).name.split(".")[0], data=data, data_dir=data_dir,
                        student_dir=student_dir, **dkw)
    results.update(r)
    buckets.update(b)
    facet_splits.update(f)
  cold_start_report(buckets, Path(workdir) / "report")
  if facet_splits:
    cold_start_report(facet_splits, Path(workdir) / "report", name="facet_targets",
                      grouping="the test target's facets in the bank")
  return table6(results, Path(workdir) / "report")
