#!/usr/bin/env bash
# The test suite again under AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/.
# LibTorch is not instrumented; the options that make that work are compiled into the binaries
# (tests/sanitizer/options.cpp) and explained in docs/reliability.md. Extra arguments go to ctest
# (e.g. -R 'Io|Npy' for a subset).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build-asan bash scripts/build.sh -DSCOREFLOW_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
ctest --test-dir build-asan --output-on-failure --no-tests=error -j "$(nproc)" "$@"
