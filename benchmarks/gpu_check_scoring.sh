#!/usr/bin/env bash
# GPU checks of issue 16 (resumable scoring, vLLM backend of ADG), for a machine with CUDA. Not run on CPU machines.
#
#   bash benchmarks/gpu_check_scoring.sh            # ~5-8 min on one H100/H200 (model loads included)
#   ADG_MODEL=Qwen/Qwen2.5-0.5B-Instruct bash benchmarks/gpu_check_scoring.sh   # the issue's 0.5B model (cached)
#
# 1. the CUDA tests of the scorers and of resumable scoring (fp16/bf16 ADG, score() with the GPU scorer);
# 2. bench_scoring.py on the GPU: score / map / raw encode on 2,000 ShareGPT first turns (the issue asks score / map
#    >= 0.9), resume overhead;
# 3. ADG with vLLM (K=5, 256 new tokens) against the transformers backend, ex/s (the paper: 8.10 ex/s on 4 GPUs with
#    7-8B models), when vLLM is installed (`pip install 'hf_diverse[vllm]'`); skipped with a note otherwise.
# Each part prints its own table; a failing part does not stop the next (the exit code says if one failed).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export PYTHONPATH=${PYTHONPATH:-$PWD}
MODEL=${ADG_MODEL:-default}
status=0

echo "== 1. CUDA tests (scorers, scoring)"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))" \
    || exit 2
timeout 900 "$PY" -m pytest -q -p no:cacheprovider -m "slow or not slow" tests/scorers/test_adg.py \
    tests/scoring/test_api.py -k "gpu or cuda or embedding_scorer_equals_map or vllm" || status=1

echo "== 2. resumable embedding scoring on the GPU"
timeout 900 "$PY" benchmarks/bench_scoring.py --n 2000 --repeats 3 || status=1

echo "== 3. ADG with vLLM, model: $MODEL"
if "$PY" -c "import vllm" 2>/dev/null; then
    timeout 1200 "$PY" benchmarks/bench_scoring.py --n 600 --repeats 1 --adg-vllm "$MODEL" --adg-n 512 || status=1
else
    echo "vLLM is not installed here: ADG with vLLM skipped (pip install 'hf_diverse[vllm]')."
fi
exit $status
