#!/usr/bin/env bash
# Runs the vLLM teacher backend from its own environment (see build_env.sh).
#
# The project is put on PYTHONPATH instead of being installed, so the vLLM venv needs only
# vllm, absl-py and tqdm. Each --data preset is written to OUT_DIR/<preset> as resumable shards.
#
# usage: experiments/vllm/run_teacher.sh MODEL_DIR OUT_DIR [extract_teacher.py flags...]
#   env: VLLM_VENV (default /work/vllm-venv), DATASETS (default "beauty all_beauty_2018"),
#        LIMIT (texts per dataset, default 50), VLLM_CPU_KVCACHE_SPACE (GiB, default 2)
#
# For --backend=openai, serve the same folder with
#   VLLM_VENV/bin/python -m vllm.entrypoints.openai.api_server --model MODEL_DIR --port 8011
# (the `vllm` CLI looks up a distribution named vllm, which a vllm-cpu install lacks) and run
# extract_teacher.py --backend=openai --base_url=http://localhost:8011/v1 --model=MODEL_DIR.
set -euo pipefail

MODEL_DIR="${1:?usage: run_teacher.sh MODEL_DIR OUT_DIR [flags...]}"
OUT_DIR="${2:?usage: run_teacher.sh MODEL_DIR OUT_DIR [flags...]}"
shift 2
VENV="${VLLM_VENV:-/work/vllm-venv}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}"

for data in ${DATASETS:-beauty all_beauty_2018}; do
  "$VENV/bin/python" "$REPO/experiments/extract_teacher.py" --backend=vllm --model="$MODEL_DIR" \
    --data="$data" --limit="${LIMIT:-50}" --shard_size=25 --batch_size=25 \
    --out="$OUT_DIR/$data" "$@"
done
