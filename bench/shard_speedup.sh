#!/usr/bin/env bash
# Two GPUs: one unsharded run vs two shards (two processes, --shard 0/2 and 1/2, one GPU each,
# merged) vs one process with --devices cuda:0,cuda:1, for `sample`, `estimate-gamma` and `eval fid`
# (sampling + features) on the shipped Fashion-MNIST DDPM. Prints wall times (process start included),
# speed-ups and how far the merged results are from the unsharded ones (max |difference| of samples;
# Γ max |difference|; FD). A benchmark, not a test. stderr of every run goes to $WORK/*.log.
# PARTS picks the parts (default "sample gamma fid").
#   DATA=.gpujob/fashion_train.npy bash bench/shard_speedup.sh [build/scoreflow] [num_seeds] > shard.md
set -euo pipefail
BIN=${1:-./build/scoreflow}
N=${2:-4096}
PY=${PY:-python3}
MODEL=models/fashion_ddpm.pt
DATA=${DATA:-/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz}  # Γ part skipped when absent
[ -f "$DATA" ] || DATA=""
FEATURES=models/fashion_features.pt REF=models/fashion_train_stats.npz
WORK=$(mktemp -d)
trap 'cat "$WORK/err.log" >&2 2>/dev/null; rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
secs() { "$PY" -c "print(f'{$2 - $1:.2f}')"; }
PARTS=${PARTS:-sample gamma fid}
part() { [[ " $PARTS " == *" $1 "* ]]; }
SAMPLE=(sample --model "$MODEL" --sampler dpmpp_2m --nfe 20 --seeds "0-$((N - 1))" --batch 512)

if part sample; then
t0=$(now); "$BIN" "${SAMPLE[@]}" --device cuda:0 --npz "$WORK/one.npz" 2>>"$WORK/err.log"; t1=$(now)
"$BIN" "${SAMPLE[@]}" --device cuda:0 --shard 0/2 --npz "$WORK/two.npz" 2>>"$WORK/err.log" &
"$BIN" "${SAMPLE[@]}" --device cuda:1 --shard 1/2 --npz "$WORK/two.npz" 2>>"$WORK/err.log" &
wait; t2=$(now)
"$BIN" merge "$WORK/two.npz" "$WORK"/two.shard-*-of-2.npz >/dev/null
t3=$(now); "$BIN" "${SAMPLE[@]}" --devices cuda:0,cuda:1 --npz "$WORK/dev.npz" 2>>"$WORK/err.log"; t4=$(now)

echo "## sample: $N seeds, dpmpp_2m NFE 20, batch 512 ($MODEL)"
echo
echo "| run | seconds | speed-up | max abs diff vs one GPU |"
echo "|---|---|---|---|"
diff() { "$PY" -c "import numpy as np;a=np.load('$1')['samples'];b=np.load('$2')['samples'];print(f'{abs(a-b).max():.3g}', '(bit-identical)' if (a==b).all() else '')"; }
one=$(secs "$t0" "$t1"); two=$(secs "$t1" "$t2"); dev=$(secs "$t3" "$t4")
echo "| 1 GPU | $one | 1 | 0 |"
echo "| 2 processes (--shard), merged | $two | $("$PY" -c "print(f'{$one/$two:.2f}')") | $(diff "$WORK/one.npz" "$WORK/two.npz") |"
echo "| 1 process, --devices cuda:0,cuda:1 | $dev | $("$PY" -c "print(f'{$one/$dev:.2f}')") | $(diff "$WORK/one.npz" "$WORK/dev.npz") |"
fi

if [ -n "$DATA" ] && part gamma; then
  GAMMA=(estimate-gamma --model "$MODEL" --data "$DATA" --num-images 8192 --batch 512 --timesteps 100)
  t0=$(now); "$BIN" "${GAMMA[@]}" --device cuda:0 --out "$WORK/g1.json" 2>>"$WORK/err.log"; t1=$(now)
  "$BIN" "${GAMMA[@]}" --device cuda:0 --shard 0/2 --out "$WORK/g2.json" 2>>"$WORK/err.log" &
  "$BIN" "${GAMMA[@]}" --device cuda:1 --shard 1/2 --out "$WORK/g2.json" 2>>"$WORK/err.log" &
  wait; t2=$(now)
  "$BIN" merge "$WORK/g2.json" "$WORK"/g2.shard-*-of-2.npz >/dev/null
  t3=$(now); "$BIN" "${GAMMA[@]}" --devices cuda:0,cuda:1 --out "$WORK/gd.json" 2>>"$WORK/err.log"; t4=$(now)
  gdiff() { "$PY" -c "import json;a=json.load(open('$1'))['timesteps'];b=json.load(open('$2'))['timesteps'];print(f\"{max(abs(x['gamma_raw']-y['gamma_raw']) for x,y in zip(a,b)):.3g}\")"; }
  one=$(secs "$t0" "$t1"); two=$(secs "$t1" "$t2"); dev=$(secs "$t3" "$t4")
  echo
  echo "## estimate-gamma: 8192 images, 100 timesteps, batch 512"
  echo
  echo "| run | seconds | speed-up | max abs Γ diff vs one GPU |"
  echo "|---|---|---|---|"
  echo "| 1 GPU | $one | 1 | 0 |"
  echo "| 2 processes (--shard), merged | $two | $("$PY" -c "print(f'{$one/$two:.2f}')") | $(gdiff "$WORK/g1.json" "$WORK/g2.json") |"
  echo "| 1 process, --devices cuda:0,cuda:1 | $dev | $("$PY" -c "print(f'{$one/$dev:.2f}')") | $(gdiff "$WORK/g1.json" "$WORK/gd.json") |"
fi

part fid || exit 0
FID=(eval fid --model "$MODEL" --sampler dpmpp_2m --nfe 20 --seeds "0-$((N - 1))" --batch 512
     --features "$FEATURES" --ref "$REF")
fd() { sed -n 's/.*"fd": *\([0-9.eE+-]*\).*/\1/p' "$1" | head -1; }
t0=$(now); "${BIN}" "${FID[@]}" --device cuda:0 --json > "$WORK/f1.json" 2>>"$WORK/err.log"; t1=$(now)
"$BIN" "${FID[@]}" --device cuda:0 --shard 0/2 --save-stats "$WORK/f2.npz" 2>>"$WORK/err.log" &
"$BIN" "${FID[@]}" --device cuda:1 --shard 1/2 --save-stats "$WORK/f2.npz" 2>>"$WORK/err.log" &
wait; t2=$(now)
merged=$("$BIN" merge "$WORK/f2.npz" "$WORK"/f2.shard-*-of-2.npz --json 2>>"$WORK/err.log" | sed -n 's/.*"fd": *\([0-9.eE+-]*\).*/\1/p' | head -1)
t3=$(now); "$BIN" "${FID[@]}" --devices cuda:0,cuda:1 --json > "$WORK/fd.json" 2>>"$WORK/err.log"; t4=$(now)
one=$(secs "$t0" "$t1"); two=$(secs "$t1" "$t2"); dev=$(secs "$t3" "$t4")
echo
echo "## eval fid --model: $N samples (dpmpp_2m NFE 20) and their features, batch 512"
echo
echo "| run | seconds | speed-up | FD |"
echo "|---|---|---|---|"
echo "| 1 GPU | $one | 1 | $(fd "$WORK/f1.json") |"
echo "| 2 processes (--shard), merged | $two | $("$PY" -c "print(f'{$one/$two:.2f}')") | $merged |"
echo "| 1 process, --devices cuda:0,cuda:1 | $dev | $("$PY" -c "print(f'{$one/$dev:.2f}')") | $(fd "$WORK/fd.json") |"
