#!/usr/bin/env bash
# The GPU figures in one go (a few minutes on one GPU): python -m bench.gpu, then the results.
#   bench/gpu.sh                 whisper-base + large-v3 shapes, fp16/bf16, training steps
#   bench/gpu.sh --dry           tiny shapes on any device (what the test suite runs on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
export PYTHONPATH="$PWD:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
exec "$py" -m bench.gpu "$@"
