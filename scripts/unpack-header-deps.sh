#!/usr/bin/env bash
# Unpacks scoreflow's header-only Debian dependencies (and GoogleTest; Boost.Math's headers come in
# libboost1.74-dev, the package libboost-math-dev depends on) into .deps/ without
# installing them, for a machine that has PyTorch's LibTorch but no apt (e.g. a GPU box):
#   bash scripts/unpack-header-deps.sh   (here, with apt)  → carry .deps/ to the other machine
#   cmake -S . -B build-cuda -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)') \
#         -DSCOREFLOW_DEPS_PREFIX=$PWD/.deps/usr
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/debs
(cd .deps/debs && apt-get download libeigen3-dev libstb-dev libstb0 libcli11-dev nlohmann-json3-dev libboost1.74-dev libgtest-dev googletest zlib1g-dev)
for deb in .deps/debs/*.deb; do dpkg -x "$deb" .deps; done
echo "unpacked into $PWD/.deps/usr" >&2
