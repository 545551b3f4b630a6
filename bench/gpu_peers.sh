#!/usr/bin/env bash
# Issue #19's fair GPU comparison, in one device call (not yet run: no GPU was lent when it was
# written). Per network call at batch 1, 8, 64, 512, Euler and DPM-Solver++(2M), 10 NFE:
#   scoreflow on the TorchScript file, eager and from a CUDA graph (`bench --cuda-graph`);
#   scoreflow on the torch.export/AOTInductor package (.pt2), eager and from a CUDA graph;
#   the Python loop (bench/python_loop.py) on the eager module with the same weights: eager, the
#   network captured in a CUDA graph, torch.compile(mode="reduce-overhead") and
#   torch.compile(mode="max-autotune-no-cudagraphs");
# on the demo model and on a DiT-S/2-size transformer on 4x32x32 latents with random weights
# (bench/make_dit.py), each exported both ways here.
# Needs PyTorch >= 2.6 with CUDA and scoreflow built against its LibTorch (scripts/build-cuda.sh):
#   BUILD=build-cuda bash bench/gpu_peers.sh OUTDIR
# Knobs: PYTHON (python3), BATCHES (1,8,64,512), REPEAT (5), ITER (50), MODELS (demo,dit),
# MODES (the Python variants), ARTIFACTS (where the exported files go; default OUTDIR), STEP_TIMEOUT
# (seconds per variant, 0 = none). A variant that fails or times out is named in OUTDIR/failures.txt
# and the others still run.
# Writes OUTDIR/*.jsonl and OUTDIR/gpu_peers.md (bench/summarize_gpu_peers.py).
set -uo pipefail
OUTDIR=${1:?usage: gpu_peers.sh OUTDIR}
SF=${BUILD:-build-cuda}/scoreflow
PY=${PYTHON:-python3}
BATCHES=${BATCHES:-1,8,64,512}
REPEAT=${REPEAT:-5}
ITER=${ITER:-50}
MODELS=${MODELS:-demo,dit}
MODES=${MODES:-eager cuda-graph reduce-overhead max-autotune-no-cudagraphs}
ART=${ARTIFACTS:-$OUTDIR}
STEP_TIMEOUT=${STEP_TIMEOUT:-0}
SAMPLERS=euler,dpmpp_2m
mkdir -p "$OUTDIR" "$ART"
: > "$OUTDIR/failures.txt"
# step NAME CMD...: runs one variant under the time limit; a failure is recorded, not fatal.
step() {
  local name=$1; shift
  local t0=$SECONDS
  if ! timeout "$STEP_TIMEOUT" "$@"; then echo "$name: failed or timed out after $((SECONDS - t0)) s" >> "$OUTDIR/failures.txt"; fi
  echo "$name: $((SECONDS - t0)) s" >&2
}
"$PY" -c 'import sys, torch; v = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
sys.exit(0 if v >= (2, 6) and torch.cuda.is_available() else
         f"error: gpu_peers.sh needs PyTorch >= 2.6 with CUDA; this is torch {torch.__version__}, "
         f"CUDA available: {torch.cuda.is_available()}")'
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true; "$PY" -c 'import torch; print("torch", torch.__version__)'
  date -u +%FT%TZ; } > "$OUTDIR/machine.txt"

# Exports: the demo model's package from its eager network and the weights of the shipped file; the
# DiT both ways from the same random weights.
declare -A TS PT2 EAGER
if [[ ,$MODELS, == *,demo,* ]]; then
  step "export demo .pt2" "$PY" scripts/export_pt2.py --demo models/fashion_ddpm.pt --out "$ART/fashion_ddpm.pt2" --device cuda
  TS[demo]=models/fashion_ddpm.pt PT2[demo]=$ART/fashion_ddpm.pt2 EAGER[demo]=scripts/export_pt2.py:demo_eager
fi
if [[ ,$MODELS, == *,dit,* ]]; then
  step "export dit" "$PY" bench/make_dit.py --out-ts "$ART/dit_s2.pt" --out-pt2 "$ART/dit_s2.pt2" --device cuda
  TS[dit]=$ART/dit_s2.pt PT2[dit]=$ART/dit_s2.pt2 EAGER[dit]=bench/make_dit.py:load_eager
fi

for name in ${MODELS//,/ }; do
  out=$OUTDIR/$name.jsonl
  : > "$out"
  common=(bench --device cuda --batch "$BATCHES" --nfe 10 --sampler "$SAMPLERS" --repeat "$REPEAT"
          --iterations "$ITER" --cuda-graph --json)
  step "$name scoreflow torchscript" bash -c '"$@" | sed -u "s/^{/{\"variant\":\"scoreflow torchscript\",/" >> '"$out" \
    _ "$SF" "${common[@]}" --model "${TS[$name]}"
  step "$name scoreflow pt2" bash -c '"$@" | sed -u "s/^{/{\"variant\":\"scoreflow pt2\",/" >> '"$out" \
    _ "$SF" "${common[@]}" --model "${PT2[$name]}"
  for mode in $MODES; do
    step "$name python $mode" bash -c 'set -o pipefail; "$@" | grep --line-buffered "\"sampler\"" | sed -u "s/^{/{\"variant\":\"python '"$mode"'\",/" >> '"$out" \
      _ "$PY" bench/python_loop.py --model "${TS[$name]}" --eager "${EAGER[$name]}" --mode "$mode" --device cuda \
      --samplers "$SAMPLERS" --batches "$BATCHES" --nfe 10 --repeat "$REPEAT" --iterations "$ITER"
  done
done
"$PY" bench/summarize_gpu_peers.py "$OUTDIR" > "$OUTDIR/gpu_peers.md"
cat "$OUTDIR/gpu_peers.md"
