#!/usr/bin/env bash
# Error-vs-NFE sweep of every registered sampler (a benchmark, not a test): NFE 3, 5, 7, 9, 15 on
# builtin:gmm (3x32x32; it has image shapes only), builtin:ring8 and builtin:gaussian (2-D), each run
# from the same per-seed noise as a converged reference (Heun, 500 steps), plus the W2 distance to the
# target where it is Gaussian. Writes a markdown table to stdout.
#   bash bench/sampler_sweep.sh [build/scoreflow] > table.md
set -euo pipefail
BIN=${1:-./build/scoreflow}
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # small tensors: threads only contend
AFS_SAMPLERS=" euler dpm_solver_2 dpmpp_2m unipc ipndm deis "  # also swept with afs=true
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
NFES="3 5 7 9 15"
# model spec | seeds | label
MODELS=(
  "builtin:gmm|0-7|gmm 3x32x32"
  "builtin:ring8|0-499|ring8 2-D"
  "builtin:gaussian:shape=2,mean=0.3,std=0.5|0-1999|gaussian 2-D"
)
SAMPLERS=${SAMPLERS:-$("$BIN" list samplers | awk '{print $1}')}  # SAMPLERS="a b": sweep only those
for entry in "${MODELS[@]}"; do
  IFS='|' read -r model seeds label <<<"$entry"
  dir="$WORK/$(echo "$label" | tr ' ' '_')"
  mkdir -p "$dir"
  "$BIN" sample --model "$model" --sampler heun --steps 500 --seeds "$seeds" --batch 1000 --npz "$dir/ref.npz" 2>/dev/null
  for s in $SAMPLERS; do
    variants=("")
    [[ "$AFS_SAMPLERS" == *" $s "* ]] && variants+=("afs=true")
    for variant in "${variants[@]}"; do
      for nfe in $NFES; do
        tag="$s${variant:+_afs}_$nfe"
        "$BIN" sample --model "$model" --sampler "$s" --sampler-args "$variant" --nfe "$nfe" --seeds "$seeds" \
          --batch 1000 --npz "$dir/$tag.npz" 2>/dev/null || true   # too small an NFE: left blank
      done
    done
  done
done
"$PY" - "$WORK" "$NFES" "$SAMPLERS" <<'PYEOF'
import math, os, sys
import numpy as np
work, nfes, samplers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print("| model | sampler | " + " | ".join("NFE %s" % n for n in nfes) + " |")
print("|---|---|" + "---|" * len(nfes))
for label in sorted(os.listdir(work)):
    d = os.path.join(work, label)
    ref = np.load(os.path.join(d, "ref.npz"))["samples"].astype(np.float64)
    ref = ref.reshape(len(ref), -1)
    gauss = label.startswith("gaussian")
    for s in samplers:
        for v in ("", "_afs"):
            cells = []
            for n in nfes:
                p = os.path.join(d, "%s%s_%s.npz" % (s, v, n))
                if not os.path.exists(p):
                    cells.append("—")
                    continue
                x = np.load(p)["samples"].astype(np.float64).reshape(len(ref), -1)
                rmse = math.sqrt(np.mean(np.sum((x - ref) ** 2, axis=1)))  # per-sample L2, RMS over seeds
                cell = "%.3g" % rmse
                if gauss:  # Bures W2 to N(0.3, 0.25 I) from the sample mean and covariance
                    m, c = x.mean(0), np.cov(x.T)
                    w, u = np.linalg.eigh(c)
                    root = (u * np.sqrt(np.clip(w, 0, None))) @ u.T
                    t = np.linalg.eigvalsh(root @ (0.25 * np.eye(len(m))) @ root)
                    w2 = np.sum((m - 0.3) ** 2) + np.trace(c) + 0.25 * len(m) - 2 * np.sum(np.sqrt(np.clip(t, 0, None)))
                    cell += " / %.3g" % math.sqrt(max(w2, 0))
                cells.append(cell)
            if v and all(c == "—" for c in cells):
                continue  # no afs sweep for this sampler
            print("| %s | %s%s | %s |" % (label.replace("_", " "), s, " afs" if v else "", " | ".join(cells)))
PYEOF
