#!/usr/bin/env bash
# The exact oracles on the CPU (a benchmark, not a test; issue #21). Builds and runs
# bench/oracle_speed.cpp: calls per second of builtin:gmm (3×32×32 and 2-D), ring8 and
# builtin:empirical (10 000 Fashion-MNIST items) at batch 64 and 1000, GFLOP/s against torch::mm of
# the same float64 shapes measured in the same process, the previous formulation side by side
# (--previous), and the sampling targets. With the CLI built, the same targets through
# `scoreflow sample` (the real samplers) follow.
#   bash bench/oracle_speed.sh [--build build] [--threads N] [--repeat R] [--previous] [--data PATH]
set -euo pipefail
BUILD=build THREADS=$(nproc) ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --repeat | --data) ARGS+=("$1" "$2"); shift ;;
    --previous) ARGS+=("$1") ;;
    *) echo "error: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
cmake --build "$BUILD" --target scoreflow_oracle_bench >/dev/null
"$BUILD/scoreflow_oracle_bench" --threads "$THREADS" "${ARGS[@]}"
if [[ -x "$BUILD/scoreflow" ]]; then
  echo
  for run in "euler --steps 10 --seeds 0-999 --batch 1000" "heun --steps 500 --seeds 0-255 --batch 256"; do
    # shellcheck disable=SC2086
    "$BUILD/scoreflow" --threads "$THREADS" sample --model builtin:gmm --sampler $run --json 2>/dev/null |
      /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print("scoreflow sample builtin:gmm %s, %d samples, %d NFE: %.2f s sampling" % (j["sampler"], j["num_samples"], j["nfe"], j["sampling_seconds"]))'
  done
fi
