#!/usr/bin/env bash
# The main job: install, build, and sample a PNG grid (demo.png) from the demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
MODEL=${MODEL:-builtin:gmm}
./build/scoreflow sample --model "$MODEL" --sampler heun --steps 18 --seeds 0-63 --out demo.png --json
echo "wrote demo.png" >&2
