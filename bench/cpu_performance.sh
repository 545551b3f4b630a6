#!/usr/bin/env bash
# Issue #21's CPU measurements, side by side in one run: on the shipped demo model and on a deeper
# EDM-style U-Net at 3x32x32 (random weights, written here by bench/make_edm_unet.py, not committed),
# at batch 1, 8 and 64, Euler and DPM-Solver++(2M) at 10 NFE: `scoreflow bench` with the plain module
# (--no-optimize), with the optimised module at every batch (--optimize-max-batch 1000000), as the
# commands run by default (the module timed at load), with the plain module's calls split over thread
# teams (--cpu-teams 0) and (PyTorch 2.x) with the fused module; the Python loop on the same file
# (bench/python_loop.py) plain, frozen + optimize_for_inference and frozen + oneDNN Graph fusion; ms per
# network call, and the sampler's overhead over the network alone. Where PYTHON has PyTorch >= 2.6
# (PT2=1, the default there), also the network as a CPU AOTInductor package (scripts/export_pt2.py
# --device cpu, Inductor's freezing on): `scoreflow bench` on the package, the Python loop on the same
# package, and the Python loop on torch.compile of the eager network (COMPILE=1; the default mode with
# freezing, one graph per batch size: what a careful PyTorch 2 user does). ROUNDS repeats the whole set (the
# variants interleaved in each round; the samplers' order reversed in even rounds), to see how stable
# the ratios are on a shared machine.
#   bash bench/cpu_performance.sh OUTDIR
# Knobs (environment): BUILD (build), PYTHON (/usr/bin/python3), THREADS (all cores), ROUNDS (2),
# BATCHES (1,8,64), REPEAT (1) and ITER (3): timed runs and network-alone calls per run (the
# warm-up run makes the TorchScript profiling executor optimise before timing),
# DEEP (64,2: channels and blocks per level of the U-Net; EDM's CIFAR-10 network is 128,4), MODELS
# ("demo unet", or one of them, to split the run), PT2 and COMPILE (1 or 0; see above), FUSED (empty:
# skip the fused variants, whose oneDNN Graph compile takes ~30 s per batch size), TEAMS (1; 0 skips the
# thread-team variant, to fit more rounds of the others in a limited run).
# OUTDIR/TAG.choice.json keeps the module choice the commands make by default on this machine (timed
# at load; `scoreflow info`).
# Writes OUTDIR/*.jsonl and OUTDIR/cpu_performance.md (bench/summarize_cpu.py).
set -euo pipefail
OUTDIR=${1:?usage: cpu_performance.sh OUTDIR}
SF=${BUILD:-build}/scoreflow
PY=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-2}
BATCHES=${BATCHES:-1,8,64}
REPEAT=${REPEAT:-1}
ITER=${ITER:-3}
DEEP=${DEEP:-64,2}
MODELS=${MODELS:-demo unet}
TEAMS=${TEAMS:-1}
PT2=${PT2:-$("$PY" -c "import torch; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]); print(1 if v >= (2, 6) else 0)" 2>/dev/null || echo 0)}
COMPILE=${COMPILE:-$PT2}
mkdir -p "$OUTDIR"
export SCOREFLOW_CACHE_DIR="$OUTDIR/cache"
# oneDNN Graph fusion (the fused module and Python's --fuse) where this LibTorch has it.
FUSED=${FUSED-$("$PY" -c "import torch; print(1 if torch.backends.mkldnn.is_available() and hasattr(torch.jit, 'enable_onednn_fusion') and torch.__version__ >= '2' else '')" 2>/dev/null || true)}
paths=()
declare -A EAGER PACKAGE
if [[ " $MODELS " == *" demo "* ]]; then
  paths+=(models/fashion_ddpm.pt)
  EAGER[fashion_ddpm]=scripts/export_pt2.py:demo_eager
  if [[ "$PT2" == 1 ]]; then
    "$PY" scripts/export_pt2.py --demo models/fashion_ddpm.pt --out "$OUTDIR/fashion_ddpm.pt2" --device cpu \
      > "$OUTDIR/export_demo.log" 2>&1 && PACKAGE[fashion_ddpm]=$OUTDIR/fashion_ddpm.pt2
  fi
fi
if [[ " $MODELS " == *" unet "* ]]; then
  unet=("$PY" bench/make_edm_unet.py --out "$OUTDIR/edm_unet.pt" --channels "${DEEP%,*}" --blocks "${DEEP#*,}")
  if [[ "$PT2" == 1 ]] && "${unet[@]}" --out-pt2 "$OUTDIR/edm_unet.pt2" --device cpu > "$OUTDIR/edm_unet.json" \
    2> "$OUTDIR/export_unet.log"; then
    PACKAGE[edm_unet]=$OUTDIR/edm_unet.pt2
  else  # no package: the TorchScript file alone
    "${unet[@]}" > "$OUTDIR/edm_unet.json"
  fi
  paths+=("$OUTDIR/edm_unet.pt")
  EAGER[edm_unet]=bench/make_edm_unet.py:load_eager
fi
for model in "${paths[@]}"; do
  "$SF" --threads "$THREADS" info --json --model "$model" > "$OUTDIR/$(basename "$model" .pt).choice.json"
done
{ date -u +%FT%TZ; nproc; grep -m1 'model name' /proc/cpuinfo; uptime; } > "$OUTDIR/machine.txt"
for round in $(seq 1 "$ROUNDS"); do
  # Every program times its samplers in turn in one process; on the 16-core host the plain module's
  # first sampler ran 1.25-1.5x slower at batch 1-4 than its second (docs/performance.md, "CPU",
  # session 25), so even rounds take them in the other order.
  SAMPLERS=euler,dpmpp_2m
  (( round % 2 == 0 )) && SAMPLERS=dpmpp_2m,euler
  for model in "${paths[@]}"; do
    tag=$(basename "$model" .pt)
    timing=(--batch "$BATCHES" --nfe 10 --sampler "$SAMPLERS" --repeat "$REPEAT" --iterations "$ITER" --json)
    common=(--threads "$THREADS" bench --model "$model" "${timing[@]}")
    "$SF" "${common[@]}" --no-optimize --cpu-teams 1 \
      | sed "s/^{/{\"round\":$round,\"variant\":\"scoreflow plain\",/" >> "$OUTDIR/$tag.jsonl"
    "$SF" "${common[@]}" --optimize-max-batch 1000000 --cpu-module optimized --cpu-teams 1 \
      | sed "s/^{/{\"round\":$round,\"variant\":\"scoreflow optimised\",/" >> "$OUTDIR/$tag.jsonl"
    "$SF" "${common[@]}" | sed "s/^{/{\"round\":$round,\"variant\":\"scoreflow default\",/" >> "$OUTDIR/$tag.jsonl"
    if [[ "$TEAMS" == 1 ]]; then
      "$SF" "${common[@]}" --no-optimize --cpu-teams 0 \
        | sed "s/^{/{\"round\":$round,\"variant\":\"scoreflow teams\",/" >> "$OUTDIR/$tag.jsonl"
    fi
    if [[ -n "$FUSED" ]]; then
      "$SF" "${common[@]}" --optimize-max-batch 1000000 --cpu-module fused \
        | sed "s/^{/{\"round\":$round,\"variant\":\"scoreflow fused\",/" >> "$OUTDIR/$tag.jsonl"
    fi
    if [[ -n "${PACKAGE[$tag]:-}" ]]; then
      "$SF" --threads "$THREADS" bench --model "${PACKAGE[$tag]}" "${timing[@]}" \
        | sed "s/^{/{\"round\":$round,\"variant\":\"scoreflow pt2\",/" >> "$OUTDIR/$tag.jsonl"
    fi
    py=("$PY" bench/python_loop.py --model "$model" --device cpu --threads "$THREADS" --samplers "$SAMPLERS"
        --batches "$BATCHES" --nfe 10 --repeat "$REPEAT" --iterations "$ITER")
    for opt in "" --optimize ${FUSED:+--fuse}; do
      "${py[@]}" $opt | grep '"sampler"' | sed "s/^{/{\"round\":$round,\"variant\":\"python${opt:+ ${opt#--}}\",/" \
        | sed 's/"python optimize"/"python optimised"/; s/"python fuse"/"python fused"/' >> "$OUTDIR/$tag.jsonl"
    done
    if [[ -n "${PACKAGE[$tag]:-}" ]]; then
      "${py[@]}" --pt2 "${PACKAGE[$tag]}" | grep '"sampler"' \
        | sed "s/^{/{\"round\":$round,\"variant\":\"python pt2\",/" >> "$OUTDIR/$tag.jsonl" \
        || echo "note: the Python loop on $tag's package failed" >&2
    fi
    if [[ "$COMPILE" == 1 ]]; then
      "${py[@]}" --eager "${EAGER[$tag]}" --mode compile | grep '"sampler"' \
        | sed "s/^{/{\"round\":$round,\"variant\":\"python compiled\",/" >> "$OUTDIR/$tag.jsonl" \
        || echo "note: the Python loop on torch.compile of $tag failed" >&2
    fi
  done
done
{ date -u +%FT%TZ; uptime; } >> "$OUTDIR/machine.txt"
"$PY" bench/summarize_cpu.py "$OUTDIR" > "$OUTDIR/cpu_performance.md"
cat "$OUTDIR/cpu_performance.md"
