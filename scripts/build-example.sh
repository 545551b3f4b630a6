#!/usr/bin/env bash
# The library as a user gets it: installs scoreflow's Development component (static library,
# public headers, CMake package) from an existing build tree into a temporary prefix, builds
# examples/ there with find_package(scoreflow), and runs the example on builtin:gmm.
#   BUILD_DIR=build bash scripts/build-example.sh     (run by .ci/run after scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
[ -f "$BUILD/CMakeCache.txt" ] || { echo "error: no configured build tree in $BUILD (run scripts/build.sh first)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --build "$BUILD" -j"$(nproc)" --target scoreflow   # nothing to do after a full build
cmake --install "$BUILD" --prefix "$work/prefix" --component Development >/dev/null

# The dependencies the package asks for are found where the build tree found them (Debian's
# /usr, or LibTorch inside PyTorch and .deps/ for a CUDA build).
deps=()
for var in Torch_DIR Eigen3_DIR nlohmann_json_DIR; do
  value=$(sed -n "s/^${var}:[A-Z]*=//p" "$BUILD/CMakeCache.txt")
  if [ -n "$value" ] && [ "${value%-NOTFOUND}" = "$value" ]; then deps+=("-D${var}=${value}"); fi
done
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

cmake -S examples -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" \
  "${deps[@]}" "${launcher[@]}" >/dev/null
cmake --build "$work/build" -j"$(nproc)"
"$work/build/sample_two_samplers" builtin:gmm "$work/two_samplers.png"
test -s "$work/two_samplers.png"
echo "example built against the installed package and ran: OK"
