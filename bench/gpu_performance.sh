#!/usr/bin/env bash
# Issue #7's measurements, side by side in one run on one GPU: `scoreflow bench` (network alone,
# network from a CUDA graph, full sampler) for every sampler at batch 64, the small-batch C++ vs
# Python comparison (bench/python_loop.py, same network file and grid), and fp16/bf16.
#   BUILD=/tmp/bc bash bench/gpu_performance.sh OUTDIR [MODEL] [GAMMA.json]
# PARTS=overhead runs only the first part (every sampler at batch 64), for a short GPU call.
# Writes OUTDIR/*.jsonl and OUTDIR/performance.md (bench/summarize_performance.py).
set -euo pipefail
OUTDIR=${1:?usage: gpu_performance.sh OUTDIR [MODEL] [GAMMA]}
MODEL=${2:-models/fashion_ddpm.pt}
GAMMA=${3:-}
SF=${BUILD:-build}/scoreflow
PY=${PYTHON:-python3}
DEV=${DEVICE:-cuda}
mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUTDIR/gpu.txt" 2>/dev/null || true

# 1. Overhead of every sampler at batch 64 (10 NFE), eager and from a CUDA graph.
"$SF" bench --model "$MODEL" --device "$DEV" --batch 64 --nfe 10 --cuda-graph --json \
  --sampler euler,heun,ddim,ddpm,euler_maruyama,dpm_solver_2,dpmpp_2m,dpmpp_3m,dpmpp_2m_sde,unipc,ipndm,ipndm_v,deis \
  > "$OUTDIR/cpp_b64.jsonl"
"$SF" bench --model "$MODEL" --device "$DEV" --batch 64 --nfe 10 --cuda-graph --json --sampler amed \
  --sampler-args r=0.5,c=1,a=1 >> "$OUTDIR/cpp_b64.jsonl"
"$SF" bench --model "$MODEL" --device "$DEV" --batch 64 --nfe 10 --cuda-graph --json --sampler amed_plugin \
  --sampler-args base=ipndm,r=0.5,c=1,a=1 >> "$OUTDIR/cpp_b64.jsonl"
"$SF" bench --model "$MODEL" --device "$DEV" --batch 64 --nfe 10 --cuda-graph --json --sampler sn_dpm \
  --schedule trailing >> "$OUTDIR/cpp_b64.jsonl"
if [[ -n "$GAMMA" ]]; then
  for s in analytic_ddpm analytic_ddim; do
    "$SF" bench --model "$MODEL" --device "$DEV" --batch 64 --nfe 10 --cuda-graph --json --sampler $s \
      --schedule trailing --sampler-args gamma="$GAMMA" >> "$OUTDIR/cpp_b64.jsonl"
  done
fi
if [[ ${PARTS:-all} == all ]]; then
# 2. Small batches: C++ (eager and graph) and the Python eager loop on the same network and grid.
"$SF" bench --model "$MODEL" --device "$DEV" --batch 1,2,4,8,64 --nfe 10 --cuda-graph --json \
  --sampler euler,heun,dpmpp_2m > "$OUTDIR/cpp_small.jsonl"
"$PY" bench/python_loop.py --model "$MODEL" --device "$DEV" --samplers euler,heun,dpmpp_2m --batches 1,2,4,8,64 \
  --nfe 10 > "$OUTDIR/python_small.jsonl"
# 3. Reduced precision: speed and the sample difference against fp32 from the same noise.
for dt in fp16 bf16; do
  "$SF" bench --model "$MODEL" --device "$DEV" --batch 8,64,512 --nfe 10 --cuda-graph --json --sampler dpmpp_2m \
    --dtype $dt >> "$OUTDIR/cpp_dtype.jsonl"
done
"$SF" bench --model "$MODEL" --device "$DEV" --batch 8,64,512 --nfe 10 --cuda-graph --json --sampler dpmpp_2m \
  >> "$OUTDIR/cpp_dtype.jsonl"
fi
"$PY" bench/summarize_performance.py "$OUTDIR" > "$OUTDIR/performance.md"
cat "$OUTDIR/performance.md"
