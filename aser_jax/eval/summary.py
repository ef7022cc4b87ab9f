"""Multi-seed summaries of finished recommender runs, against the ASER paper's table 6.

Runs launched one per job (one seed, one backbone, one bank each, as on a cluster) leave a
`metrics.json` each; this groups them into seed sets of identical settings, reports mean and
sample std over seeds, the gap to the paper's row, and Base vs Sens paired over shared seeds.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from aser_jax import configs
from aser_jax.eval.paper_tables import METRIC_ORDER, table6_gain, table6_reference
from aser_jax.eval.significance import paired_comparison, tally
from aser_jax.models import registry
from aser_jax.models.fusion import FUSION_SETTINGS
from aser_jax.train.loop import TrainConfig

# Settings that do not change what a run computes, so runs differing in them pool together. The
# epoch cap and the time budget only say when a run may end; a run they ended is marked cut.
_NOT_SETTINGS = ("seed", "progress", "eval_chunk", "data_workers", "max_minutes", "epochs")
# set from the bank or the GRASP tables themselves: Base has 0, Sens the bank's width
_BANK_DERIVED = ("bank_dim", "grasp_dim", "grasp_users")
# Settings of the fusion alone: they change nothing in a Base run, so Base sets drop them and a
# Sens set pairs with the Base set that matches it in everything else.
_FUSION_ONLY = tuple(f"model.{k}" for k in FUSION_SETTINGS)
HEADLINE = ("HR@10", "NDCG@10")


def load_runs(roots) -> tuple[list[dict], list[str]]:
  """Finished runs under `roots` (run folders or folders holding them) and the unfinished ones.

  A run folder holds `metrics.json`; one with `checkpoints/` but no `metrics.json` is still
  training (or was killed) and is listed as unfinished, not counted.
  """
  runs, unfinished, seen = [], [], set()
  for root in map(Path, roots):
    if not root.exists():
      raise FileNotFoundError(f"{root}: no such run folder")
    folders = _folders(root)
    for path in (d / "metrics.json" for d in folders if (d / "metrics.json").exists()):
      if path.resolve() not in seen:
        seen.add(path.resolve())
        run = _read_run(path)
        if run is not None:
          runs.append(run)
    unfinished += [str(d) for d in folders if (d / "checkpoints").is_dir() and not (d / "metrics.json").exists()]
  return runs, sorted(set(unfinished))


def _folders(root: Path) -> list[Path]:
  """The folders under `root`, following symbolic links (a table-6 workdir links its runs) but
  entering each real folder once, and not descending into a run folder (its checkpoints)."""
  out, seen = [], set()
  for here, dirs, files in os.walk(root, followlinks=True):
    real = os.path.realpath(here)
    if real in seen:
      dirs[:] = []
      continue
    seen.add(real)
    out.append(Path(here))
    if "metrics.json" in files or "checkpoints" in dirs:
      dirs[:] = []
    dirs.sort()
  return out


def _defaults(cls) -> dict:
  return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _with_defaults(recorded: dict, cls) -> dict:
  """A config as recorded, plus the current default of every field the run predates: a field
  added later took its default's behaviour then, so old and new runs of one setting pool."""
  return {**(_defaults(cls) if cls is not None else {}), **recorded}


def _read_run(path: Path) -> dict | None:
  """One run's identity and test metrics; None for a metrics.json of another kind (student)."""
  try:
    m = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
  if m.get("channel") == "r2end":
    return _read_r2end(path, m)
  if "backbone" not in m:
    return None
  for field in ("data", "model_config", "train_config", "test"):
    if field not in m:
      raise ValueError(f"{path}: field {field!r} missing (not a metrics.json of train_recommender.py?)")
  missing = [k for k in METRIC_ORDER if k not in m["test"]]
  if missing:
    raise ValueError(f"{path}: field 'test' lacks {', '.join(missing)}")
  try:
    model_cls = registry.config_class(m["backbone"])
  except KeyError:  # a backbone this version does not know: its config as recorded
    model_cls = None
  sens = m.get("sensory_alpha") is not None
  bank = m.get("bank")
  if sens and bank is None:  # written before metrics.json named its bank: never pooled with others
    bank = f"unknown ({path.parent.name})"
  variant = "sens" if sens else "grasp" if m.get("grasp") else "base"
  settings = _settings(m["model_config"], m["train_config"], model_cls, sens)
  preset = settings == _settings(*configs.paper_settings(m["backbone"], m["data"]), model_cls, sens)
  domain = f"{m['data']} (SYNTHETIC)" if m.get("synthetic") else m["data"]
  return {"path": str(path.parent), "data": m["data"], "domain": domain, "backbone": m["backbone"],
          "variant": variant, "bank": bank if sens else m.get("grasp"), "settings": settings,
          "preset": preset,
          "seed": m["train_config"].get("seed"), "test": m["test"], "epochs": m.get("epochs"),
          "cut": _stopped_early(m) is False,
          "alpha": m.get("sensory_alpha"), "shared": (m.get("fusion") or {}).get("shared_energy")}


def _read_r2end(path: Path, m: dict) -> dict:
  """An R2END run (train_r2end.py) as its own backbone "r2end", one variant per user encoder
  (distilled, frozen, mean_pool) and one seed set per tables; it pairs with nothing."""
  for field in ("data", "config", "tables", "test"):
    if field not in m:
      raise ValueError(f"{path}: field {field!r} missing (not a metrics.json of train_r2end.py?)")
  cfg = m["config"]
  # its epochs are a fixed training length (no early stopping), so they are a setting here
  settings = {f"r2end.{k}": v for k, v in cfg.items()
              if k not in ("seed", "embed_batch", "checkpoint_every", "user_encoder")}
  domain = f"{m['data']} (SYNTHETIC)" if m.get("synthetic") else m["data"]
  return {"path": str(path.parent), "data": m["data"], "domain": domain, "backbone": "r2end",
          "variant": cfg["user_encoder"], "bank": m["tables"].get("digest"), "settings": settings, "preset": False,
          "seed": cfg.get("seed"), "test": m["test"], "epochs": m.get("epochs"), "cut": False, "alpha": None,
          "shared": None}


def _settings(model_config: dict, train_config: dict, model_cls, sens: bool) -> dict:
  """The settings that make a run what it is, as `model.x` / `train.x`; a Base run's without the
  fusion's own."""
  train = {k: v for k, v in _with_defaults(train_config, TrainConfig).items() if k not in _NOT_SETTINGS}
  model = {k: v for k, v in _with_defaults(model_config, model_cls).items() if k not in _BANK_DERIVED}
  settings = {**{f"model.{k}": v for k, v in model.items()}, **{f"train.{k}": v for k, v in train.items()}}
  return settings if sens else _without_fusion(settings)


def _without_fusion(settings: dict) -> dict:
  return {k: v for k, v in settings.items() if k not in _FUSION_ONLY}


def _stopped_early(m: dict) -> bool | None:
  """Whether early stopping ended the run (False: the epoch cap did). Records older than the
  `stopped_early` field are judged from their counts: the loop ends at the cap with fewer than
  `patience` epochs since the best only when the cap ended it. None when they do not say."""
  if "stopped_early" in m:
    return m["stopped_early"]
  cap, patience = m["train_config"].get("epochs"), m["train_config"].get("patience")
  if None in (cap, patience, m.get("epochs"), m.get("best_epoch")):
    return None
  return not (m["epochs"] >= cap and m["epochs"] - m["best_epoch"] < patience)


def summarize(runs: list[dict], tolerance: float = 0.10) -> dict:
  """Seed sets and Base-vs-Sens pairs.

  A seed set is the runs of one (data, backbone, variant, bank, settings); its label names the
  settings in which it differs from the other sets of the same data and backbone. A Sens set
  pairs with the Base set equal to it in every setting but the fusion's own (`_FUSION_ONLY`). Each set's
  HR@10 and NDCG@10 are compared with the paper's table-6 row of the same variant where there
  is one: `within` says whether both means are inside ±`tolerance` of it.
  """
  sets = defaultdict(list)
  for r in runs:
    key = (r["domain"], r["backbone"], r["variant"], r["bank"], json.dumps(r["settings"], sort_keys=True))
    sets[key].append(r)
  differing = defaultdict(set)
  by_pair = defaultdict(list)
  for key in sets:
    by_pair[key[:2]].append(json.loads(key[4]))
  for pair, all_settings in by_pair.items():
    fields = set().union(*all_settings)
    differing[pair] = {f for f in fields if len({json.dumps(s[f]) for s in all_settings if f in s}) > 1}

  rows = []
  for key, members in sorted(sets.items(), key=lambda kv: kv[0]):
    domain, backbone, variant, bank, settings_json = key
    settings = json.loads(settings_json)
    seeds = [r["seed"] for r in members]
    if len(set(seeds)) != len(seeds):
      dup = sorted({s for s in seeds if seeds.count(s) > 1})
      raise ValueError(f"seed(s) {dup} of {domain} {backbone} {variant} appear in more than one run folder: "
                       + ", ".join(r["path"] for r in members if r["seed"] in dup))
    members = sorted(members, key=lambda r: r["seed"])
    label = ", ".join(f"{f.split('.', 1)[1]}={settings[f]}" for f in sorted(differing[(domain, backbone)])
                      if f in settings)
    values = {m: np.array([r["test"][m] for r in members], np.float64) for m in METRIC_ORDER}
    row = {"domain": domain, "backbone": backbone, "variant": variant, "bank": bank, "label": label,
           "seeds": [r["seed"] for r in members], "runs": [r["path"] for r in members],
           "mean": {m: float(v.mean()) for m, v in values.items()},
           "std": {m: float(v.std(ddof=1)) if v.size > 1 else float("nan") for m, v in values.items()},
           "test_by_seed": {m: v.tolist() for m, v in values.items()},
           "epochs": [r["epochs"] for r in members],
           "cut": [r["seed"] for r in members if r["cut"]],
           "alpha": float(np.mean([r["alpha"] for r in members])) if variant == "sens" else None,
           "shared_energy": (float(np.mean([r["shared"] for r in members]))
                             if variant == "sens" and all(r["shared"] is not None for r in members) else None),
           "preset": members[0]["preset"], "_settings": settings_json}
    paper = None if domain.endswith("(SYNTHETIC)") else table6_reference(domain, backbone, variant)
    if paper is not None:
      gap = {m: row["mean"][m] / paper[m] - 1 for m in HEADLINE}
      row["paper"] = {m: paper[m] for m in HEADLINE}
      row["gap"] = gap
      row["within"] = all(abs(g) <= tolerance for g in gap.values())
    rows.append(row)

  pairs = []
  for sens in (r for r in rows if r["variant"] == "sens"):
    sens_settings = json.dumps(_without_fusion(json.loads(sens["_settings"])), sort_keys=True)
    for base in (r for r in rows if r["variant"] == "base"):
      if (base["domain"], base["backbone"], base["_settings"]) != (sens["domain"], sens["backbone"], sens_settings):
        continue
      common = sorted(set(base["seeds"]) & set(sens["seeds"]))
      if not common:
        continue
      pick = lambda row, m: [row["test_by_seed"][m][row["seeds"].index(s)] for s in common]
      comps = {m: paired_comparison(pick(base, m), pick(sens, m)) for m in HEADLINE}
      paper = table6_gain(sens["domain"], sens["backbone"])
      runs = lambda row: [row["runs"][row["seeds"].index(s)] for s in common]
      pairs.append({"domain": sens["domain"], "backbone": sens["backbone"], "bank": sens["bank"],
                    "label": sens["label"], "preset": base["preset"] and sens["preset"], "seeds": common,
                    "base_runs": runs(base), "sens_runs": runs(sens),
                    "cut": [s for s in common if s in base["cut"] or s in sens["cut"]],
                    **{m: {"base": c.base_mean, "sens": c.sens_mean, "gain": c.gain, "p": c.p,
                           "base_by_seed": pick(base, m), "sens_by_seed": pick(sens, m),
                           "paper_gain": paper[m] if paper else None}
                       for m, c in comps.items()}})
  for r in rows:
    del r["_settings"]
  preset = [p for p in pairs if p["preset"]]
  preset_tally = _tally(preset)
  if preset_tally is not None and any(p["cut"] for p in preset):
    preset_tally["uncut"] = _tally([q for q in map(_uncut, preset) if q is not None])
  return {"tolerance": tolerance, "sets": rows, "pairs": pairs, "tally": preset_tally}


def _uncut(pair: dict) -> dict | None:
  """`pair` over its shared seeds that no epoch cap ended (None when none is left)."""
  keep = [i for i, s in enumerate(pair["seeds"]) if s not in pair["cut"]]
  if not keep:
    return None
  out = {**pair, "seeds": [pair["seeds"][i] for i in keep], "cut": []}
  for m in HEADLINE:
    c = paired_comparison(*([pair[m][f"{v}_by_seed"][i] for i in keep] for v in ("base", "sens")))
    out[m] = {**pair[m], "base": c.base_mean, "sens": c.sens_mean, "gain": c.gain, "p": c.p}
  return out


def _tally(pairs: list[dict]) -> dict | None:
  """How many preset pairs Sens improves, and the mean gain, beside the paper's gains on the same
  (domain, backbone) pairs: the paper's headline claim (table 6), asked of our runs."""
  if not pairs:
    return None
  return {"pairs": len(pairs), **{m: tally([p[m]["gain"] for p in pairs],
                                            [p[m]["paper_gain"] for p in pairs if p[m]["paper_gain"] is not None])
                                  for m in HEADLINE}}


def add_target_splits(summary: dict, bank_paths, data_dir=None) -> dict:
  """Adds `target_splits` to `summary`: each pair's Base vs Sens over the test users whose target has
  an active facet in the pair's bank, and over the rest (ASER_SPEC §6). A gain from the bank's content
  shows in the first group; a gain from the blend's side effects shows in both.

  Each bank file is matched to its Sens sets by its array digest (metrics.json `bank`); the test
  targets come from the pair's data (a preset read from `data_dir`), the ranks from each run's
  `test_ranks.npy`; a pair with a run that lacks them (an older results/ record) is listed as skipped,
  with those files named. `p` pairs seed k of Base with seed k of Sens; `p_users` pairs the users, each
  user's metric averaged over the shared seeds. `p_users` leaves out the seed-to-seed variance of the
  training path, so it overstates significance when seeds are few (one seed of BERT4Rec Beauty gave
  p_users 0.0008 for a gain that four seeds did not reproduce).
  """
  from aser_jax.bank.io import load_bank
  from aser_jax.data.presets import load_sequences
  from aser_jax.data.splits import eval_split
  from aser_jax.train.loop import bank_digest

  splits, targets_of = [], {}
  for path in map(Path, bank_paths):
    bank = load_bank(path)[0]
    digest = bank_digest(bank)
    pairs = [p for p in summary["pairs"] if p["bank"] == digest]
    if not pairs:
      known = sorted({p["bank"] for p in summary["pairs"]}) or ["none"]
      raise ValueError(f"{path}: bank digest {digest} matches no Base-vs-Sens pair (pairs have: {', '.join(known)})")
    active_items = bank.A.any(-1)
    for pair in pairs:
      data = pair["domain"].removesuffix(" (SYNTHETIC)")
      if data not in targets_of:
        targets_of[data] = eval_split(load_sequences(data, data_dir), 1, "test").targets
      targets = targets_of[data]
      if targets.max() >= active_items.shape[0]:
        raise ValueError(f"{path}: bank has {bank.num_items} items but {data} has item {targets.max()}")
      head = {k: pair[k] for k in ("domain", "backbone", "bank", "label", "preset", "seeds", "cut")}
      missing = [str(Path(d) / "test_ranks.npy") for v in ("base", "sens") for d in pair[f"{v}_runs"]
                 if not (Path(d) / "test_ranks.npy").exists()]
      if missing:
        splits.append(head | {"groups": {}, "skipped": f"no test ranks: {', '.join(missing)}"})
        continue
      groups = {"active facet": active_items[targets]}
      groups["no active facet"] = ~groups["active facet"]
      per_user = {v: np.stack([_user_metrics(Path(d), targets.size) for d in pair[f"{v}_runs"]])
                  for v in ("base", "sens")}  # [seeds, metric, users]
      out = {name: {"users": int(sel.sum()),
                    **{m: _group_comparison(per_user["base"][:, i, sel], per_user["sens"][:, i, sel])
                       for i, m in enumerate(HEADLINE)}}
             for name, sel in groups.items()}
      splits.append(head | {"groups": out})
  return {**summary, "target_splits": splits}


def _group_comparison(base_SxU: np.ndarray, sens_SxU: np.ndarray) -> dict:
  """Base vs Sens of one user group: means, gain, p over seeds and p over users."""
  from scipy import stats

  if base_SxU.shape[1] == 0:
    return dict.fromkeys(("base", "sens", "gain", "p", "p_users"), float("nan"))
  c = paired_comparison(base_SxU.mean(1).tolist(), sens_SxU.mean(1).tolist())
  b, s = base_SxU.mean(0), sens_SxU.mean(0)
  p_users = float(stats.ttest_rel(s, b).pvalue) if b.size > 1 and np.std(s - b) > 0 else float("nan")
  return {"base": c.base_mean, "sens": c.sens_mean, "gain": c.gain, "p": c.p, "p_users": p_users}


def _user_metrics(run: Path, users: int, k: int = 10) -> np.ndarray:
  """[HR@k, NDCG@k] per test user from a run's `test_ranks.npy` (1-based ranks)."""
  path = run / "test_ranks.npy"
  ranks = np.load(path).astype(np.float64)
  if ranks.shape != (users,):
    raise ValueError(f"{path}: {ranks.shape[0]} ranks for {users} test users of this data")
  hit = ranks <= k
  return np.stack([hit, np.where(hit, 1 / np.log2(ranks + 1), 0.0)])


def write_summary(summary: dict, unfinished: list[str], out_dir: str | Path) -> Path:
  """Writes `summary.md`, `summary.csv` (one row per seed set, all six metrics), `summary.json` and,
  when a Sens set pairs with Base, `pairs.png` (Base vs Sens bars with each seed's value)."""
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  tol = summary["tolerance"]
  md = ["## Seed sets (test, mean ± sample std over seeds)", "",
        "| domain | backbone | variant | settings | seeds | HR@10 | NDCG@10 | paper HR@10 / NDCG@10 | gap | "
        f"within ±{tol:.0%} | α / shared |", "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in summary["sets"]:
    cells = [f"{r['mean'][m]:.4f} ± {r['std'][m]:.4f}" if r["std"][m] == r["std"][m] else f"{r['mean'][m]:.4f}"
             for m in HEADLINE]
    variant = r["variant"] if r["bank"] is None else f"{r['variant']} ({'bank' if r['variant'] == 'sens' else 'tables'} {r['bank']})"
    if "paper" in r:
      paper = " / ".join(f"{r['paper'][m]:.4f}" for m in HEADLINE)
      gap = " / ".join(f"{r['gap'][m]:+.1%}" for m in HEADLINE)
      within = "yes" if r["within"] else "no"
    else:
      paper, gap, within = "-", "-", "-"
    fusion = "-" if r["alpha"] is None else f"{r['alpha']:.3f} / " + (
        "-" if r["shared_energy"] is None else f"{r['shared_energy']:.2f}")
    md.append(f"| {r['domain']} | {r['backbone']} | {variant} | {r['label'] or '-'} | "
              f"{_seeds(r['seeds'], r['cut'])} | {cells[0]} | {cells[1]} | {paper} | {gap} | {within} | {fusion} |")
  if summary["pairs"]:
    md += ["", "## Base vs Sens, paired over shared seeds", "",
           "| domain | backbone | bank | settings | seeds | HR@10 Base → Sens (gain, p) | "
           "NDCG@10 Base → Sens (gain, p) | paper gain HR@10 / NDCG@10 |", "|---|---|---|---|---|---|---|---|"]
    for p in summary["pairs"]:
      cells = [f"{p[m]['base']:.4f} → {p[m]['sens']:.4f} ({p[m]['gain']:+.1%}, p={p[m]['p']:.3f})" for m in HEADLINE]
      paper = " / ".join(f"{p[m]['paper_gain']:+.1%}" for m in HEADLINE) if p["HR@10"]["paper_gain"] is not None else "-"
      md.append(f"| {p['domain']} | {p['backbone']} | {p['bank']} | {_pair_settings(p)} | "
                f"{_seeds(p['seeds'], p['cut'])} | {cells[0]} | {cells[1]} | {paper} |")
    md += ["", *_tally_lines(summary.get("tally"))]
  if summary.get("target_splits"):
    md += ["", "## Base vs Sens by the test target: active facet in the bank, or none", "",
           "| domain | backbone | bank | settings | seeds | target | users | "
           "HR@10 Base → Sens (gain, p, p users) | NDCG@10 Base → Sens (gain, p, p users) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for t in summary["target_splits"]:
      head = (f"| {t['domain']} | {t['backbone']} | {t['bank']} | {_pair_settings(t)} | "
              f"{_seeds(t['seeds'], t['cut'])} |")
      if t.get("skipped"):
        md.append(f"{head} skipped | - | {t['skipped']} | - |")
      for name, g in t["groups"].items():
        cells = [f"{g[m]['base']:.4f} → {g[m]['sens']:.4f} ({g[m]['gain']:+.1%}, p={g[m]['p']:.3f}, "
                 f"{g[m]['p_users']:.2g})" for m in HEADLINE]
        md.append(f"{head} {name} | {g['users']:,} | {cells[0]} | {cells[1]} |")
  if any(r["cut"] for r in summary["sets"]):
    md += ["", "Seed*: the epoch cap ended that run, not early stopping (metrics.json `stopped_early` is "
           "false), so it may not have converged."]
  if unfinished:
    md += ["", "Unfinished (no metrics.json yet, not counted): "
           + ", ".join(f"{u} ({_progress(Path(u))})" for u in unfinished)]
  md += ["", "Paper rows: ASER paper table 6 (five-run means). p: paired two-sided t-test over the shared "
         "seeds (nan with fewer than two); p users: paired t-test over the test users, each user's metric "
         "averaged over those seeds; it sees only the users' variation, not the training path's, so with few "
         "seeds it is far too small: read p first. α: the learned sensory blend; shared: the share of the sensory "
         "vectors' energy common to all active items (metrics.json `fusion`; near 1, Sens adds a bias only)."]
  (out / "summary.md").write_text("\n".join(md) + "\n")
  header = ["domain", "backbone", "variant", "bank", "settings", "seeds", *(f"{m} mean" for m in METRIC_ORDER),
            *(f"{m} std" for m in METRIC_ORDER)]
  with open(out / "summary.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    for r in summary["sets"]:
      w.writerow([r["domain"], r["backbone"], r["variant"], r["bank"] or "", r["label"],
                  " ".join(map(str, r["seeds"])), *(f"{r['mean'][m]:.6f}" for m in METRIC_ORDER),
                  *(f"{r['std'][m]:.6f}" for m in METRIC_ORDER)])
  (out / "summary.json").write_text(json.dumps(_no_nan({**summary, "unfinished": unfinished}), indent=2) + "\n")
  if summary["pairs"]:
    _pair_bars(summary["pairs"], out / "pairs.png")
  return out / "summary.md"


def _pair_settings(pair: dict) -> str:
  """A pair's settings cell: its label, and "preset" when both runs used train_recommender.py's
  settings for that data without overrides (the paper's presets and the spec's fusion)."""
  return ", ".join(s for s in ("preset" if pair.get("preset") else "", pair["label"]) if s) or "-"


def _tally_lines(tally: dict | None) -> list[str]:
  if tally is None:
    return ["No pair ran at the preset settings on both sides, so there is no tally against the paper's."]

  def line(t: dict) -> str:
    parts = []
    for m in HEADLINE:
      paper = (f"the paper's table 6 on the same {t[m]['paper_pairs']}: {t[m]['paper_better']} better, mean "
               f"{t[m]['paper_mean_gain']:+.1%}" if t[m]["paper_pairs"] else "no paper row for these")
      parts.append(f"{m}: Sens > Base in {t[m]['better']} of {t['pairs']}, "
                   f"mean gain {t[m]['mean_gain']:+.1%} ({paper})")
    return "; ".join(parts)

  out = [f"Preset pairs ({tally['pairs']}): {line(tally)}."]
  if "uncut" in tally:
    rest = tally["uncut"]
    out.append("Without the seeds the epoch cap ended (starred): " + (
        f"{rest['pairs']} pair{'s' if rest['pairs'] > 1 else ''}: {line(rest)}." if rest else "no pair is left."))
  return out


def _progress(run: Path, metric: str = "valid_NDCG@10") -> str:
  """How far an unfinished run's `log.csv` got: its last epoch and its best validation score (a
  last row without its line end was torn by a kill and is left out)."""
  try:
    lines = (run / "log.csv").read_text().splitlines(keepends=True)
  except OSError:
    lines = []
  if lines and not lines[-1].endswith("\n"):
    lines = lines[:-1]
  rows = [r for r in csv.DictReader(lines) if (r.get("epoch") or "").isdigit() and r.get(metric)]
  if not rows:
    return "no epoch logged yet"
  best = max(rows, key=lambda r: float(r[metric]))
  return (f"epoch {rows[-1]['epoch']}, best {metric.removeprefix('valid_')} {float(best[metric]):.4f} "
          f"at epoch {best['epoch']}")


def _seeds(seeds: list, cut: list) -> str:
  return ",".join(f"{s}*" if s in cut else str(s) for s in seeds)


def _pair_bars(pairs: list[dict], path: Path) -> None:
  """Base and Sens bars (means over the shared seeds) per pair, each seed a dot on its bar, so a
  reader sees the gain against the seed spread."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(HEADLINE), figsize=(max(5, 1.6 * len(pairs)) * len(HEADLINE), 3.8), squeeze=False)
  x = np.arange(len(pairs))
  for ax, m in zip(axes[0], HEADLINE):
    for shift, variant, colour in ((-0.2, "base", "tab:blue"), (0.2, "sens", "tab:orange")):
      ax.bar(x + shift, [p[m][variant] for p in pairs], 0.4, color=colour, alpha=0.7, label=variant.capitalize())
      for i, p in enumerate(pairs):
        seeds = p[m][f"{variant}_by_seed"]
        ax.plot(np.full(len(seeds), i + shift), seeds, "k.", markersize=4)
    settings = ["".join(f"{part}\n" for part in p["label"].split(", ") if part) for p in pairs]
    ax.set_xticks(x, [f"{p['domain']}\n{p['backbone']}\n{s}{p[m]['gain']:+.1%}, "
                      + (f"p={p[m]['p']:.2f}" if p[m]["p"] == p[m]["p"] else "1 seed")
                      for p, s in zip(pairs, settings)], fontsize=7)
    ax.set_title(f"test {m}, Base vs Sens (dots: seeds)")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _no_nan(x):
  """`x` with NaN floats as None, so summary.json is strict JSON."""
  if isinstance(x, dict):
    return {k: _no_nan(v) for k, v in x.items()}
  if isinstance(x, list):
    return [_no_nan(v) for v in x]
  return None if isinstance(x, float) and x != x else x
