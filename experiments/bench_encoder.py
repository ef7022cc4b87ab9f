"""Sentence-embedding throughput (texts/s) of a Flax encoder; prints one JSON object.

  python experiments/bench_encoder.py \
      --texts=../shared/data/text/all_beauty_2018/All_Beauty_5.json.gz --num_texts=1000

float32 on CPU; bfloat16 by default on a GPU (override with --dtype).
"""

import json

from absl import app, flags

from aser_jax.models.encoders.bench import run_benchmark

FLAGS = flags.FLAGS
flags.DEFINE_string("texts", "../shared/data/text/all_beauty_2018/All_Beauty_5.json.gz",
                    "Texts to embed: .txt (one per line), .jsonl/.json (reviewText/text field) or .csv "
                    "(Text column), optionally .gz.")
flags.DEFINE_integer("num_texts", 1000, "How many texts from the start of --texts.")
flags.DEFINE_integer("batch_size", 64, "Texts per jitted call.")
flags.DEFINE_integer("repeats", 3, "Timed passes after the warm-up pass; the best is reported.")
flags.DEFINE_string("encoder", "all-minilm-l6-v2", "Encoder name (all-minilm-l6-v2, deberta-v3-small).")
flags.DEFINE_string("encoder_path", None, "HF directory of the encoder (needed for deberta-v3-small).")
flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"], "Compute dtype (default: bfloat16 on GPU).")


def main(argv):
  del argv
  print(json.dumps(run_benchmark(FLAGS.texts, FLAGS.num_texts, batch_size=FLAGS.batch_size,
                                 repeats=FLAGS.repeats, encoder=FLAGS.encoder,
                                 encoder_path=FLAGS.encoder_path, dtype=FLAGS.dtype), sort_keys=True))


if __name__ == "__main__":
  app.run(main)
