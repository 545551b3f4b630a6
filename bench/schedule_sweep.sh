#!/usr/bin/env bash
# Hand-made σ grids against GITS and LD3 (a benchmark, not a test): ODE error (RMS distance to a 500-step
# Heun from the same noise, seeds 1000-1511) of euler, ipndm, dpmpp_2m and unipc at NFE 3, 5, 7, 9 on
# karras, logsnr, time_uniform, kl_optimal and the GITS and LD3 grids that `search-schedule` finds for
# that sampler and NFE (teacher heun:60 on karras, 256 warm-up samples, seed 0; LD3 with its defaults:
# 64 validation samples, 200 Adam steps). Writes a markdown table.
# GITS_ARGS (environment) adds search-schedule options to the GITS search, e.g.
# GITS_ARGS="--metric l2 --coeff 1 --student-step" for scoreflow's earlier GITS settings.
#   bash bench/schedule_sweep.sh [build/scoreflow] [MODEL] > table.md
set -euo pipefail
BIN=${1:-./build/scoreflow}
MODEL=${2:-builtin:gmm:shape=2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| sampler | NFE | karras | logsnr | time_uniform | kl_optimal | GITS | LD3 |"
echo "|---|---|---|---|---|---|---|---|"
for S in euler ipndm dpmpp_2m unipc; do
  for N in 3 5 7 9; do
    "$BIN" search-schedule --method gits --model "$MODEL" --sampler "$S" --nfe "$N" --teacher heun:60 \
      --warmup 256 --seed 0 ${GITS_ARGS:-} --out "$WORK/gits_${S}_$N.json" >/dev/null 2>&1
    "$BIN" search-schedule --method ld3 --model "$MODEL" --sampler "$S" --nfe "$N" --teacher heun:60 \
      --warmup 256 --seed 0 --out "$WORK/ld3_${S}_$N.json" >/dev/null 2>&1
    "$BIN" compare --model "$MODEL" --samplers "$S" --nfe "$N" --seeds 1000-1511 --metric ode-error \
      --schedules "karras,logsnr,time_uniform,kl_optimal,file:$WORK/gits_${S}_$N.json,file:$WORK/ld3_${S}_$N.json" \
      --out-dir "$WORK/cmp_${S}_$N" >/dev/null 2>&1
    # results.csv: sampler,schedule,nfe_budget,steps,nfe_used,ode-error,seconds,error — one row per grid
    awk -F, -v s="$S" -v n="$N" 'NR > 1 { v[NR - 1] = sprintf("%.4f", $6) }
      END { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, n, v[1], v[2], v[3], v[4], v[5], v[6] }' \
      "$WORK/cmp_${S}_$N/results.csv"
  done
done
