#!/usr/bin/env bash
# Issue 15 item 5: re-measure AMED and Analytic-DDIM on the demo model with the reference-matching
# defaults and `--final none` (the AMED, GITS and DPM-Solver-v3 papers' NFE count).
#
#   OUT=/some/dir bash bench/amed_remeasure.sh          # on the device, after bash scripts/prepare_gpujob.sh
#
# Cells (FD in the demo's classifier feature space against models/fashion_train_stats.npz, the 60k
# training images, as docs/results.md), each at NFE 3, 5, 7, 9, --final none, NUM samples (seeds 0..NUM-1):
#   - AMED-Solver (train-amed --student amed --teacher heun, AFS, vp_time_uniform: the authors' grid)
#   - AMED-Plugin on iPNDM (--student ipndm --teacher ipndm, M = 2, AFS, karras ρ = 7) vs iPNDM and
#     iPNDM with AFS on the same grid
#   - Analytic-DDIM (the new defaults: the authors' mean with the network's ε̂, y = 1) vs DDIM on the
#     even trajectory (linspace), and Analytic-DDIM with the old defaults (mean=posterior,
#     sigma2_clip=2), with Γ from estimate-gamma on the training images.
# Writes into $OUT: remeasure.md (the tables), results.json (every cell), log.txt, the compare
# JSONs, train-amed JSONs and loss CSVs, the predictors (a few KB each) and gamma.json.
#
# Settings (environment): BIN (build-cuda/scoreflow; built with scripts/build-cuda.sh if missing),
# DEVICE (cuda), MODEL, FEATURES, REF, DATA (.gpujob/fashion_train.npy: prepare_gpujob.sh's padded
# uint8 [N, 1, 32, 32]), NUM (2000), BATCH (1000), NFES (3,5,7,9), AMED_TRAJ (5000), AMED_BATCH (500),
# AMED_SEED (0), GAMMA_IMAGES (1000), GAMMA_STEPS (100), BUDGET_S (520: no new stage starts after
# that many seconds; skipped cells are listed), THREADS (passed as --threads when set).
# Dry run on the CPU (checks every command line; minutes, not meaningful numbers):
#   BIN=build/scoreflow DEVICE=cpu NUM=16 BATCH=16 AMED_TRAJ=16 AMED_BATCH=16 GAMMA_IMAGES=16 \
#     GAMMA_STEPS=10 DATA=/tmp/x.npy OUT=/tmp/dry bash bench/amed_remeasure.sh
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build-cuda/scoreflow} DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-models/fashion_ddpm.pt} FEATURES=${FEATURES:-models/fashion_features.pt}
REF=${REF:-models/fashion_train_stats.npz} DATA=${DATA:-.gpujob/fashion_train.npy}
NUM=${NUM:-2000} BATCH=${BATCH:-1000} NFES=${NFES:-3,5,7,9}
AMED_TRAJ=${AMED_TRAJ:-5000} AMED_BATCH=${AMED_BATCH:-500} AMED_SEED=${AMED_SEED:-0}
GAMMA_IMAGES=${GAMMA_IMAGES:-1000} GAMMA_STEPS=${GAMMA_STEPS:-100} BUDGET_S=${BUDGET_S:-520}
OUT=${OUT:?set OUT to the output folder}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"
T0=$SECONDS
stamp() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$LOG" >&2; }
SKIPPED=()
in_budget() {  # in_budget WHAT: false (and the stage listed as skipped) once BUDGET_S is spent
  if ((SECONDS - T0 > BUDGET_S)); then
    SKIPPED+=("$1")
    stamp "SKIPPED (budget ${BUDGET_S} s spent): $1"
    return 1
  fi
}
run() {  # run NAME CMD...: stdout to $OUT/NAME.json, stderr to the log; a failure is logged, not fatal
  local name=$1
  shift
  stamp "$name"
  "$@" >"$OUT/$name.json" 2>>"$LOG"
  local rc=$?
  if ((rc != 0)); then
    stamp "FAILED: $name (rc $rc)"
    rm -f "$OUT/$name.json"
    return 1
  fi
}

if [[ ! -x $BIN ]]; then
  stamp "building $BIN"
  bash scripts/build-cuda.sh "$(dirname "$BIN")" -DSCOREFLOW_BUILD_TESTS=OFF >"$OUT/build.log" 2>&1 ||
    { stamp "FAILED: build (see build.log)"; exit 1; }
fi
for f in "$BIN" "$MODEL" "$FEATURES" "$REF" "$DATA"; do
  [[ -e $f ]] || { stamp "error: $f not found"; exit 2; }
done
SF=("$BIN" ${THREADS:+--threads "$THREADS"})  # --threads is a global option: before the command
COMMON=(--model "$MODEL" --device "$DEVICE")
FD=("${COMMON[@]}" --num "$NUM" --batch "$BATCH" --metric fd --features "$FEATURES" --ref "$REF" --final none --json)
W=$OUT/work
mkdir -p "$W"

# --- Γ for the analytic samplers ---
GAMMA=$OUT/gamma.json
run gamma "${SF[@]}" estimate-gamma "${COMMON[@]}" --data "$DATA" --num-images "$GAMMA_IMAGES" \
  --timesteps "$GAMMA_STEPS" --batch "$BATCH" --out "$GAMMA" --overwrite --json

# --- the discrete-chain cells first (cheap): DDIM, Analytic-DDIM new and old defaults ---
if in_budget "ddim / analytic_ddim"; then
  run cmp_ddim "${SF[@]}" compare "${FD[@]}" --schedule linspace --samplers ddim --nfe "$NFES" --out-dir "$W/cmp_ddim"
  if [[ -e $GAMMA ]]; then
    run cmp_analytic_ddim "${SF[@]}" compare "${FD[@]}" --schedule linspace --samplers analytic_ddim --nfe "$NFES" \
      --sampler-args "analytic_ddim:gamma=$GAMMA" --out-dir "$W/cmp_analytic_ddim"
    run cmp_analytic_ddim_old "${SF[@]}" compare "${FD[@]}" --schedule linspace --samplers analytic_ddim --nfe "$NFES" \
      --sampler-args "analytic_ddim:gamma=$GAMMA,mean=posterior,sigma2_clip=2" --out-dir "$W/cmp_analytic_ddim_old"
  fi
fi

# --- iPNDM baselines on the plugin's grid ---
if in_budget "ipndm baselines"; then
  run cmp_ipndm "${SF[@]}" compare "${FD[@]}" --schedule karras --samplers ipndm --nfe "$NFES" --out-dir "$W/cmp_ipndm"
  run cmp_ipndm_afs "${SF[@]}" compare "${FD[@]}" --schedule karras --samplers ipndm --nfe "$NFES" \
    --sampler-args "ipndm:afs=true" --out-dir "$W/cmp_ipndm_afs"
fi

# --- AMED: one predictor per student and NFE (feature mode, AFS), then its cell ---
for nfe in ${NFES//,/ }; do
  steps=$(((nfe + 1) / 2))  # 2·steps − 1 calls with AFS under --final none
  for student in amed ipndm; do
    if [[ $student == amed ]]; then teacher=heun sampler=amed grid=vp_time_uniform; else teacher=ipndm sampler=amed_plugin grid=karras; fi
    in_budget "$sampler($student) nfe $nfe" || continue
    pred=$OUT/amed_${student}_nfe$nfe.pt
    run train_${student}_nfe$nfe "${SF[@]}" train-amed "${COMMON[@]}" --student "$student" --teacher "$teacher" \
      --steps "$steps" --schedule "$grid" --final none --afs --num-trajectories "$AMED_TRAJ" --batch "$AMED_BATCH" \
      --seed "$AMED_SEED" --out "$pred" --overwrite --log "$OUT/amed_${student}_nfe$nfe.csv" --json || continue
    run cmp_amed_${student}_nfe$nfe "${SF[@]}" compare "${FD[@]}" --schedule "$grid" --samplers "$sampler" \
      --sampler-args "$sampler:predictor=$pred" --nfe "$nfe" --out-dir "$W/cmp_amed_${student}_nfe$nfe"
  done
done

# --- one table ---
stamp "summary"
printf '%s\n' "${SKIPPED[@]}" >"$OUT/skipped.txt"
PY=$(command -v python3 || command -v /usr/bin/python3)
"$PY" - "$OUT" "$NUM" "$SECONDS" "$T0" "$DEVICE" <<'PYEOF' 2>>"$LOG"
import glob, json, os, sys
out, num = sys.argv[1], int(sys.argv[2])
rows = {}
labels = {"ddim": ("ddim", "linspace"), "analytic_ddim": ("analytic_ddim (authors' defaults)", "linspace"),
          "analytic_ddim_old": ("analytic_ddim mean=posterior,sigma2_clip=2 (old defaults)", "linspace"),
          "ipndm": ("ipndm", "karras"), "ipndm_afs": ("ipndm afs=true", "karras")}
cells = []
for path in sorted(glob.glob(os.path.join(out, "cmp_*.json"))):
    tag = os.path.basename(path)[4:-5]
    try:
        doc = json.load(open(path))
    except ValueError:
        continue
    if tag.startswith("amed_"):
        student = tag.split("_")[1]
        label = ("amed (AMED-Solver)", "vp_time_uniform") if student == "amed" else ("amed_plugin(ipndm)", "karras")
    else:
        label = labels.get(tag, (tag, doc.get("schedule", "")))
    for c in doc.get("cells", []):
        cell = {"row": label[0], "grid": label[1], "nfe_budget": c.get("nfe_budget"), "steps": c.get("steps"),
                "nfe_used": c.get("nfe_used"), "fd": c.get("metric"), "seconds": c.get("seconds"),
                "error": c.get("error", "")}
        cells.append(cell)
        rows.setdefault(label, {})[c.get("nfe_budget")] = cell
nfes = sorted({c["nfe_budget"] for c in cells if c["nfe_budget"] is not None})
order = ["amed (AMED-Solver)", "amed_plugin(ipndm)", "ipndm", "ipndm afs=true", "ddim", "analytic_ddim (authors' defaults)",
         "analytic_ddim mean=posterior,sigma2_clip=2 (old defaults)"]
md = ["# AMED and Analytic-DDIM re-measured (issue 15 item 5)", "",
      "FD (classifier features, against models/fashion_train_stats.npz), %d samples per cell, --final none, device %s, "
      "%d s in all." % (num, sys.argv[5], int(sys.argv[3]) - int(sys.argv[4])), "",
      "| FD | grid | " + " | ".join("NFE %d" % n for n in nfes) + " |", "|---|---|" + "---|" * len(nfes)]
for label in sorted(rows, key=lambda l: order.index(l[0]) if l[0] in order else 99):
    vals = []
    for n in nfes:
        c = rows[label].get(n)
        vals.append("" if c is None else ("— (%s)" % c["error"] if c["error"] else "%.4g" % c["fd"]))
    md.append("| %s | %s | %s |" % (label[0], label[1], " | ".join(vals)))
md += ["", "NFE used per cell (steps): " + "; ".join("%s %s: %s (%s)" % (c["row"], c["nfe_budget"], c["nfe_used"], c["steps"])
                                                for c in cells)]
skipped = [l for l in open(os.path.join(out, "skipped.txt")).read().splitlines() if l]
if skipped:
    md += ["", "Skipped (time budget): " + ", ".join(skipped)]
train = []
for path in sorted(glob.glob(os.path.join(out, "train_*.json"))):
    try:
        train.append((os.path.basename(path)[6:-5], json.load(open(path))))
    except ValueError:
        pass
if train:
    md += ["", "train-amed: " + "; ".join("%s %s" % (t, {k: v for k, v in d.items() if k in ("seconds", "wall_seconds",
                                                                                           "final_loss", "validation_rms")})
                                       for t, d in train)]
open(os.path.join(out, "remeasure.md"), "w").write("\n".join(md) + "\n")
json.dump({"cells": cells, "skipped": skipped}, open(os.path.join(out, "results.json"), "w"), indent=1)
print("\n".join(md))
PYEOF
rm -rf "$W"  # per-cell grids and PNGs: not needed back
stamp "done"
