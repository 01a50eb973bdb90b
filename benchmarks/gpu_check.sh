#!/usr/bin/env bash
# On a CUDA machine: about 2 minutes of supernet training (amp off / bf16 / fp16, channels-last) and a
# 4-candidate search with 4 fitness actors sharing the GPU (search.gpus_per_worker 0.25); prints one JSON
# object (pairs/s per amp mode, candidates/s). Without CUDA it says so and exits 1.
#   bash benchmarks/gpu_check.sh            # PYTHON=/path/to/python to pick the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False); run it on a machine" \
       "with an NVIDIA GPU and a CUDA build of torch (python benchmarks/gpu_check.py --device cpu --smoke" \
       "runs the same code paths on CPU)" >&2
  exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py --device cuda "$@"
