"""DeBERTa-v2/v3: parity with transformers on small random configs, buckets, loading, gradients."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aser_jax.models.encoders import CheckpointError, DebertaV2Config, DebertaV2Encoder, load_encoder
from aser_jax.models.encoders import deberta_v2

V3 = dict(relative_attention=True, position_buckets=8, max_relative_positions=16, pos_att_type="p2c|c2p",
          share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False)
RELATIVE_OPTIONS = {
    "v3": V3,
    "v3-c2p-only": {**V3, "pos_att_type": "c2p"},
    "v3-p2c-only-no-ln": {**V3, "pos_att_type": ["p2c"], "norm_rel_ebd": "none"},
    "v3-unbucketed-clip-6": {**V3, "position_buckets": -1, "max_relative_positions": 6},
    "v2-separate-keys": dict(relative_attention=True, max_relative_positions=6, pos_att_type="c2p|p2c",
                             share_att_key=False, position_biased_input=True),
    "v2-separate-c2p-types": dict(relative_attention=True, pos_att_type=["c2p"], share_att_key=False,
                                  position_biased_input=True, type_vocab_size=2),
    "v2-p2c-default-span-embed-proj": dict(relative_attention=True, pos_att_type=["p2c"],
                                           share_att_key=False, embedding_size=24),
    "v2-conv-first-layer": {**V3, "position_buckets": 4, "conv_kernel_size": 3, "conv_groups": 2},
    "no-relative": dict(relative_attention=False, pos_att_type=["p2c", "c2p"]),
}


def _reference(kw, hidden=32, layers=2):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  kw = {"max_position_embeddings": 40, **kw}
  hc = transformers.DebertaV2Config(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers,
                                    num_attention_heads=4, intermediate_size=37, **kw)
  torch.manual_seed(0)
  model = transformers.DebertaV2Model(hc).eval()
  with torch.no_grad():  # move off the init (zero biases, unit LayerNorms) so every weight matters
    for p in model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  return torch, hc, model


@pytest.mark.parametrize("name", sorted(RELATIVE_OPTIONS))
def test_hidden_states_match_transformers(name):
  torch, hc, model = _reference(RELATIVE_OPTIONS[name])
  cfg = DebertaV2Config.from_hf(hc.to_dict(), "test")
  params = deberta_v2.params_from_state_dict(model.state_dict(), cfg, "test")
  rng = np.random.default_rng(1)
  ids = rng.integers(1, 50, (3, 23))  # longer than the buckets: log-bucketed distances are used
  mask = np.ones_like(ids)
  mask[1, 15:] = 0
  mask[2, 3:] = 0
  ids[mask == 0] = 0
  module = DebertaV2Encoder(cfg)
  for m in (np.ones_like(mask), mask):
    with torch.no_grad():
      want = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(m)).last_hidden_state.numpy()
    got = np.asarray(module.apply({"params": params}, jnp.asarray(ids), jnp.asarray(m)))
    assert np.abs(got - want).max() < 1e-5, name


def test_v3_small_relative_settings_on_a_long_sequence():
  """deberta-v3-small's relative settings (256 buckets over 512 positions) at T = 300, where
  distances past 128 are log-bucketed and the far ones clip to the table's ends."""
  torch, hc, model = _reference(dict(V3, position_buckets=256, max_relative_positions=-1,
                                     max_position_embeddings=512), hidden=16, layers=1)
  cfg = DebertaV2Config.from_hf(hc.to_dict(), "test")
  assert cfg.att_span == 256 and cfg.rel_max == 512
  params = deberta_v2.params_from_state_dict(model.state_dict(), cfg, "test")
  ids = np.random.default_rng(2).integers(1, 50, (2, 300))
  mask = np.ones_like(ids)
  mask[1, 200:] = 0
  with torch.no_grad():
    want = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
  apply = jax.jit(DebertaV2Encoder(cfg).apply)
  got = np.asarray(apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask)))
  assert np.abs(got - want).max() < 1e-5


def test_log_buckets_match_transformers():
  pytest.importorskip("torch")
  from transformers.models.deberta_v2 import modeling_deberta_v2 as ref
  import torch
  for T, buckets, max_pos in ((600, 256, 512), (70, 8, 16), (40, 32, 512), (9, 4, 40)):
    x = torch.zeros(1, T, 1)
    want = ref.build_relative_position(x, x, bucket_size=buckets, max_position=max_pos)[0].numpy()
    cfg = DebertaV2Config(max_position=max_pos, position_buckets=buckets, max_relative_positions=max_pos)
    np.testing.assert_array_equal(deberta_v2.relative_positions(T, cfg), want)


def test_log_buckets_hand_computed():
  # bucket_size 8 (mid 4), max_position 16: |δ| <= 4 is kept; beyond it the bucket is
  # ceil(3 · ln(|δ|/4) / ln(15/4)) + 4, e.g. δ = 5: ceil(0.507) + 4 = 5, δ = 10: ceil(2.08) + 4 = 7,
  # δ = 16: ceil(3.15) + 4 = 8. (δ = 15 lands exactly on 3.0 and is left to the parity test.)
  delta = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16])
  want = np.array([0, 1, 2, 3, 4, 5, 5, 6, 6, 6, 7, 7, 7, 7, 7, 8])
  np.testing.assert_array_equal(deberta_v2.log_bucket_positions(delta, 8, 16), want)
  np.testing.assert_array_equal(deberta_v2.log_bucket_positions(-delta, 8, 16), -want)


def test_load_directory_from_safetensors_and_torch_bin(tmp_path):
  torch, hc, model = _reference(V3)
  from safetensors.torch import save_file
  cfg_text = json.dumps({**hc.to_dict(), "pos_att_type": "p2c|c2p"})
  ids = jnp.asarray(np.random.default_rng(0).integers(1, 50, (2, 11)))
  with torch.no_grad():
    want = model(input_ids=torch.tensor(np.asarray(ids))).last_hidden_state.numpy()
  sd = {f"deberta.{k}": v.contiguous() for k, v in model.state_dict().items()}  # a task model's prefix
  for d, write in (("st", lambda p: save_file(sd, str(p / "model.safetensors"))),
                   ("bin", lambda p: torch.save(sd, p / "pytorch_model.bin"))):
    (tmp_path / d).mkdir()
    (tmp_path / d / "config.json").write_text(cfg_text)
    (tmp_path / d / "tokenizer.json").write_text(_tiny_tokenizer_json())
    write(tmp_path / d)
    enc = load_encoder("deberta-v3-small", path=tmp_path / d)
    got = np.asarray(enc.apply(enc.params, ids, jnp.ones_like(ids)))
    assert np.abs(got - want).max() < 1e-5


def _tiny_tokenizer_json() -> str:
  from tokenizers import Tokenizer, models, pre_tokenizers
  tok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  return tok.to_str()


def test_checkpoint_shape_mismatch_names_the_key():
  _, hc, model = _reference(V3)
  cfg = DebertaV2Config.from_hf({**hc.to_dict(), "intermediate_size": 36}, "cfg.json")
  key = r"'encoder\.layer\.0\.intermediate\.dense\.\w+' has shape \(37,"
  with pytest.raises(CheckpointError, match=key):
    deberta_v2.params_from_state_dict(model.state_dict(), cfg, "cfg.json")
  unknown = r"cfg.json: field 'pos_att_type' has unknown entries \['c2c'\]"
  with pytest.raises(CheckpointError, match=unknown):
    DebertaV2Config.from_hf({**hc.to_dict(), "pos_att_type": "c2c|p2c"}, "cfg.json")


def test_one_finetuning_step_lowers_the_loss():
  """Gradients reach every encoder weight, and one Adam step on a fixed batch lowers the loss."""
  cfg = DebertaV2Config(vocab_size=40, hidden=32, layers=2, heads=4, intermediate=48, max_position=32,
                        position_buckets=8, max_relative_positions=16, dropout=0.1, attn_dropout=0.1)
  module = DebertaV2Encoder(cfg)
  params = deberta_v2.init_params(module, jax.random.key(0))
  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(1, 40, (8, 12)))
  mask = jnp.asarray(np.arange(12)[None] < rng.integers(4, 13, (8, 1))).astype(jnp.int32)
  target = jnp.asarray(rng.normal(size=(8, 32)), jnp.float32)

  def loss_fn(p, key):
    h = module.apply({"params": p}, ids, mask, True, rngs={"dropout": key})
    pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return jnp.mean((pooled - target) ** 2)

  value_and_grad = jax.jit(jax.value_and_grad(loss_fn))
  key = jax.random.key(1)
  before, grads = value_and_grad(params, key)
  norms = jax.tree_util.tree_map(lambda g: float(jnp.abs(g).max()), grads)
  dead = [jax.tree_util.keystr(k) for k, v in jax.tree_util.tree_leaves_with_path(norms) if v == 0.0]
  assert not dead, f"no gradient reaches {dead}"
  opt = optax.adam(1e-2)
  new = jax.jit(lambda p, g: optax.apply_updates(p, opt.update(g, opt.init(p), p)[0]))(params, grads)
  after, _ = value_and_grad(new, key)  # same dropout masks: only the weights changed
  assert float(after) < float(before) - 1e-3, (before, after)
