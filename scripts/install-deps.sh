#!/usr/bin/env bash
# Installs the Debian packages scoreflow builds and tests with (bookworm, as root or via sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES=(build-essential cmake ninja-build ccache libtorch-dev libeigen3-dev libstb-dev libcli11-dev
          nlohmann-json3-dev zlib1g-dev libboost-math-dev libdnnl-dev libgtest-dev python3-torch python3-numpy python3-scipy
          dataset-fashion-mnist)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
