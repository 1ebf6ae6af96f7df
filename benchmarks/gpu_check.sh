#!/usr/bin/env bash
# One prepared GPU check of the facility-location engine, for a single-GPU machine with no network that has torch,
# numba and triton but not datasets, trl or FAISS (nothing here imports them). Budget: under 8 minutes.
#
#   bash benchmarks/gpu_check.sh            # from the repository root; writes the log to ${OUT:-/tmp}/gpu_check.log
#   DEVICE=cpu SMALL=1 bash benchmarks/gpu_check.sh   # dry run of the same steps on CPU at toy sizes
#
# 1. the CUDA tests of the engine (tests/facility/test_kernels.py: same picks as a numpy greedy, exact ties, CPU/GPU
#    parity), run with --noconftest (the suite's conftest imports datasets);
# 2. benchmarks/gpu_check.py: CPU/GPU same picks at N=20k, exact greedy at N=100k, kNN + sparse greedy at 1.3M -> 10k.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=${OUT:-/tmp}/gpu_check.log
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_DIVERSE_DISABLE_PROGRESS_BARS=1
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba_cache}
DEVICE=${DEVICE:-cuda}
if [ "${SMALL:-0}" = 1 ]; then SIZES=(--exact-n 3000 --knn-n 20000 --k 300 --parity-n 3000 --parity-k 200)
else SIZES=(--exact-n 100000 --knn-n 1300000 --k 10000); fi
{
    echo "== $(date -u) $(uname -m) $($PY --version 2>&1)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    $PY -c "import torch, numba; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numba', numba.__version__)"
    echo "== 1. tests (CUDA ones skip without a GPU)"
    timeout 240 $PY -m pytest -q -p no:cacheprovider --noconftest -o addopts="" -rs tests/facility/test_kernels.py
    echo "tests exit code: $?"
    echo "== 2. benchmarks"
    timeout 330 $PY benchmarks/gpu_check.py --device "$DEVICE" "${SIZES[@]}"
    echo "benchmark exit code: $?"
} 2>&1 | tee "$LOG"
