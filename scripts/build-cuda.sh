#!/usr/bin/env bash
# The CUDA build (docs/design.md §10): LibTorch from the installed PyTorch, header-only dependencies from
# .deps/ (scripts/unpack-header-deps.sh) when apt cannot install them. CUDA graphs are compiled in
# when that LibTorch has CUDA.   bash scripts/build-cuda.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build-cuda}
shift || true
PY=${PYTHON:-python3}
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
ARGS=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX")
if [[ -d .deps/usr ]]; then
  D=$PWD/.deps/usr
  ARGS+=(-DSCOREFLOW_DEPS_PREFIX="$D" -DEigen3_DIR="$D/share/eigen3/cmake")
  # zlib: the library is on every Debian/Ubuntu system, the -dev headers may not be.
  [[ -f $D/include/zlib.h && ! -f /usr/include/zlib.h ]] && ARGS+=(-DZLIB_INCLUDE_DIR="$D/include")
  for lib in /lib/x86_64-linux-gnu/libz.so /lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1; do
    if [[ -e $lib && ! -e /usr/lib/x86_64-linux-gnu/libz.so ]]; then ARGS+=(-DZLIB_LIBRARY="$lib"); break; fi
  done
fi
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S . -B "$BUILD_DIR" "${GEN[@]}" "${ARGS[@]}" "$@"
cmake --build "$BUILD_DIR" -j "$(nproc)"
