#!/usr/bin/env bash
# The sampler's own cost per network call on the CPU, without the network's run-to-run noise (issue
# #21): `scoreflow bench` on a null network (bench/make_null_model.py: zeros, with the metadata of the
# demo model and of the EDM-style U-Net) at batch 64, so that "sampler ms per call" is everything that
# is not the network (preconditioning, step arithmetic, history). Divide by the real network's ms per
# call at batch 64 (bench/cpu_performance.sh) for the overhead as a fraction.
#   bash bench/cpu_overhead.sh OUTDIR     knobs: BUILD (build), PYTHON (/usr/bin/python3), THREADS, ROUNDS (3)
set -euo pipefail
OUTDIR=${1:?usage: cpu_overhead.sh OUTDIR}
SF=${BUILD:-build}/scoreflow
PY=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$OUTDIR"
"$PY" bench/make_null_model.py --like models/fashion_ddpm.pt --out "$OUTDIR/null_demo.pt"
"$PY" bench/make_edm_unet.py --out "$OUTDIR/edm_unet.pt" > /dev/null
"$PY" bench/make_null_model.py --like "$OUTDIR/edm_unet.pt" --out "$OUTDIR/null_unet.pt"
for round in $(seq 1 "${ROUNDS:-3}"); do
  for model in "$OUTDIR/null_demo.pt" "$OUTDIR/null_unet.pt"; do
    "$SF" --threads "$THREADS" bench --model "$model" --device cpu --batch 64 --nfe 10 \
      --sampler euler,dpmpp_2m,heun,unipc --repeat 5 --iterations 10 --json >> "$OUTDIR/null.jsonl" 2>> "$OUTDIR/null.err"
  done
done
"$PY" - "$OUTDIR/null.jsonl" <<'PY'
import json, sys
print("| null network | sampler | ms per call outside the network (rounds) |\n|---|---|---|")
rows = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    rows.setdefault((j["model"].split("/")[-1], j["sampler"]), []).append(j["sampler_ms_per_call"] - j["network_ms"])
for (model, sampler), v in rows.items():
    print(f"| {model} | {sampler} | {' / '.join(f'{x:.2f}' for x in v)} |")
PY
