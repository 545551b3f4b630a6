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
rm -rf .deps/debs
# Boost unpacks to ~160 MB, past the device tool's 64 MiB carry limit: keep only the headers that the
# project's Boost includes pull in (about 4 MB).
mapfile -t includes < <(grep -rhoE '#include <boost/[^>]+>' --include='*.cpp' --include='*.h' \
  cli estimators eval include io models samplers | sort -u)
printf '%s\n' "${includes[@]}" > .deps/boost_probe.cpp
keep=$(g++ -std=c++17 -M -I.deps/usr/include .deps/boost_probe.cpp | tr ' \\' '\n\n' | grep '/.deps/usr/include/boost/\|^.deps/usr/include/boost/' | sed 's|.*\.deps/|.deps/|' | sort -u)
find .deps/usr/include/boost -type f | sort > .deps/boost_all.txt
comm -23 .deps/boost_all.txt <(printf '%s\n' "$keep") | xargs -r rm -f
find .deps/usr/include/boost -type d -empty -delete
rm -f .deps/boost_probe.cpp .deps/boost_all.txt
echo "unpacked into $PWD/.deps/usr" >&2
