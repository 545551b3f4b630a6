#!/usr/bin/env bash
# The test suite again under AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/.
# LibTorch is not instrumented; the options that make that work are compiled into the binaries
# (tests/sanitizer/options.cpp) and explained in docs/reliability.md. -O1 -g1 is what the ASan
# documentation recommends and compiles in a fraction of -O2 -g's time (CI budget). Extra
# arguments go to ctest (e.g. -R 'Io|Npy' for a subset).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build-asan bash scripts/build.sh -DSCOREFLOW_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
ctest --test-dir build-asan --output-on-failure --no-tests=error -j "$(nproc)" "$@"
