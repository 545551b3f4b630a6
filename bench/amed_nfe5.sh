#!/usr/bin/env bash
# AMED at NFE 5 on the 2-D mixtures (a benchmark, not a test): RMS error against a 500-step Heun
# reference from the same per-seed noise for the trained AMED-Solver (Heun teacher, M = 1 and 3) on
# the authors' grid for it (vp_time_uniform) and on Karras ρ = 7, the AMED-Plugin on iPNDM, the Heun
# teachers themselves, and the baselines iPNDM, DPM-Solver-2, DPM-Solver++(2M) and DEIS (all with
# AFS) on both grids. 10k training trajectories (TRAJ=...), seed 1.
#   bash bench/amed_nfe5.sh [build/scoreflow] > table.md
set -euo pipefail
BIN=${1:-./build/scoreflow}
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SEEDS=1000-1511
TRAJ=${TRAJ:-10000}
MODELS=("builtin:gmm:shape=2|gmm 2-D" "builtin:ring8|ring8")
sample() {  # model out sampler args grid steps|nfe...
  local model=$1 out=$2 sampler=$3 args=$4 grid=$5
  shift 5
  "$BIN" sample --model "$model" --sampler "$sampler" --sampler-args "$args" --schedule "$grid" "$@" \
    --seeds "$SEEDS" --batch 512 --npz "$out" 2>/dev/null
}
for entry in "${MODELS[@]}"; do
  IFS='|' read -r model label <<<"$entry"
  dir="$WORK/$(echo "$label" | tr ' ' '_')"
  mkdir -p "$dir"
  sample "$model" "$dir/ref.npz" heun "" karras --steps 500
  for grid in karras vp_time_uniform; do
    sample "$model" "$dir/iPNDM, $grid.npz" ipndm afs=true "$grid" --nfe 5
    sample "$model" "$dir/DPM-Solver-2 (amed r=0.5), $grid.npz" amed r=0.5,afs=true "$grid" --steps 3
    sample "$model" "$dir/DPM-Solver++(2M), $grid.npz" dpmpp_2m afs=true "$grid" --nfe 5
    sample "$model" "$dir/DEIS tAB order 3, $grid.npz" deis afs=true "$grid" --nfe 5
    for M in 1 3; do
      [[ $grid == karras && $M == 1 ]] && continue
      "$BIN" train-amed --model "$model" --student amed --teacher heun --steps 3 --afs --M "$M" --schedule "$grid" \
        --scale-time 0.2 --num-trajectories "$TRAJ" --seed 1 --out "$dir/amed_${grid}_$M.pt" 2>/dev/null
      sample "$model" "$dir/AMED-Solver M=$M, $grid.npz" amed "predictor=$dir/amed_${grid}_$M.pt" "$grid" --steps 3
      sample "$model" "$dir/(teacher: Heun M=$M, $((3 * (M + 1) + 1)) points, $grid).npz" heun "" "$grid" \
        --steps $((3 * (M + 1) + 1))
    done
  done
  "$BIN" train-amed --model "$model" --student ipndm --teacher ipndm --steps 3 --afs \
    --num-trajectories "$TRAJ" --seed 1 --out "$dir/plugin.pt" 2>/dev/null
  sample "$model" "$dir/AMED-Plugin on iPNDM (M=2), karras.npz" amed_plugin "predictor=$dir/plugin.pt" karras --steps 3
done
"$PY" - "$WORK" <<'PYEOF'
import math, os, sys
import numpy as np
work = sys.argv[1]
print("| model | method (NFE 5, AFS; teachers: more) | RMS error vs Heun-500 |")
print("|---|---|---|")
for label in sorted(os.listdir(work)):
    d = os.path.join(work, label)
    ref = np.load(os.path.join(d, "ref.npz"))["samples"].astype(np.float64).reshape(512, -1)
    rows = []
    for f in os.listdir(d):
        if not f.endswith(".npz") or f == "ref.npz":
            continue
        x = np.load(os.path.join(d, f))["samples"].astype(np.float64).reshape(512, -1)
        rows.append((math.sqrt(np.mean(np.sum((x - ref) ** 2, 1))), f[:-4]))
    for err, name in sorted(rows):
        print("| %s | %s | %.4f |" % (label.replace("_", " "), name, err))
PYEOF
