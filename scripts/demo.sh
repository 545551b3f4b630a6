#!/usr/bin/env bash
# The main job: install, build, and sample a PNG grid (demo.png) from the shipped Fashion-MNIST
# DDPM (models/fashion_ddpm.pt) with DPM-Solver++(2M) in 10 network calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Only the executable: the test suite (about half of a full build) is built by scripts/test.sh.
BUILD_TARGETS=scoreflow_cli bash scripts/build.sh
MODEL=${MODEL:-models/fashion_ddpm.pt}
./build/scoreflow sample --model "$MODEL" --sampler dpmpp_2m --nfe 10 --seeds 0-35 --out demo.png --json
echo "wrote demo.png" >&2
