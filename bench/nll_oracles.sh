#!/usr/bin/env bash
# NLL (bits/dim) vs K on the exact builtin oracles (a benchmark, not a test; issue #4): even vs
# optimal trajectory, analytic vs DDPM-β vs DDPM-β̃ reverse variances, all through the scoreflow CLI
# (estimate-gamma on a training sample, then nll on a held-out sample). Prints a markdown table.
#   bash bench/nll_oracles.sh [--bin build/scoreflow] [--ks 10,25,50,100,200] [--train 200] [--test 100]
#        [--gamma-timesteps 100] [--all-rows]
# Rows: analytic variance on the even and the optimal trajectory, DDPM-β and DDPM-β̃ on the even one
# (--all-rows adds the fixed variances on the optimal trajectory too). Γ is estimated at
# --gamma-timesteps evenly spaced timesteps and interpolated in between.
# Data: the diagonal Gaussian is sampled by numpy; the mixture (no closed-form sampler in the CLI)
# by solving the oracle's own probability-flow ODE with Heun, 100 steps. Both are quantised to the
# 256 levels on [-1, 1] that the discretised decoder assumes.
set -euo pipefail
BIN=build/scoreflow KS=10,25,50,100,200 NTRAIN=200 NTEST=100 GSTEPS=100 ALL_ROWS=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --all-rows) ALL_ROWS=1; shift; continue ;;
    --bin) BIN=$2 ;; --ks) KS=$2 ;; --train) NTRAIN=$2 ;; --test) NTEST=$2 ;; --gamma-timesteps) GSTEPS=$2 ;;
    *) echo "error: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
GAUSS="builtin:gaussian:shape=1x16x16,mean=0.2,std_min=0.05,std_max=0.5,schedule=vp_discrete"
GMM="builtin:gmm:shape=3x16x16,k=8,std=0.05,schedule=vp_discrete"

# Data: [N, C, H, W] float32 on the 8-bit grid.
"$PY" - "$WORK" "$NTRAIN" "$NTEST" <<'PYEOF'
import sys
import numpy as np
work, ntr, nte = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
q = lambda x: (np.round((np.clip(x, -1, 1) + 1) * 127.5) / 127.5 - 1).astype(np.float32)
rng = np.random.default_rng(0)
std = np.linspace(0.05, 0.5, 256).reshape(1, 1, 16, 16)
for name, n in (("train", ntr), ("test", nte)):
    np.save("%s/gauss_%s.npy" % (work, name), q(0.2 + std * rng.standard_normal((n, 1, 16, 16))))
PYEOF
"$BIN" sample --model "$GMM" --sampler heun --steps 100 --seeds "0-$((NTRAIN - 1))" --batch 500 --npz "$WORK/gmm_train.npz" 2>/dev/null
"$BIN" sample --model "$GMM" --sampler heun --steps 100 --seeds "100000-$((100000 + NTEST - 1))" --batch 500 \
  --npz "$WORK/gmm_test.npz" 2>/dev/null
"$PY" - "$WORK" <<'PYEOF'
import sys
import numpy as np
work = sys.argv[1]
for name in ("train", "test"):
    x = np.load("%s/gmm_%s.npz" % (work, name))["samples"]
    np.save("%s/gmm_%s.npy" % (work, name), (np.round((np.clip(x, -1, 1) + 1) * 127.5) / 127.5 - 1).astype(np.float32))
PYEOF

for oracle in gauss gmm; do
  model=$([[ $oracle == gauss ]] && echo "$GAUSS" || echo "$GMM")
  "$BIN" estimate-gamma --model "$model" --data "$WORK/${oracle}_train.npy" --num-images "$NTRAIN" --timesteps "$GSTEPS" \
    --batch 500 --out "$WORK/${oracle}_gamma.json" 2>/dev/null
  for K in ${KS//,/ }; do
    for var in analytic ddpm-beta ddpm-tilde; do
      for traj in even optimal; do
        [[ $var == analytic || $ALL_ROWS == 1 ]] || [[ $traj == even ]] || continue
        "$BIN" nll --model "$model" --data "$WORK/${oracle}_test.npy" --gamma "$WORK/${oracle}_gamma.json" --steps "$K" \
          --trajectory "$traj" --variance "$var" --num-images "$NTEST" --batch 500 --json \
          >"$WORK/nll_${oracle}_${K}_${traj}_${var}.json" 2>/dev/null
      done
    done
  done
done

"$PY" - "$WORK" "$KS" "$GAUSS" "$GMM" "$NTRAIN" "$NTEST" "$GSTEPS" <<'PYEOF'
import json, os, sys
work, ks, gauss, gmm, ntr, nte, gsteps = sys.argv[1:]
ks = ks.split(",")
for oracle, spec in (("gauss", gauss), ("gmm", gmm)):
    print("**%s** (Γ from %s training samples at %s timesteps, NLL on %s test samples; bits/dim ± s.e.)\n"
          % (spec, ntr, gsteps, nte))
    print("| variance, trajectory | " + " | ".join("K = %s" % k for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for var in ("analytic", "ddpm-beta", "ddpm-tilde"):
        for traj in ("even", "optimal"):
            cells = []
            if not os.path.exists("%s/nll_%s_%s_%s_%s.json" % (work, oracle, ks[0], traj, var)):
                continue
            for k in ks:
                r = json.load(open("%s/nll_%s_%s_%s_%s.json" % (work, oracle, k, traj, var)))
                cells.append("%.3f ± %.3f" % (r["bits_per_dim"], r["std_err"]))
            print("| %s, %s | %s |" % (var, traj, " | ".join(cells)))
    print()
PYEOF
