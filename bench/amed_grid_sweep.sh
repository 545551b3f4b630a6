#!/usr/bin/env bash
# AMED-Solver vs iPNDM at NFE 5 on builtin:gmm (2-D) over σ grids (a benchmark, not a test): for each
# grid, iPNDM with AFS on 7 grid points (+ the step to σ = 0, which costs it a 6th NFE), and the
# AMED-Solver (3 intervals, AFS, Heun teacher M = 3, --scale-time 0.2) trained with several seeds
# and trajectory budgets on the same grid, and the AMED-Plugin on iPNDM (M = 2, 10k trajectories,
# four seeds) on the same grid. RMS over seeds 1000-1511 of the distance to a 500-step Heun
# reference from the same noise. CPU; about 15 minutes on 2 cores.
#   bash bench/amed_grid_sweep.sh [build/scoreflow] > table.md
set -euo pipefail
BIN=${1:-./build/scoreflow}
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MODEL=builtin:gmm:shape=2
SEEDS=1000-1511
GRIDS=${GRIDS:-"vp_time_uniform:rho=1 vp_time_uniform:rho=2 vp_time_uniform:rho=2.5 vp_time_uniform:rho=3
  vp_time_uniform:rho=3.5 vp_time_uniform:rho=4 vp_time_uniform:rho=5 vp_time_uniform:rho=7 karras:rho=3
  karras:rho=7 karras:rho=10 logsnr:"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
sample() {  # out sampler args grid grid_args [steps/nfe...]
  local out=$1 sampler=$2 args=$3 grid=$4 gargs=$5
  shift 5
  "$BIN" sample --model "$MODEL" --sampler "$sampler" --sampler-args "$args" --schedule "$grid" \
    ${gargs:+--schedule-args "$gargs"} "$@" --seeds "$SEEDS" --batch 512 --npz "$out" 2>/dev/null
}
rms() {
  "$PY" -c "import sys,numpy as np;r=np.load(sys.argv[1])['samples'].astype(float).reshape(512,-1);\
x=np.load(sys.argv[2])['samples'].astype(float).reshape(512,-1);print(f'{np.sqrt(((x-r)**2).sum(1).mean()):.3f}')" "$@"
}
sample "$WORK/ref.npz" heun "" karras "" --steps 500
echo "| grid | iPNDM, 7 points (+ step to 0) | AMED-Solver, 10k trajectories, seeds 1 / 2 / 3 / 4 | AMED-Solver, 30k, seeds 1 / 2 / 3 / 4 | AMED-Plugin (iPNDM), 10k, seeds 1 / 2 / 3 / 4 |"
echo "|---|---|---|---|---|"
for spec in $GRIDS; do
  grid=${spec%%:*} gargs=${spec#*:}
  sample "$WORK/ipndm.npz" ipndm afs=true "$grid" "$gargs" --nfe 6
  cells=()
  for traj in 10000 30000; do
    errs=()
    for seed in 1 2 3 4; do
      "$BIN" train-amed --model "$MODEL" --student amed --teacher heun --steps 3 --afs --M 3 --scale-time 0.2 \
        --schedule "$grid" ${gargs:+--schedule-args "$gargs"} --num-trajectories "$traj" --seed "$seed" \
        --out "$WORK/a.pt" 2>/dev/null
      sample "$WORK/a.npz" amed "predictor=$WORK/a.pt" "$grid" "$gargs" --steps 3
      errs+=("$(rms "$WORK/ref.npz" "$WORK/a.npz")")
    done
    cells+=("$(IFS=/; echo "${errs[*]}" | sed 's#/# / #g')")
  done
  errs=()
  for seed in 1 2 3 4; do
    "$BIN" train-amed --model "$MODEL" --student ipndm --teacher ipndm --steps 3 --afs \
      --schedule "$grid" ${gargs:+--schedule-args "$gargs"} --seed "$seed" --out "$WORK/p.pt" 2>/dev/null
    sample "$WORK/p.npz" amed_plugin "predictor=$WORK/p.pt" "$grid" "$gargs" --steps 3
    errs+=("$(rms "$WORK/ref.npz" "$WORK/p.npz")")
  done
  cells+=("$(IFS=/; echo "${errs[*]}" | sed 's#/# / #g')")
  echo "| $grid ${gargs} | $(rms "$WORK/ref.npz" "$WORK/ipndm.npz") | ${cells[0]} | ${cells[1]} | ${cells[2]} |"
done
