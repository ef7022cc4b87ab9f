"""DIFF against a NumPy re-computation (BACKBONES.md "DIFF"), and its side-information readers."""

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import backbone_ref as ref
from aser_jax.data.items import ItemTable
from aser_jax.models import registry
from aser_jax.models.backbones import side as side_mod

IDS = np.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [0, 0, 0, 0, 0, 9]])
ATTRS = {1: [2], 2: [1, 3], 3: [2], 4: [4, 1, 2], 5: [3], 6: [], 7: [1], 9: [4, 5]}
N_ITEMS = 12


def _model(fusion="concat", **kw):
  side = side_mod.side_from_attributes(ATTRS, N_ITEMS)
  model, cfg = registry.build("diff", N_ITEMS, side=side, hidden=8, heads=2, layers=2, max_len=6,
                              side_fusion=fusion, alpha=0.3, c=3, **kw)
  params = model.init({"params": jax.random.key(0)}, jnp.asarray(IDS), method=model.score)["params"]
  return model, cfg, ref.perturb(params), side


def _np_fuse(stack, p, mode):
  if mode == "sum":
    return stack.sum(-2)
  if mode == "concat":
    return ref.dense(stack.reshape(*stack.shape[:-2], -1), p["proj"])
  w = ref.softmax(ref.dense(stack, p["gate"]), axis=-2)
  return (w * stack).sum(-2)


def _np_attr(p, side, ids):
  a = side.ids[0][ids]
  return np.where((a > 0)[..., None], p["attr_emb_attributes"]["embedding"][a], 0).sum(-2)


def _np_id_attn(h, pos, attrs, ids, p, heads, mode):
  B, L, D = h.shape
  dh = D // heads

  def scores(x, n):
    q = ref.dense(x, p[f"{n}_q"]).reshape(*x.shape[:-1], heads, dh)
    k = ref.dense(x, p[f"{n}_k"]).reshape(*x.shape[:-1], heads, dh)
    return np.einsum("...qhd,...khd->...hqk", q, k)

  maps = [scores(h, "id"), np.broadcast_to(scores(pos, "pos")[None], (B, heads, L, L))]
  maps += [scores(a, f"attr{k}") for k, a in enumerate(attrs)]
  logits = _np_fuse(np.stack(maps, -1)[..., None], p.get("fuse", {}), mode)[..., 0] / np.sqrt(dh)
  probs = ref.softmax(logits + ref.mask_bias(ids, causal=True))
  v = ref.dense(h, p["value"]).reshape(B, L, heads, dh)
  ctx = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(B, L, D)
  return ref.ln(ref.dense(ctx, p["out"]) + h, p["ln"])


def _np_encode(p, cfg, side, ids):
  v = ref.ln(p["items"]["id_emb"]["embedding"][ids], p["id_ln"])
  attrs = [_np_attr(p, side, ids)]
  pos = p["pos_emb"]["embedding"][: ids.shape[1]]
  stack = np.stack([v, *attrs, np.broadcast_to(pos, v.shape)], -2)
  f = ref.ln(_np_fuse(stack, p.get("early_fuse", {}), cfg.side_fusion), p["fused_ln"])
  for i in range(cfg.layers):
    b = p[f"block_{i}"]
    h = ref.freq_filter(v, b["filter_id"], cfg.c)
    a = [ref.freq_filter(attrs[0], b["filter_attr0"], cfg.c)]
    ff = ref.freq_filter(f, b["filter_fused"], cfg.c)
    v_out = _np_id_attn(h, pos, a, ids, b["id_attn"], cfg.heads, cfg.side_fusion)
    f_out = ref.attention(ff, ids, b["fused_attn"], cfg.heads, causal=True)
    v, f = ref.ffn(v_out, b["ffn"]), ref.ffn(f_out, b["ffn"])
  return cfg.alpha * v[:, -1] + (1 - cfg.alpha) * f[:, -1]


@pytest.mark.parametrize("fusion", ["sum", "concat", "gate"])
def test_diff_matches_numpy(fusion):
  model, cfg, params, side = _model(fusion)
  assert params["block_0"]["filter_id"]["sqrt_beta"].shape == (1,)
  want = _np_encode(params, cfg, side, IDS)
  got = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.encode))
  np.testing.assert_allclose(got, want, atol=5e-5)
  scores = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.score))
  np.testing.assert_allclose(scores, want @ params["items"]["id_emb"]["embedding"].T, atol=5e-5)


def test_attributes_are_sum_pooled_and_zero_without_any():
  model, _, params, side = _model()
  got = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.attributes)[0])
  E = np.asarray(params["attr_emb_attributes"]["embedding"])
  np.testing.assert_allclose(got[1, 3], E[4] + E[1] + E[2], atol=1e-6)  # item 4
  np.testing.assert_allclose(got[0, 5], 0.0)  # item 6 has no attributes
  np.testing.assert_allclose(got[0, 0], 0.0)  # padding


def test_alignment_is_symmetric_infonce_with_equal_attribute_positives():
  model, cfg, params, side = _model()
  ids = jnp.array([1, 3, 2, 5, 9, 0])
  valid = jnp.array([True, True, True, True, True, False])
  got = float(model.apply({"params": params}, ids, valid, method=model.alignment))
  e = params["items"]["id_emb"]["embedding"][np.asarray(ids)[:5]]
  s = _np_attr(params, side, np.asarray(ids)[:5])
  e = e / np.linalg.norm(e, axis=-1, keepdims=True)
  s = s / np.linalg.norm(s, axis=-1, keepdims=True)
  z = e @ s.T / cfg.align_temp
  pos = np.array([[side.group[i] == side.group[j] for j in (1, 3, 2, 5, 9)] for i in (1, 3, 2, 5, 9)])
  assert pos[0, 1] and not pos[0, 2]  # items 1 and 3 both have only attribute 2
  nce = lambda zz: np.mean(logsumexp(zz, -1) - logsumexp(np.where(pos, zz, -np.inf), -1))
  assert got == pytest.approx(0.5 * (nce(z) + nce(z.T)), rel=1e-4)


@pytest.mark.parametrize("freeze", [False, True])
def test_attribute_tables_train_unless_frozen(freeze):
  model, _, params, _ = _model(freeze_attributes=freeze)
  batch = {"input_ids": jnp.asarray(IDS), "target": jnp.array([7, 8, 10]), "weight": jnp.ones(3)}
  g = jax.grad(lambda p: model.apply({"params": p}, batch, False, method=model.loss).mean())(params)
  norm = float(jnp.abs(g["attr_emb_attributes"]["embedding"]).sum())
  assert (norm == 0.0) == freeze
  if not freeze:
    assert float(jnp.std(params["attr_emb_attributes"]["embedding"])) < 0.2


def test_loss_is_ce_plus_lambda_alignment():
  model, cfg, params, _ = _model(lam=3.0, align_window=4)
  batch = {"input_ids": jnp.asarray(IDS), "target": jnp.array([7, 8, 10]), "weight": jnp.array([1.0, 1.0, 0.0])}
  loss = np.asarray(model.apply({"params": params}, batch, False, method=model.loss))
  logits = np.asarray(model.apply({"params": params}, jnp.asarray(IDS), method=model.score)).astype(np.float64)
  logits[:, 0] = -np.inf
  ce = -(logits[np.arange(3), [7, 8, 10]] - logsumexp(logits, -1))
  win = IDS[:, -4:]
  valid = (win > 0) & np.array([True, True, False])[:, None]
  al = float(model.apply({"params": params}, jnp.asarray(win.reshape(-1)), jnp.asarray(valid.reshape(-1)),
                         method=model.alignment))
  np.testing.assert_allclose(loss, ce + 3.0 * al, rtol=1e-4)


def test_side_readers(tmp_path):
  path = tmp_path / "Shop_item2attributes_s3rec.json.gz"
  with gzip.open(path, "wt") as f:
    json.dump({"1": [3, 1], "2": [1, 3], "4": [2]}, f)
  (tmp_path / "Shop.txt").write_text("1 1 2 4\n")
  assert side_mod.find_attribute_file(tmp_path / "Shop.txt") == path
  s = side_mod.load_side(path, 4)
  np.testing.assert_array_equal(s.ids[0], [[0, 0], [1, 3], [1, 3], [0, 0], [2, 0]])
  assert s.vocab == (3,) and s.group[1] == s.group[2] != s.group[4] and s.group[0] == s.group[3]
  table = ItemTable("item_id", {1: {"brand": "A", "categories": ["x", "y"]}, 2: {"brand": "B", "categories": ["y"]},
                                3: {"brand": "A", "categories": []}}, ("item_id", "brand", "categories"))
  t = side_mod.side_from_item_table(table, ("brand", "categories"), 3)
  assert t.names == ("brand", "categories") and t.vocab == (2, 2)
  np.testing.assert_array_equal(t.ids[0][:, 0], [0, 1, 2, 1])
  np.testing.assert_array_equal(t.ids[1], [[0, 0], [1, 2], [2, 0], [0, 0]])


def test_last_only_equals_full_computation():
  model, _, params, _ = _model("gate")
  v, f = model.apply({"params": params}, jnp.asarray(IDS), False, method=model.hidden)
  v1, f1 = model.apply({"params": params}, jnp.asarray(IDS), False, None, True, method=model.hidden)
  assert v1.shape == (3, 1, 8) and f1.shape == (3, 1, 8)
  np.testing.assert_allclose(np.asarray(v1[:, 0]), np.asarray(v[:, -1]), atol=1e-5)
  np.testing.assert_allclose(np.asarray(f1[:, 0]), np.asarray(f[:, -1]), atol=1e-5)


def test_alignment_gradient_matches_reference_and_small_temperature_is_refused():
  """The shared-exp alignment has the gradient of the textbook four log-sum-exps."""
  model, cfg, params, side = _model()
  ids = jnp.array([1, 3, 2, 5, 9, 0, 7, 4])
  valid = jnp.array([True, True, True, True, True, False, True, False])

  def reference(p):
    e = p["items"]["id_emb"]["embedding"][ids]
    a = side.ids[0][np.asarray(ids)]
    s = jnp.where(jnp.asarray(a > 0)[..., None], p["attr_emb_attributes"]["embedding"][jnp.asarray(a)], 0).sum(-2)
    nrm = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-8)
    z = jnp.where(valid[:, None] & valid[None, :], nrm(e) @ nrm(s).T / cfg.align_temp, -1e9)
    g = jnp.asarray(side.group)[ids]
    pos = (g[:, None] == g[None, :]) & valid[None, :]
    nce = lambda zz: jnp.sum((jax.nn.logsumexp(zz, -1) - jax.nn.logsumexp(jnp.where(pos, zz, -1e9), -1)) * valid)
    return 0.5 * (nce(z) + nce(z.T)) / valid.sum()

  ours = lambda p: model.apply({"params": p}, ids, valid, method=model.alignment)
  assert float(ours(params)) == pytest.approx(float(reference(params)), rel=1e-5)
  g_ours, g_ref = jax.grad(ours)(params), jax.grad(reference)(params)
  for name in ("items", "attr_emb_attributes"):
    for a, b in zip(jax.tree_util.tree_leaves(g_ours[name]), jax.tree_util.tree_leaves(g_ref[name])):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
  with pytest.raises(ValueError, match="align_temp"):
    _model(align_temp=0.01)
