#!/usr/bin/env bash
# Configures and builds scoreflow into ${BUILD_DIR:-build} (Release, Ninja, ccache if present).
# BUILD_TARGETS="scoreflow_cli" builds only those targets (scripts/demo.sh); default: everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# ccache keys relative to the checkout, so that clones in other folders (CI) reuse the cache.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
# What ccache needs to cache sources compiled with a precompiled header (-DSCOREFLOW_PCH=ON; off by default).
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
TARGETS=()
for t in ${BUILD_TARGETS:-}; do TARGETS+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "$(nproc)" "${TARGETS[@]}"
