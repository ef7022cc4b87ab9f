"""Facet-aware student (ASER_SPEC §3): losses against NumPy, noisy-or / pooling edge cases, a tiny
end-to-end training run with resume, and the single-vector baseline."""

import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO

from aser_jax.bank.facets import FACETS
from aser_jax.models import student as S
from aser_jax.models.encoders import BertConfig, BertEncoder, load_tokenizer
from aser_jax.models.encoders.bert import init_params

RNG = np.random.default_rng(0)
B, T, Fn, D = 4, 6, len(FACETS), 5


def np_sigmoid(x):
  return 1 / (1 + np.exp(-x))


def np_cos(a, b):
  return (a * b).sum(-1) / (np.maximum(np.linalg.norm(a, axis=-1), 1e-6) * np.maximum(np.linalg.norm(b, axis=-1), 1e-6))


def test_token_focal_loss_matches_numpy():
  z = RNG.normal(size=(B, T, Fn)) * 2
  m = (RNG.random((B, T, Fn)) < 0.3).astype(np.float64)
  c = (RNG.random((B, T)) < 0.7).astype(np.float64)
  p = np_sigmoid(z)
  l = -0.25 * m * (1 - p) ** 2 * np.log(p) - 0.75 * (1 - m) * p ** 2 * np.log(1 - p)
  want = (l * c[..., None]).sum((0, 1)) / c.sum()
  got = S.token_focal_loss(jnp.asarray(z, jnp.float32), jnp.asarray(m, jnp.float32), jnp.asarray(c))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  want_slot = (l * c[..., None]).sum(1).mean(0)  # one summed loss per (text, facet), mean over texts
  got_slot = S.token_focal_loss(jnp.asarray(z, jnp.float32), jnp.asarray(m, jnp.float32), jnp.asarray(c),
                                reduction="slot_sum")
  np.testing.assert_allclose(got_slot, want_slot, rtol=1e-5)
  with pytest.raises(ValueError, match="reduction"):
    S.token_focal_loss(jnp.asarray(z), jnp.asarray(m), jnp.asarray(c), reduction="sum")


def test_presence_loss_matches_numpy():
  p = RNG.random((B, T, Fn)) * 0.5
  y = (RNG.random((B, Fn)) < 0.5).astype(np.float64)
  P = 1 - np.prod(1 - p, axis=1)
  want = (-(1.0 * y * np.log(P) + 0.35 * (1 - y) * np.log(1 - P))).mean(0)
  got_P, s = S.noisy_or(jnp.asarray(p, jnp.float32))
  np.testing.assert_allclose(got_P, P, rtol=1e-5)
  np.testing.assert_allclose(S.presence_loss(s, jnp.asarray(y, jnp.float32)), want, rtol=1e-4)


def test_alignment_polarity_confidence_losses_match_numpy():
  e, z = RNG.normal(size=(B, Fn, D)), RNG.normal(size=(B, Fn, D))
  y = (RNG.random((B, Fn)) < 0.6).astype(np.float64)
  y[:, 4] = 0  # a facet with no active slot: loss 0
  want = ((1 - np_cos(e, z)) * y).sum(0) / np.maximum(y.sum(0), 1)
  np.testing.assert_allclose(S.alignment_loss(jnp.asarray(e), jnp.asarray(z), jnp.asarray(y)), want, rtol=1e-5)
  assert float(S.alignment_loss(jnp.asarray(e), jnp.asarray(z), jnp.asarray(y))[4]) == 0.0

  logits = RNG.normal(size=(B, Fn, 3))
  label = RNG.integers(-1, 3, size=(B, Fn))
  valid = (label >= 0) & (y > 0)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, np.maximum(label, 0)[..., None], -1)[..., 0]
  want = (nll * valid).sum(0) / np.maximum(valid.sum(0), 1)
  np.testing.assert_allclose(S.polarity_loss(jnp.asarray(logits), jnp.asarray(label), jnp.asarray(y)), want, rtol=1e-5)

  ch, kappa = RNG.random((B, Fn)), RNG.random((B, Fn))
  want = ((ch - kappa) ** 2 * y).sum(0) / np.maximum(y.sum(0), 1)
  np.testing.assert_allclose(S.confidence_loss(jnp.asarray(ch), jnp.asarray(kappa), jnp.asarray(y)), want, rtol=1e-5)


def test_contrastive_loss_matches_numpy():
  e, z = RNG.normal(size=(B, Fn, D)), RNG.normal(size=(B, Fn, D))
  y = (RNG.random((B, Fn)) < 0.6).astype(np.float64)
  y[:, 0] = [1, 1, 0, 1]
  y[:, 4] = 0
  en = e / np.linalg.norm(e, axis=-1, keepdims=True)
  zn = z / np.linalg.norm(z, axis=-1, keepdims=True)
  want = np.zeros(Fn)
  for f in range(Fn):
    act = np.nonzero(y[:, f])[0]
    if len(act) == 0:
      continue
    s = en[act, f] @ zn[act, f].T / 0.07
    logp = s - np.log(np.exp(s).sum(1, keepdims=True))
    want[f] = -np.mean(np.diag(logp))
  got = S.contrastive_loss(jnp.asarray(e, jnp.float32), jnp.asarray(z, jnp.float32), jnp.asarray(y, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_phase_weights():
  parts = {k: jnp.full((Fn,), v) for k, v in
           (("tok", 1.0), ("pres", 2.0), ("emb", 3.0), ("pol", 4.0), ("conf", 5.0), ("can", 6.0), ("ctr", 7.0))}
  lam = np.array(S.FACET_WEIGHTS)
  assert float(S.student_loss(parts, jnp.float32(0))) == pytest.approx(lam.sum() * (1 + 2 + 0.3))
  assert float(S.student_loss(parts, jnp.float32(1))) == pytest.approx(lam.sum() * (1 + 2 + 3 + 4 + 5 + 6 + 0.7))


def test_noisy_or_and_pooling_edge_cases():
  h = jnp.asarray(RNG.normal(size=(3, T, 2)), jnp.float32)
  content = jnp.asarray([[0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], jnp.float32)
  p = jnp.zeros((3, T, Fn))
  p = p.at[1].set(content[1][:, None] * 1.0)  # every content token is certain evidence
  P, s = S.noisy_or(p)
  assert np.all(np.asarray(P[0]) == 0) and np.all(np.asarray(P[2]) == 0)  # no evidence; padding only
  np.testing.assert_allclose(P[1], 1.0, atol=1e-6)  # clipped below 1 - 1e-6, still finite
  assert np.isfinite(np.asarray(s)).all()
  g, a = S.evidence_pool(p, content, h)
  # No evidence: uniform over content tokens.
  np.testing.assert_allclose(a[0, :, 0], np.array(content[0]) / 3)
  np.testing.assert_allclose(g[0, 2], np.asarray(h[0, 1:4]).mean(0), rtol=1e-5)
  # All tokens evidence: also uniform over them, weights sum to 1.
  np.testing.assert_allclose(a[1, :, 3], np.array(content[1]) / 3, rtol=1e-5)
  # Padding only: zero pooled vector, no NaN.
  assert np.all(np.asarray(g[2]) == 0) and np.isfinite(np.asarray(a)).all()
  # Mass just above ε_mass uses the evidence weights.
  p2 = jnp.zeros((1, T, Fn)).at[0, 2, 0].set(2e-4)
  _, a2 = S.evidence_pool(p2, content[:1], h[:1])
  assert float(a2[0, 2, 0]) == pytest.approx(1.0, rel=1e-2) and float(a2[0, 1, 0]) == 0.0
  assert float(S.presence_loss(s, jnp.ones((3, Fn)))[0]) > 0 and np.isfinite(np.asarray(S.presence_loss(s, jnp.ones((3, Fn))))).all()


def tiny_encoder(vocab):
  module = BertEncoder(BertConfig(vocab_size=vocab, hidden=16, layers=1, heads=2, intermediate=32, max_position=64))
  return module, init_params(module, jax.random.key(0))


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, minilm):
  """A small supervision corpus (synthetic teacher rows, random target vectors) on disk."""
  from test_supervision import fake_embed

  from aser_jax.supervision.corpus import CorpusConfig, build_corpus
  from aser_jax.supervision.examples import SupervisionConfig, special_tokens
  from aser_jax.teacher.backends import make_teacher
  from aser_jax.teacher.extract import ExtractConfig, run_extraction
  from aser_jax.teacher.text import synthetic_examples

  root = tmp_path_factory.mktemp("student")
  ex = synthetic_examples()
  run_extraction(ex[:20], make_teacher("lexicon"), root / "t_a", ExtractConfig(), data_name="a", progress=False)
  run_extraction(ex[20:], make_teacher("lexicon"), root / "t_b", ExtractConfig(), data_name="b", progress=False)
  tok = load_tokenizer(minilm, 32).with_special_tokens(special_tokens(["a", "b"]))
  build_corpus({"a": str(root / "t_a"), "b": str(root / "t_b")}, root / "sup", None,
               CorpusConfig(val_fraction=0.3, supervision=SupervisionConfig(max_len=32)), tokenizer=tok,
               embed_fn=fake_embed)
  return root, tok


@pytest.mark.parametrize("kind,options", [("facet", {}), ("single", {}),
                                          ("facet", {"token_loss": "slot_sum", "center_targets": True})])
def test_train_student_tiny_and_resume(tiny_corpus, kind, options):
  from aser_jax.train.student_loop import StudentTrainConfig, train_student

  root, tok = tiny_corpus
  enc = tiny_encoder(tok.vocab_size)
  cfg = StudentTrainConfig(kind=kind, epochs_a=1, epochs_b=1, batch_size=8, lr_encoder=1e-3, lr_heads=3e-3,
                           **options)
  name = f"run_{kind}" + "_options" * bool(options)
  res = train_student(root / "sup", root / name, cfg, encoder=enc, progress=False)
  assert {k: res["config"][k] for k in options} == options
  assert [h["phase"] for h in res["history"]] == ["A", "B"]
  val = res["val"]
  assert 0 <= val["presence_macro_f1"] <= 1 and 0 <= val["confidence_brier"] <= 1
  assert -1 <= val["active_cosine"] <= 1 and val["active_slots"] > 0
  assert -1 <= val["active_cosine_mean_baseline"] <= 1 and "active_cosine_mean_baseline" in res["history"][-1]
  assert all(np.isfinite(h["loss"]) for h in res["history"])
  # Resume: the finished run restores its last checkpoint and trains no further epoch.
  again = train_student(root / "sup", root / name, cfg, encoder=enc, progress=False)
  assert again["history"] == res["history"] and again["val"] == val
  assert json.loads((root / name / "metrics.json").read_text())["kind"] == kind


def test_facet_student_forward_and_training_lowers_loss(tiny_corpus):
  from aser_jax.supervision import store
  from aser_jax.train.state import TrainState
  from aser_jax.train.student_loop import (MODEL_KEYS, StudentTrainConfig, build_model, make_optimizer,
                                           make_train_step)

  root, tok = tiny_corpus
  arrays, _ = store.load_split(root / "sup", "train")
  module, enc_params = tiny_encoder(tok.vocab_size)
  model = build_model("facet", module, store.read_manifest(root / "sup"), arrays["target"].shape[-1])
  batch = {k: v[:8] for k, v in arrays.items()}
  params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                      {k: batch[k] for k in MODEL_KEYS})["params"]
  params = {**params, "encoder": enc_params}
  out = model.apply({"params": params}, {k: batch[k] for k in MODEL_KEYS})
  assert out["p"].shape == (8, 32, Fn) and out["e"].shape == (8, Fn, 6) and out["pol"].shape == (8, Fn, 3)
  assert np.all(np.asarray(out["p"]) * (1 - batch["content"][..., None]) == 0)  # no evidence outside content
  cfg = StudentTrainConfig(lr_encoder=1e-3, lr_heads=1e-2)
  tx = make_optimizer(cfg, 40)
  step = jax.jit(make_train_step(model, tx, 0, "facet"))
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  losses = []
  for _ in range(25):
    state, m = step(state, batch, jax.random.key(3))
    losses.append(float(m["loss"]))
  assert losses[-1] < losses[0] and np.isfinite(losses).all()


def test_domain_dropout_swaps_token_and_adapter_in_training_only():
  """[DOM_d] becomes [DOM_unk] and adapter d the unk adapter (index num_domains), together, and
  only when training; other tokens never change."""
  import flax.linen as nn

  cfg = S.StudentConfig(num_domains=2, domain_token_ids=(5, 6), unk_domain_token_id=7, adapter_dim=2,
                        domain_dropout=1.0)

  class Probe(nn.Module):
    @nn.compact
    def __call__(self, batch, train):
      return S._encode(self, lambda ids, mask, train: jax.nn.one_hot(ids, 8), cfg, batch, train)

  batch = {"input_ids": jnp.array([[1, 5, 2, 6], [6, 3, 5, 0]]), "attention_mask": jnp.ones((2, 4), jnp.int32),
           "domain": jnp.array([0, 1])}
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  params = Probe().init(rngs, batch, True)["params"]
  params["adapter"]["b2"] = jnp.arange(3.0)[:, None] * jnp.ones((3, 8)) * 10  # adapter k adds 10 k
  run = lambda b, train: Probe().apply({"params": params}, b, train, rngs={"dropout": jax.random.key(2)})
  eval_out = np.asarray(run(batch, False))
  np.testing.assert_array_equal(eval_out.argmax(-1), np.asarray(batch["input_ids"]))
  np.testing.assert_array_equal(eval_out.max(-1), [[1 + 0] * 4, [1 + 10] * 4])  # adapters 0 and 1
  train_out = np.asarray(run(batch, True))
  np.testing.assert_array_equal(train_out.argmax(-1), [[1, 7, 2, 7], [7, 3, 7, 0]])
  np.testing.assert_array_equal(train_out.max(-1), np.full((2, 4), 1 + 20))  # the unk adapter, index 2
  ids, dom = S._drop_domain(dataclasses.replace(cfg, domain_dropout=0.0), batch["input_ids"], batch["domain"],
                            jax.random.key(3))
  np.testing.assert_array_equal(ids, batch["input_ids"])
  np.testing.assert_array_equal(dom, batch["domain"])


def test_token_bias_init_sets_the_initial_presence(tiny_corpus):
  """At init (w_tok ≈ 0) the noisy-or presence is about 1 − (1 − σ(b))^n for n content tokens."""
  from aser_jax.supervision import store
  from aser_jax.train.student_loop import MODEL_KEYS, build_model

  root, tok = tiny_corpus
  arrays, _ = store.load_split(root / "sup", "train")
  module, enc_params = tiny_encoder(tok.vocab_size)
  batch = {k: arrays[k][:8] for k in MODEL_KEYS}
  n_B = batch["content"].sum(1)
  for b in (-2.0, -6.0):
    model = build_model("facet", module, store.read_manifest(root / "sup"), arrays["target"].shape[-1], b)
    params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, batch)["params"]
    np.testing.assert_array_equal(np.asarray(params["b_tok"]), np.full(Fn, b, np.float32))
    P = np.asarray(model.apply({"params": {**params, "encoder": enc_params}}, batch)["P"])
    expected = 1 - (1 - 1 / (1 + np.exp(-b))) ** n_B
    np.testing.assert_allclose(P, np.broadcast_to(expected[:, None], P.shape), atol=0.05)


def test_embedding_cosines_against_the_mean_direction_baseline_by_hand():
  from aser_jax.train.student_loop import facet_mean_directions, table8_metrics

  F = len(FACETS)
  z = np.zeros((2, F, 2), np.float32)
  z[0, 0], z[1, 0] = [1, 0], [0, 3]  # facet 0 active in both examples, orthogonal targets
  presence = np.zeros((2, F), np.float32)
  presence[:, 0] = 1
  arrays = {"presence": presence, "target": z, "kappa": presence * 0.8, "canonical": z, "canonical_active": presence}
  means = facet_mean_directions(arrays)
  np.testing.assert_allclose(means["target"][0], [2 ** -0.5, 2 ** -0.5])
  out = {"P": presence * 0.9, "conf": presence * 0.8, "e": z * 2, "k": np.broadcast_to(means["canonical"], z.shape)}
  m = table8_metrics(out, arrays, 0.5, means)
  assert m["active_cosine"] == pytest.approx(1.0) and m["active_cosine_mean_baseline"] == pytest.approx(2 ** -0.5)
  # a canonical head that outputs its facet's mean direction scores exactly the baseline
  assert m["canonical_cosine"] == pytest.approx(m["canonical_cosine_mean_baseline"]) == pytest.approx(2 ** -0.5)
  assert "canonical_cosine" not in table8_metrics(out, arrays, 0.5)


def test_center_targets_by_hand():
  from aser_jax.train.student_loop import center_targets, facet_mean_directions

  F = len(FACETS)
  z = np.zeros((3, F, 2), np.float32)
  z[0, 0], z[1, 0], z[2, 1] = [1, 0], [0, 3], [5, 5]  # facet 0 active twice; facet 1 once (its own mean)
  presence = np.zeros((3, F), np.float32)
  presence[:2, 0] = presence[2, 1] = 1
  arrays = {"presence": presence, "target": z, "canonical": z, "canonical_active": presence}
  means = facet_mean_directions(arrays, normalize=False)
  np.testing.assert_allclose(means["target"][0], [0.5, 0.5])  # mean of the unit targets (1,0), (0,1)
  np.testing.assert_array_equal(means["target"][2], [0, 0])  # no active slot
  c = center_targets(arrays, means)
  r = 2 ** -0.5  # (1,0) − (.5,.5) = (.5,−.5) -> (r, −r); (0,1) − (.5,.5) -> (−r, r)
  for key in ("target", "canonical"):
    np.testing.assert_allclose(c[key][0, 0], [r, -r], atol=1e-6)
    np.testing.assert_allclose(c[key][1, 0], [-r, r], atol=1e-6)
    np.testing.assert_array_equal(c[key][2, 1], [0, 0])  # a target equal to its facet's mean centres to zero
    np.testing.assert_array_equal(c[key][presence == 0], 0)  # inactive slots stay zero
  np.testing.assert_allclose(c["target"][:2, 0].sum(0), 0, atol=1e-6)  # the common part is gone
  np.testing.assert_array_equal(arrays["target"], z)  # input not modified


def test_bench_student_binary_times_the_corpus_it_is_given(tiny_corpus):
  """bench_student.py trains and runs the real encoder on the corpus's own token length and prints JSON."""
  root, _ = tiny_corpus
  out = subprocess.run([sys.executable, "experiments/bench_student.py", f"--supervision={root / 'sup'}",
                        "--kind=single", "--steps=2", "--forward_batches=1", "--batch_size=4"],
                       cwd=REPO, capture_output=True, text=True, check=True).stdout
  res = json.loads(out[out.index("{"):])
  assert (res["kind"], res["encoder"], res["batch_size"], res["max_len"]) == ("single", "all-minilm-l6-v2", 4, 32)
  assert {"compile_seconds", "train_steps_per_s", "forward_texts_per_s", "peak_rss_mb"} <= set(res)
