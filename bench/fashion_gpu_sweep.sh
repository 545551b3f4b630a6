#!/usr/bin/env bash
# The Fashion-MNIST GPU sweep of issue #6 (a benchmark, not a test): Γ (+ its throughput against
# pure forwards), AMED predictors trained on the demo model, then FD of every registered sampler vs
# NFE, all in one run whose outputs land in --out (CSV + markdown for docs/results.md).
#
#   bash scripts/prepare_gpujob.sh                       # here: .gpujob/ with padded Fashion-MNIST
#   bash bench/fashion_gpu_sweep.sh --bin build-cuda/scoreflow --device cuda --out "$OUT"
#   bash bench/fashion_gpu_sweep.sh --estimate           # predicted seconds per stage, runs nothing
#
# Options (defaults in brackets):
#   --bin PATH              scoreflow binary [build/scoreflow]
#   --device DEV            cpu | cuda [cuda]
#   --data-dir DIR          fashion_train.npy / fashion_test.npy from prepare_gpujob.sh [.gpujob]
#   --model, --features, --ref   [models/fashion_ddpm.pt, models/fashion_features.pt, models/fashion_train_stats.npz]
#   --out DIR               results [$OUT, else sweep_out]
#   --num N                 samples per FD cell (seeds 0..N-1) [10000]
#   --batch B               batch for sampling and Γ [2000]
#   --nfe LIST              NFE budgets for the non-AMED samplers [3,5,7,9,15]
#   --amed-nfe LIST         odd NFE budgets to train AMED for (AFS on) [3,5,7,9]
#   --amed-students LIST    amed (AMED-Solver, Heun teacher), ipndm / dpmpp_2m (AMED-Plugin, teacher = the
#                           base solver) and/or euler (AMED-Plugin on Euler, Heun teacher) [amed,ipndm]
#   --amed-solver-grid G    grid of AMED-Solver, its training and its FD cells [vp_time_uniform: the authors'
#                           time-uniform grid; train-amed's default for the Solver]
#   --amed-plugin-grid G    grid of the AMED-Plugin cells [karras: the authors' polynomial ρ = 7 grid]
#   --amed-baselines LIST   plain samplers compared on the Solver's grid at --amed-nfe, so that AMED-Solver
#                           has same-grid neighbours [dpm_solver_2,ipndm,ipndm_v,dpmpp_2m,unipc]
#   --amed-trajectories N, --amed-batch B   [5000, 500] (the paper's budget is 10000, batch 128)
#   --amed-seed S           train-amed --seed (predictor initialisation and training noise) [its default]
#   --gamma FILE            reuse a Γ file instead of estimating one
#   --gamma-images N, --gamma-timesteps K   Γ estimate on the first N training images [1000, 100]
#   --ablation-nfe LIST     NFE of the Analytic-DDIM switch ablation [10,25]
#   --stages LIST           any of gamma,discrete,amed,ode,ablation, run in that order [gamma,discrete,amed,ode]
#   --ode-samplers, --discrete-samplers LIST   override the sampler lists below
#   --tar FILE              also pack --out into FILE (tar.gz) after every stage: a GPU machine that
#                           returns only a few files from a call then still returns every result
#   --fwd-rate R            image-forwards/s assumed by --estimate [17000: H100 fp32, batch 1000,
#                           from docs/results.md's runs]
#
# Sizing (from --estimate at 17000 image-forwards/s): the defaults take about 8 min; NFE 50 for every
# sampler at 10k samples adds about 7 min and the ablation 2.5 min, so run those as a second call, e.g.
#   bash bench/fashion_gpu_sweep.sh ... --stages discrete,ablation --nfe 50 --gamma FIRST_OUT/gamma.json
# Every stage rewrites fd_table.md / fd_all.csv when it finishes, so a run cut short keeps its results;
# a failing command is logged ("FAILED: ..." in sweep.log) and the run goes on with the next one.
set -euo pipefail
BIN=build/scoreflow DEVICE=cuda DATA_DIR=.gpujob MODEL=models/fashion_ddpm.pt
FEATURES=models/fashion_features.pt REF=models/fashion_train_stats.npz OUTDIR=${OUT:-sweep_out}
NUM=10000 BATCH=2000 NFE=3,5,7,9,15 AMED_NFE=3,5,7,9 AMED_STUDENTS=amed,ipndm AMED_TRAJ=5000 AMED_BATCH=500
AMED_SEED="" AMED_SOLVER_GRID=vp_time_uniform AMED_PLUGIN_GRID=karras AMED_BASELINES=dpm_solver_2,ipndm,ipndm_v,dpmpp_2m,unipc
TAR="" GAMMA="" GAMMA_IMAGES=1000 GAMMA_STEPS=100 ABL_NFE=10,25 STAGES=gamma,discrete,amed,ode
FWD_RATE=17000 ESTIMATE=0
ODE_SAMPLERS=euler,heun,euler_maruyama,dpm_solver_2,dpmpp_2m,dpmpp_3m,dpmpp_2m_sde,unipc,ipndm,ipndm_v
DISCRETE_SAMPLERS=ddim,ddpm,analytic_ddim,analytic_ddpm,sn_dpm  # on the discrete even grid (linspace)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --estimate) ESTIMATE=1; shift; continue ;;
    --bin) BIN=$2 ;; --device) DEVICE=$2 ;; --data-dir) DATA_DIR=$2 ;; --model) MODEL=$2 ;;
    --features) FEATURES=$2 ;; --ref) REF=$2 ;; --out) OUTDIR=$2 ;; --num) NUM=$2 ;; --batch) BATCH=$2 ;;
    --nfe) NFE=$2 ;; --amed-nfe) AMED_NFE=$2 ;; --amed-students) AMED_STUDENTS=$2 ;;
    --amed-solver-grid) AMED_SOLVER_GRID=$2 ;; --amed-plugin-grid) AMED_PLUGIN_GRID=$2 ;;
    --amed-baselines) AMED_BASELINES=$2 ;;
    --amed-seed) AMED_SEED=$2 ;; --amed-trajectories) AMED_TRAJ=$2 ;; --amed-batch) AMED_BATCH=$2 ;; --gamma) GAMMA=$2 ;;
    --gamma-images) GAMMA_IMAGES=$2 ;; --gamma-timesteps) GAMMA_STEPS=$2 ;; --ablation-nfe) ABL_NFE=$2 ;;
    --stages) STAGES=$2 ;; --fwd-rate) FWD_RATE=$2 ;; --tar) TAR=$2 ;;
    --ode-samplers) ODE_SAMPLERS=$2 ;; --discrete-samplers) DISCRETE_SAMPLERS=$2 ;;
    *) echo "error: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
PY=$(command -v python3 || echo /usr/bin/python3)
# Analytic-DDIM switches (docs/results.md): σ₂-clip y (2 = default, 0 = off), x̂0 clamp, variance clip,
# and the noise itself (noise=false keeps DDIM's mean with the clamp; adding clip_x0=false is DDIM).
ABLATION=("default:" "y1:sigma2_clip=1" "y0.1:sigma2_clip=0.1" "y0:sigma2_clip=0" "noclamp:clip_x0=false"
          "novarclip:clip_variance=false" "nonoise:noise=false" "nonoise_noclamp:noise=false,clip_x0=false")
has_stage() { [[ ",$STAGES," == *",$1,"* ]]; }

# --- Run-time estimate: image-forwards per stage / FWD_RATE (+ 4 s per command for loading). ---
if [[ $ESTIMATE == 1 ]]; then
  "$PY" - "$NUM" "$NFE" "$AMED_NFE" "$AMED_STUDENTS" "$AMED_TRAJ" "$GAMMA_IMAGES" "$GAMMA_STEPS" "$ABL_NFE" \
    "$FWD_RATE" "$ODE_SAMPLERS" "$DISCRETE_SAMPLERS" "${#ABLATION[@]}" "$STAGES" "$GAMMA" <<'PYEOF'
import sys
num, nfe, amed_nfe, students, traj, g_img, g_steps, abl_nfe, rate, ode, disc, n_abl, stages, gamma = sys.argv[1:]
num, traj, g_img, g_steps, rate, n_abl = int(num), int(traj), int(g_img), int(g_steps), float(rate), int(n_abl)
nfe = [int(v) for v in nfe.split(",")]; amed_nfe = [int(v) for v in amed_nfe.split(",") if v]
abl = [int(v) for v in abl_nfe.split(",")]; students = [s for s in students.split(",") if s]
stages = stages.split(","); load = 4.0
rows = []
if "gamma" in stages and not gamma:
    rows.append(("gamma (forward-only + estimate)", 2 * g_img * g_steps / rate + 2 * load))
if "amed" in stages:
    # per trajectory: teacher (M+1) NFE per interval, student 1 mid-call forward+backward (~3 forwards)
    # and its features call per interval; intervals = (NFE+1)/2.
    t = sum(traj * ((n + 1) // 2) * ((2 if s == "amed" else 3) + 4) for n in amed_nfe for s in students)
    rows.append(("amed training", t / rate + load * len(amed_nfe) * len(students)))
    rows.append(("amed FD cells", sum(num * n for n in amed_nfe) * len(students) / rate + load * len(amed_nfe) * len(students)))
if "ode" in stages:
    rows.append(("ode samplers FD", len(ode.split(",")) * num * sum(nfe) / rate + load))
if "discrete" in stages:
    rows.append(("discrete samplers FD", len(disc.split(",")) * num * sum(nfe) / rate + load))
if "ablation" in stages:
    rows.append(("analytic_ddim ablation", n_abl * num * sum(abl) / rate + load * n_abl))
for name, s in rows:
    print("%-32s %7.0f s" % (name, s))
print("%-32s %7.0f s  (%.1f min at %.0f image-forwards/s)" % ("total", sum(s for _, s in rows), sum(s for _, s in rows) / 60, rate))
PYEOF
  exit 0
fi

for f in "$BIN" "$MODEL" "$FEATURES" "$REF"; do
  [[ -e "$f" ]] || { echo "error: $f not found (see the header of $0 for the options)" >&2; exit 2; }
done
mkdir -p "$OUTDIR"
LOG="$OUTDIR/sweep.log"
: >"$LOG"
T0=$SECONDS
stamp() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$LOG" >&2; }
FD=(--model "$MODEL" --device "$DEVICE" --num "$NUM" --batch "$BATCH" --metric fd --features "$FEATURES" --ref "$REF")

# --- One CSV and one markdown table for everything ---
collect() {
  "$PY" - "$OUTDIR" >/dev/null <<'PYEOF'
import glob, json, os, sys
out = sys.argv[1]
rows = []  # (group, label, nfe_budget, steps, nfe_used, fd, seconds, error)
order = {"ode": 0, "amed": 1, "amedbase": 1, "discrete": 2, "ablation": 3}
paths = glob.glob(os.path.join(out, "cmp_*.json"))
for path in sorted(paths, key=lambda p: (order.get(os.path.basename(p)[4:].split("_")[0].rstrip("12.json"), 9), p)):
    tag = os.path.basename(path)[4:-5]
    doc = json.load(open(path))
    group = tag.split("_")[0].rstrip("12")
    for c in doc["cells"]:
        label = c["sampler"]
        if group == "amed":
            student = tag.split("_")[1]
            label = "amed" if student == "amed" else "amed_plugin(" + student + ")"
        elif group == "ablation":
            label = "analytic_ddim[" + tag[len("ablation_"):] + "]"
        grid = doc.get("schedule") or ("karras" if group in ("ode", "amed") else "linspace")
        rows.append((group, label, grid, c["nfe_budget"], c.get("steps", ""), c.get("nfe_used", ""),
                     c.get("metric", ""), c.get("seconds", ""), c.get("error", "")))
with open(os.path.join(out, "fd_all.csv"), "w") as f:
    f.write("group,sampler,grid,nfe_budget,steps,nfe_used,fd,seconds,error\n")
    for r in rows:
        f.write(",".join('"%s"' % str(v).replace('"', "'") if isinstance(v, str) and "," in v else str(v) for v in r) + "\n")
nfes = sorted({r[3] for r in rows})
labels = []
for r in rows:
    if (r[1], r[2]) not in labels:
        labels.append((r[1], r[2]))
cell = {(r[1], r[2], r[3]): r for r in rows}
lines = ["| FD | grid | " + " | ".join("NFE %d" % n for n in nfes) + " |", "|---|---|" + "---|" * len(nfes)]
for label, grid in labels:
    vals = []
    for n in nfes:
        r = cell.get((label, grid, n))
        vals.append("" if r is None else ("—" if r[8] else "%.3g" % r[6]))
    lines.append("| %s | %s | %s |" % (label, grid, " | ".join(vals)))
md = ["# FD vs NFE on models/fashion_ddpm.pt", ""] + lines + [""]
g = os.path.join(out, "gamma_estimate.json"); fw = os.path.join(out, "gamma_forward.json")
if os.path.exists(g) and os.path.exists(fw):
    e, f_ = json.load(open(g)), json.load(open(fw))
    md += ["## Gamma estimation throughput", "",
           "| device | images × timesteps | batch | estimate-gamma images/s | forward-only images/s | ratio |",
           "|---|---|---|---|---|---|",
           "| %s | %d × %d | %d | %.4g | %.4g | %.2f |" % (e["device"], e["num_images"], e["timesteps"], e["batch"],
                                                     e["images_per_second"], f_["images_per_second"],
                                                     e["images_per_second"] / f_["images_per_second"]), ""]
open(os.path.join(out, "fd_table.md"), "w").write("\n".join(md))
print("\n".join(md))
PYEOF
}

pack() {  # --tar: the whole output folder as one archive, replaced atomically
  [[ -z "$TAR" ]] && return 0
  tar czf "$TAR.tmp" -C "$OUTDIR" . && mv "$TAR.tmp" "$TAR"
}

# --- Γ (and the estimation pipeline's throughput against pure forwards at the same settings) ---
if [[ -z "$GAMMA" ]]; then
  GAMMA="$OUTDIR/gamma.json"
  if has_stage gamma || has_stage discrete || has_stage ablation; then
    TRAIN="$DATA_DIR/fashion_train.npy"
    [[ -e "$TRAIN" ]] || { echo "error: $TRAIN not found; run scripts/prepare_gpujob.sh (or give --gamma FILE)" >&2; exit 2; }
    G=(--model "$MODEL" --device "$DEVICE" --data "$TRAIN" --num-images "$GAMMA_IMAGES" --timesteps "$GAMMA_STEPS" --batch "$BATCH")
    stamp "gamma: forward-only timing"
    "$BIN" estimate-gamma "${G[@]}" --forward-only --json >"$OUTDIR/gamma_forward.json" 2>>"$LOG" ||
      { stamp "FAILED: estimate-gamma --forward-only"; rm -f "$OUTDIR/gamma_forward.json"; }
    stamp "gamma: estimate ($GAMMA_IMAGES images x $GAMMA_STEPS timesteps)"
    "$BIN" estimate-gamma "${G[@]}" --out "$GAMMA" --overwrite --json >"$OUTDIR/gamma_estimate.json" 2>>"$LOG"
  fi
fi

# --- the discrete-chain samplers (DDIM/DDPM and their analytic-variance versions) on the even grid ---
if has_stage discrete; then
  stamp "compare discrete samplers"
  "$BIN" compare "${FD[@]}" --schedule linspace --samplers "$DISCRETE_SAMPLERS" --nfe "$NFE" --log-x \
    --sampler-args "analytic_ddim:gamma=$GAMMA" --sampler-args "analytic_ddpm:gamma=$GAMMA" \
    --out-dir "$OUTDIR/cmp_discrete" --json >"$OUTDIR/cmp_discrete.json" 2>>"$LOG" ||
    { stamp "FAILED: compare discrete samplers (see $LOG)"; rm -f "$OUTDIR/cmp_discrete.json"; }
  collect; pack
fi
# --- AMED: one predictor per student and NFE (AFS on, feature mode) and its FD cell, on the grid the
# authors pair it with (Solver: time-uniform; Plugin: polynomial ρ = 7), then plain samplers on the
# Solver's grid so that every AMED cell has same-grid neighbours. ---
if has_stage amed; then
  for nfe in ${AMED_NFE//,/ }; do
    steps=$(((nfe + 1) / 2))  # NFE = 2 steps - 1 with AFS (--final none, the AMED default)
    for student in ${AMED_STUDENTS//,/ }; do
      case $student in
        amed) teacher=heun sampler=amed grid=$AMED_SOLVER_GRID ;;
        euler) teacher=heun sampler=amed_plugin grid=$AMED_PLUGIN_GRID ;;
        *) teacher=$student sampler=amed_plugin grid=$AMED_PLUGIN_GRID ;;
      esac
      pred="$OUTDIR/amed_${student}_nfe$nfe.pt"
      stamp "train-amed $student nfe $nfe ($grid)"
      "$BIN" train-amed --model "$MODEL" --device "$DEVICE" --student "$student" --teacher "$teacher" --steps "$steps" \
        --schedule "$grid" --afs --num-trajectories "$AMED_TRAJ" --batch "$AMED_BATCH" ${AMED_SEED:+--seed "$AMED_SEED"} --out "$pred" \
        --log "$OUTDIR/amed_${student}_nfe$nfe.csv" --json >"$OUTDIR/amed_${student}_nfe$nfe.json" 2>>"$LOG" ||
        { stamp "FAILED: train-amed $student nfe $nfe (see $LOG)"; continue; }
      stamp "compare $sampler($student) nfe $nfe"
      "$BIN" compare "${FD[@]}" --schedule "$grid" --samplers "$sampler" --sampler-args "$sampler:predictor=$pred" \
        --nfe "$nfe" --out-dir "$OUTDIR/cmp_amed_${student}_nfe$nfe" --json >"$OUTDIR/cmp_amed_${student}_nfe$nfe.json" \
        2>>"$LOG" || { stamp "FAILED: compare $sampler nfe $nfe (see $LOG)"; rm -f "$OUTDIR/cmp_amed_${student}_nfe$nfe.json"; }
      collect; pack
    done
  done
  if [[ -n $AMED_BASELINES && ,$AMED_STUDENTS, == *,amed,* ]]; then
    stamp "compare $AMED_BASELINES on $AMED_SOLVER_GRID"
    "$BIN" compare "${FD[@]}" --schedule "$AMED_SOLVER_GRID" --samplers "$AMED_BASELINES" --nfe "$AMED_NFE" \
      --out-dir "$OUTDIR/cmp_amedbase" --json >"$OUTDIR/cmp_amedbase.json" 2>>"$LOG" ||
      { stamp "FAILED: compare $AMED_BASELINES on $AMED_SOLVER_GRID (see $LOG)"; rm -f "$OUTDIR/cmp_amedbase.json"; }
    collect; pack
  fi
fi

# --- FD vs NFE: the ODE/SDE samplers on the Karras grid ---
if has_stage ode; then
  IFS=, read -r -a ode <<<"$ODE_SAMPLERS"
  half=$(((${#ode[@]} + 1) / 2))
  for part in 1 2; do  # two calls, so that a run cut short keeps the first half
    list=$(IFS=,; echo "${ode[*]:$(((part - 1) * half)):$half}")
    [[ -n "$list" ]] || continue
    stamp "compare ode samplers ($list)"
    "$BIN" compare "${FD[@]}" --samplers "$list" --nfe "$NFE" --log-x \
      --out-dir "$OUTDIR/cmp_ode$part" --json >"$OUTDIR/cmp_ode$part.json" 2>>"$LOG" ||
      { stamp "FAILED: compare $list (see $LOG)"; rm -f "$OUTDIR/cmp_ode$part.json"; }
    collect; pack
  done
fi
# --- why Analytic-DDIM trails DDIM here: each of the paper's switches turned off in turn ---
if has_stage ablation; then
  for entry in "${ABLATION[@]}"; do
    tag=${entry%%:*} args=${entry#*:}
    stamp "compare analytic_ddim ablation $tag ($args)"
    "$BIN" compare "${FD[@]}" --schedule linspace --samplers analytic_ddim --nfe "$ABL_NFE" \
      --sampler-args "analytic_ddim:gamma=$GAMMA${args:+,$args}" \
      --out-dir "$OUTDIR/cmp_ablation_$tag" --json >"$OUTDIR/cmp_ablation_$tag.json" 2>>"$LOG" ||
      { stamp "FAILED: ablation $tag (see $LOG)"; rm -f "$OUTDIR/cmp_ablation_$tag.json"; }
    collect; pack
  done
fi

collect; pack
stamp "done: $OUTDIR/fd_table.md, $OUTDIR/fd_all.csv"
