#!/usr/bin/env bash
# Γ-estimation throughput vs pure network-forward throughput (a benchmark, not a test; issue #4).
# Runs `scoreflow estimate-gamma` and `scoreflow estimate-gamma --forward-only` with the same model,
# data, batch and timesteps, and appends one row (images/s of each, their ratio) to a markdown table.
# Both rates leave out the first timestep (network warm-up).
#   bash bench/gamma_throughput.sh [--bin build/scoreflow] [--model models/fashion_ddpm.pt]
#        [--data .gpujob/fashion_train.npy] [--device cpu|cuda] [--num-images 1000] [--timesteps 20]
#        [--batch 1000] [--table docs/gamma_throughput.md]
# The data must already have the model's shape (scripts/prepare_gpujob.sh makes padded Fashion-MNIST).
set -euo pipefail
BIN=build/scoreflow MODEL=models/fashion_ddpm.pt DATA=.gpujob/fashion_train.npy DEVICE=cpu
NUM=1000 STEPS=20 BATCH=1000 TABLE=docs/gamma_throughput.md
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN=$2 ;; --model) MODEL=$2 ;; --data) DATA=$2 ;; --device) DEVICE=$2 ;;
    --num-images) NUM=$2 ;; --timesteps) STEPS=$2 ;; --batch) BATCH=$2 ;; --table) TABLE=$2 ;;
    *) echo "error: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
PY=$(command -v python3 || echo /usr/bin/python3)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
COMMON=(--model "$MODEL" --data "$DATA" --device "$DEVICE" --num-images "$NUM" --timesteps "$STEPS" --batch "$BATCH")
"$BIN" estimate-gamma "${COMMON[@]}" --forward-only --json >"$WORK/forward.json"
"$BIN" estimate-gamma "${COMMON[@]}" --out "$WORK/gamma.json" --json >"$WORK/estimate.json"
"$PY" - "$WORK" "$TABLE" "$DEVICE" "$MODEL" "$NUM" "$STEPS" "$BATCH" <<'PYEOF'
import datetime, json, os, sys
work, table, device, model, num, steps, batch = sys.argv[1:]
fwd = json.load(open(os.path.join(work, "forward.json")))["images_per_second"]
est = json.load(open(os.path.join(work, "estimate.json")))["images_per_second"]
row = "| %s | %s | %s | %s × %s | %s | %.1f | %.1f | %.2f |" % (
    datetime.date.today().isoformat(), device, os.path.basename(model), num, steps, batch, est, fwd, est / fwd)
if not os.path.exists(table):
    with open(table, "w") as f:
        f.write("| date | device | model | images × timesteps | batch | estimate-gamma images/s | "
                "forward-only images/s | ratio |\n|---|---|---|---|---|---|---|---|\n")
with open(table, "a") as f:
    f.write(row + "\n")
print(row)
PYEOF
