#!/usr/bin/env bash
# Feature-extraction throughput of `scoreflow eval fid` against the feature network's pure forward
# rate (a benchmark, not a test; issue #7's ≥ 90% target). Samples N images from the model into an
# .npz, then times eval fid's feature pass over them (file rows → device, input adaptation, network,
# moment sums; eval fid's "feature_images_per_second") and the network alone on random input already
# on the device (bench/feature_forward.py, same batch), and appends one row to a markdown table.
#   bash bench/feature_throughput.sh [--bin build/scoreflow] [--device cpu|cuda] [--num 10000]
#        [--batch 2000] [--table docs/gamma_throughput.md]
set -euo pipefail
BIN=build/scoreflow DEVICE=cpu NUM=10000 BATCH=2000 TABLE=docs/gamma_throughput.md
MODEL=models/fashion_ddpm.pt FEATURES=models/fashion_features.pt REF=models/fashion_train_stats.npz
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN=$2 ;; --device) DEVICE=$2 ;; --num) NUM=$2 ;; --batch) BATCH=$2 ;; --table) TABLE=$2 ;;
    *) echo "error: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
PY=${PYTHON:-$(command -v python3 || echo /usr/bin/python3)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" sample --model "$MODEL" --device "$DEVICE" --seeds "0-$((NUM - 1))" --nfe 3 --batch "$BATCH" \
  --npz "$WORK/samples.npz" 2>/dev/null
"$BIN" eval fid --samples "$WORK/samples.npz" --features "$FEATURES" --ref "$REF" --device "$DEVICE" \
  --batch "$BATCH" --json >"$WORK/fid.json"
"$PY" bench/feature_forward.py --features "$FEATURES" --device "$DEVICE" --batch "$BATCH" --num "$NUM" \
  >"$WORK/forward.json"
"$PY" - "$WORK" "$TABLE" "$DEVICE" "$NUM" "$BATCH" <<'PYEOF'
import datetime, json, os, sys
work, table, device, num, batch = sys.argv[1:]
fid = json.load(open(os.path.join(work, "fid.json")))
fwd = json.load(open(os.path.join(work, "forward.json")))
rate, pure = fid["feature_images_per_second"], fwd["images_per_second"]
header = ("\n## Feature extraction (eval fid) vs the feature network's forward\n\n"
          "| date | device | images | batch | eval fid features images/s | forward-only images/s | ratio |\n"
          "|---|---|---|---|---|---|---|\n")
text = open(table).read() if os.path.exists(table) else ""
row = "| %s | %s | %s | %s | %.4g | %.4g | %.2f |\n" % (
    datetime.date.today().isoformat(), fid.get("feature_device", device), num, batch, rate, pure, rate / pure)
with open(table, "a") as f:
    if "## Feature extraction (eval fid)" not in text:
        f.write(header)
    f.write(row)
print(row, end="")
PYEOF
