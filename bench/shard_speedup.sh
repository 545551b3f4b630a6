#!/usr/bin/env bash
# Two GPUs: one unsharded run vs two shards (two processes, --shard 0/2 and 1/2, one GPU each,
# merged) vs one process with --devices cuda:0,cuda:1, for `sample` and `estimate-gamma` on the
# shipped Fashion-MNIST DDPM. Prints wall times, speed-ups and how far the merged results are from
# the unsharded ones (max |difference| of samples; Γ max |difference|). A benchmark, not a test.
#   bash bench/shard_speedup.sh [build/scoreflow] [num_seeds] > shard.md
set -euo pipefail
BIN=${1:-./build/scoreflow}
N=${2:-4096}
PY=${PY:-python3}
MODEL=models/fashion_ddpm.pt
DATA=${DATA:-/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz}  # Γ part skipped when absent
[ -f "$DATA" ] || DATA=""
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
secs() { "$PY" -c "print(f'{$2 - $1:.2f}')"; }
SAMPLE=(sample --model "$MODEL" --sampler dpmpp_2m --nfe 20 --seeds "0-$((N - 1))" --batch 256)

t0=$(now); "$BIN" "${SAMPLE[@]}" --device cuda:0 --npz "$WORK/one.npz" 2>/dev/null; t1=$(now)
"$BIN" "${SAMPLE[@]}" --device cuda:0 --shard 0/2 --npz "$WORK/two.npz" 2>/dev/null &
"$BIN" "${SAMPLE[@]}" --device cuda:1 --shard 1/2 --npz "$WORK/two.npz" 2>/dev/null &
wait; t2=$(now)
"$BIN" merge "$WORK/two.npz" "$WORK"/two.shard-*-of-2.npz >/dev/null
t3=$(now); "$BIN" "${SAMPLE[@]}" --devices cuda:0,cuda:1 --npz "$WORK/dev.npz" 2>/dev/null; t4=$(now)

echo "## sample: $N seeds, dpmpp_2m NFE 20, batch 256 ($MODEL)"
echo
echo "| run | seconds | speed-up | max abs diff vs one GPU |"
echo "|---|---|---|---|"
diff() { "$PY" -c "import numpy as np;a=np.load('$1')['samples'];b=np.load('$2')['samples'];print(f'{abs(a-b).max():.3g}', '(bit-identical)' if (a==b).all() else '')"; }
one=$(secs "$t0" "$t1"); two=$(secs "$t1" "$t2"); dev=$(secs "$t3" "$t4")
echo "| 1 GPU | $one | 1 | 0 |"
echo "| 2 processes (--shard), merged | $two | $("$PY" -c "print(f'{$one/$two:.2f}')") | $(diff "$WORK/one.npz" "$WORK/two.npz") |"
echo "| 1 process, --devices cuda:0,cuda:1 | $dev | $("$PY" -c "print(f'{$one/$dev:.2f}')") | $(diff "$WORK/one.npz" "$WORK/dev.npz") |"

if [ -n "$DATA" ]; then
  GAMMA=(estimate-gamma --model "$MODEL" --data "$DATA" --num-images 8192 --batch 512 --timesteps 100)
  t0=$(now); "$BIN" "${GAMMA[@]}" --device cuda:0 --out "$WORK/g1.json" 2>/dev/null; t1=$(now)
  "$BIN" "${GAMMA[@]}" --device cuda:0 --shard 0/2 --out "$WORK/g2.json" 2>/dev/null &
  "$BIN" "${GAMMA[@]}" --device cuda:1 --shard 1/2 --out "$WORK/g2.json" 2>/dev/null &
  wait; t2=$(now)
  "$BIN" merge "$WORK/g2.json" "$WORK"/g2.shard-*-of-2.npz >/dev/null
  t3=$(now); "$BIN" "${GAMMA[@]}" --devices cuda:0,cuda:1 --out "$WORK/gd.json" 2>/dev/null; t4=$(now)
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
