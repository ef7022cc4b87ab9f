"""One recommender run from plain settings: resolve data and presets, train, evaluate.

The experiment binaries call `run_recommender` with their parsed flags; everything else
(readers, presets, the loop) lives in the library.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re

from aser_jax import configs
from aser_jax.bank.grasp import load_grasp_tables
from aser_jax.bank.io import load_bank
from aser_jax.data.presets import PRESETS, load_sequences, resolve_data_file
from aser_jax.data.synthetic import SYNTHETIC_NAME
from aser_jax.models import registry
from aser_jax.models.backbones.side import find_attribute_file, load_side
from aser_jax.train.loop import TrainConfig, train_and_evaluate


def parse_overrides(pairs: list[str], cfg_cls, flag: str = "--override") -> dict:
  """Turns `["key=value", ...]` into typed config overrides (types taken from `cfg_cls`)."""
  fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
  out = {}
  for pair in pairs:
    key, sep, raw = pair.partition("=")
    if not sep or key not in fields:
      raise ValueError(f"{flag} {pair!r}: expected key=value with key in {sorted(fields)}")
    default = getattr(cfg_cls(), key)
    if isinstance(default, bool):
      if raw.lower() not in _TRUE + _FALSE:
        raise ValueError(f"{flag} {pair!r}: {key} takes true or false")
      out[key] = raw.lower() in _TRUE
    elif isinstance(default, (int, float, str)):
      try:
        out[key] = type(default)(raw)
      except ValueError:
        raise ValueError(f"{flag} {pair!r}: {key} takes {_KINDS[type(default)]}, got {raw!r}") from None
    else:
      out[key] = raw
  return out


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")
_KINDS = {int: "an integer", float: "a number", str: "a string"}


def fusion_overrides(pairs: list[str]) -> dict:
  """`["key=value", ...]` for the Sens runs of a grid, keys limited to the fusion's own settings
  (`models.fusion.FUSION_SETTINGS`), so Base and Sens stay the same model apart from the bank."""
  from aser_jax.models.fusion import FUSION_SETTINGS
  from aser_jax.models.layers import BackboneConfig

  out = parse_overrides(pairs, BackboneConfig, "--sens_override")
  other = sorted(set(out) - set(FUSION_SETTINGS))
  if other:
    raise ValueError(f"--sens_override takes only the fusion's settings {FUSION_SETTINGS}, not {other}")
  BackboneConfig(**out)  # a bad value fails here, not after a grid's Base runs
  return out


def resolve_side(backbone: str, data: str, data_dir: str | None, num_items: int, side_file: str | None = None):
  """Side information for a backbone that needs it (else None): `side_file`, or the
  `<Name>_item2attributes*.json(.gz)` beside the sequence file."""
  if not registry.needs_side(backbone):
    return None
  if side_file is None and data != SYNTHETIC_NAME:
    side_file = find_attribute_file(resolve_data_file(data, data_dir))
  if side_file is None:
    raise FileNotFoundError(f"{backbone} needs side information: no <Name>_item2attributes*.json(.gz) beside "
                            f"the sequence file of {data!r}; pass --side_file")
  logging.getLogger("aser_jax").info("side information from %s", side_file)
  return load_side(side_file, num_items)


def run_recommender(*, backbone: str, data: str, data_dir: str | None, workdir: str,
                    use_paper_settings: bool = True, model_overrides: dict | None = None,
                    train_overrides: dict | None = None, side_file: str | None = None,
                    sensory_bank: str | None = None, grasp_tables: str | None = None) -> dict:
  """Trains and tests one backbone; explicit overrides win over the paper presets.

  `sensory_bank`: path of an item facet bank (Orbax folder or `.npz`) to fuse in (Sens).
  `grasp_tables`: path of the GRASP channel's tables (`experiments/build_grasp.py`) to use instead.

  `side_file` (an S3-Rec item2attributes json or an item-text table) feeds backbones that need
  side information; without it the attribute file beside the sequence file is used.
  """
  seqs, model_kw, train_kw, side, bank, grasp = _resolve(backbone, data, data_dir, use_paper_settings,
                                                         model_overrides, train_overrides, side_file, sensory_bank,
                                                         grasp_tables)
  return train_and_evaluate(seqs, backbone, workdir, TrainConfig(**train_kw), side=side, bank=bank, grasp=grasp,
                            **model_kw)


def run_recommender_seeds(*, seeds: list[int], workdir: str, backbone: str, data: str, data_dir: str | None,
                          use_paper_settings: bool = True, model_overrides: dict | None = None,
                          train_overrides: dict | None = None, side_file: str | None = None,
                          sensory_bank: str | None = None, grasp_tables: str | None = None) -> list[dict]:
  """`run_recommender` for several seeds trained together in one vmapped program (`train.seeds`);
  `workdir` holds `{seed}`, which each seed's folder fills in. Returns the seeds' metrics."""
  if "{seed}" not in workdir:
    raise ValueError(f"workdir {workdir!r} must contain {{seed}}: each seed writes a folder of its own")
  from aser_jax.train.seeds import train_seeds

  seqs, model_kw, train_kw, side, bank, grasp = _resolve(backbone, data, data_dir, use_paper_settings,
                                                         model_overrides, train_overrides, side_file, sensory_bank,
                                                         grasp_tables)
  workdirs = [workdir.format(seed=s) for s in seeds]
  return train_seeds(seqs, backbone, workdirs, TrainConfig(**train_kw), list(seeds), side=side, bank=bank,
                     grasp=grasp, **model_kw)


def _resolve(backbone, data, data_dir, use_paper_settings, model_overrides, train_overrides, side_file,
             sensory_bank, grasp_tables=None):
  """Reads the data, applies the paper presets and overrides, loads side information, the bank and
  the GRASP tables."""
  if data != SYNTHETIC_NAME and data not in PRESETS and data_dir and not os.path.exists(data):
    data = os.path.join(data_dir, data)
  seqs = load_sequences(data, data_dir)
  if seqs.report is not None:
    logging.getLogger("aser_jax").info("%s", seqs.report.summary())
  model_kw, train_kw = configs.paper_settings(backbone, seqs.name) if use_paper_settings else ({}, {})
  model_kw.update(model_overrides or {})
  train_kw.update(train_overrides or {})
  registry.config_class(backbone)  # fails early on an unknown backbone
  side = resolve_side(backbone, data, data_dir, seqs.num_items, side_file)
  bank = load_bank(sensory_bank)[0] if sensory_bank else None
  if bank is not None and grasp_tables:
    raise ValueError("--sensory_bank and --grasp_tables are separate channels: pass one")
  grasp = load_grasp_tables(grasp_tables) if grasp_tables else None
  return seqs, model_kw, train_kw, side, bank, grasp


def run_recommenders(jobs: list[dict], workers: int = 1, seeds_together: bool = False) -> list[dict]:
  """`run_recommender(**job)` for every job, in order, `workers` at a time (`train.parallel`).

  With `seeds_together`, jobs that differ only in their seed (`train_overrides["seed"]`) and
  workdir train as one vmapped program (`run_recommender_seeds`); their workdirs must differ only
  where the seed is written. With more than one worker the runs' progress bars are off (N
  interleaved bars are unreadable) and each finished run is logged with its test metrics instead.
  """
  from aser_jax.train.parallel import map_in_processes

  if workers > 1:
    jobs = [{**job, "train_overrides": {**(job.get("train_overrides") or {}), "progress": False}} for job in jobs]
  fn, units = run_recommender, jobs
  if seeds_together:
    fn, units, order = run_recommender_seeds, *_group_seeds(jobs)

  def done(i, r):
    for m, w in (zip(r, units[i]["workdir_list"]) if seeds_together else [(r, units[i]["workdir"])]):
      logging.getLogger("aser_jax").info("%s: test HR@10 %.4f NDCG@10 %.4f", w, m["test"]["HR@10"], m["test"]["NDCG@10"])

  strip = lambda u: {k: v for k, v in u.items() if k != "workdir_list"}
  out = map_in_processes(fn, [strip(u) for u in units], workers, on_done=done if workers > 1 else None)
  if not seeds_together:
    return out
  flat = {pos: m for group, ms in zip(order, out) for pos, m in zip(group, ms)}
  return [flat[i] for i in range(len(jobs))]


def _seed_template(workdir: str, seed: int) -> str:
  """`workdir` with its seed replaced by `{seed}`: the seed's number where it follows "seed",
  else its last stand-alone occurrence (not part of a longer number), else its last occurrence
  (seed 1: `out/a_seed1_dim128` -> `out/a_seed{seed}_dim128`; seed 10: `out/s10` -> `out/s{seed}`)."""
  hits = list(re.finditer(rf"(?<!\d){seed}(?!\d)", workdir))
  after_seed = [m for m in hits if workdir[:m.start()].lower().endswith("seed")]
  if after_seed or hits:
    m = (after_seed or hits)[-1]
    return f"{workdir[:m.start()]}{{seed}}{workdir[m.end():]}"
  head, _, tail = workdir.rpartition(str(seed))
  return f"{head}{{seed}}{tail}"


def _group_seeds(jobs: list[dict]) -> tuple[list[dict], list[list[int]]]:
  """Jobs grouped by everything but the seed: one `run_recommender_seeds` job per group (its
  workdir a `{seed}` template) and, per group, the positions of its jobs in `jobs`."""
  groups: dict[str, list[int]] = {}
  templates: dict[int, dict] = {}
  for i, job in enumerate(jobs):
    train = dict(job.get("train_overrides") or {})
    if "seed" not in train:
      raise ValueError(f"seeds_together: job {job.get('workdir')} sets no seed in train_overrides")
    seed = train.pop("seed")
    if str(seed) not in str(job["workdir"]):
      raise ValueError(f"seeds_together: workdir {job['workdir']!r} does not name its seed {seed}")
    unit = {**job, "workdir": _seed_template(str(job["workdir"]), seed), "train_overrides": train}
    groups.setdefault(repr(sorted(unit.items())), []).append(i)
    templates[i] = unit
  units = []
  for idx in groups.values():
    units.append({**templates[idx[0]], "seeds": [jobs[i]["train_overrides"]["seed"] for i in idx],
                  "workdir_list": [jobs[i]["workdir"] for i in idx]})
  return units, list(groups.values())
