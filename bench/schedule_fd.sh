#!/usr/bin/env bash
# Hand-made σ grids against GITS on the demo model (a benchmark, not a test): FD in the demo classifier's
# feature space against models/fashion_train_stats.npz, NUM samples per cell (seeds 0..NUM-1), for euler,
# ipndm, dpmpp_2m and unipc at NFE 3, 5, 7, 9 on karras, logsnr, time_uniform, kl_optimal, the grid
# `search-schedule` finds with the authors' defaults (GITS), with --metric l2 --coeff 1 --student-step
# --teacher heun:60 (GITS l2), and the grid LD3 learns with its defaults (LD3). Writes a markdown table
# (docs/samplers.md, "on the demo model").
#   bash bench/schedule_fd.sh [BIN] [DEVICE] > table.md        # e.g. build-cuda/scoreflow cuda
# Knobs (environment): MODEL (models/fashion_ddpm.pt), NUM (2000), BATCH (1000), SAMPLERS, NFES, WARMUP (256),
# LD3_DIR (unset: learn each LD3 grid here; set: read DIR/ld3_SAMPLER_NFE.json, grids an earlier run learned,
# to re-measure them with more samples without the minute of learning per cell).
set -euo pipefail
BIN=${1:-./build/scoreflow}
DEVICE=${2:-cpu}
MODEL=${MODEL:-models/fashion_ddpm.pt}
NUM=${NUM:-2000} BATCH=${BATCH:-1000} WARMUP=${WARMUP:-256}
SAMPLERS=${SAMPLERS:-euler ipndm dpmpp_2m unipc} NFES=${NFES:-3 5 7 9}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FD=(--model "$MODEL" --device "$DEVICE" --num "$NUM" --batch "$BATCH" --metric fd --features models/fashion_features.pt
    --ref models/fashion_train_stats.npz)
echo "| sampler | NFE | karras | logsnr | time_uniform | kl_optimal | GITS | GITS l2 | LD3 |"
echo "|---|---|---|---|---|---|---|---|---|"
for S in $SAMPLERS; do
  for N in $NFES; do
    search=("$BIN" search-schedule --method gits --model "$MODEL" --device "$DEVICE" --sampler "$S" --nfe "$N"
            --warmup "$WARMUP" --seed 0)
    "${search[@]}" --out "$WORK/gits_${S}_$N.json" >/dev/null 2>&1
    "${search[@]}" --metric l2 --coeff 1 --student-step --teacher heun:60 --out "$WORK/gitsl2_${S}_$N.json" >/dev/null 2>&1
    if [[ -n ${LD3_DIR:-} ]]; then
      cp "$LD3_DIR/ld3_${S}_$N.json" "$WORK/ld3_${S}_$N.json"
    else
      "$BIN" search-schedule --method ld3 --model "$MODEL" --device "$DEVICE" --sampler "$S" --nfe "$N" --seed 0 \
        --out "$WORK/ld3_${S}_$N.json" >/dev/null 2>&1
    fi
    "$BIN" compare "${FD[@]}" --samplers "$S" --nfe "$N" --out-dir "$WORK/cmp_${S}_$N" \
      --schedules "karras,logsnr,time_uniform,kl_optimal,file:$WORK/gits_${S}_$N.json,file:$WORK/gitsl2_${S}_$N.json,file:$WORK/ld3_${S}_$N.json" \
      >/dev/null 2>&1
    # results.csv: sampler,schedule,nfe_budget,steps,nfe_used,fd,seconds,error — one row per grid
    awk -F, -v s="$S" -v n="$N" 'NR > 1 { v[NR - 1] = sprintf("%.3g", $6) }
      END { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, n, v[1], v[2], v[3], v[4], v[5], v[6], v[7] }' \
      "$WORK/cmp_${S}_$N/results.csv"
  done
done
