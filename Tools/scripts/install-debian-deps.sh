#!/usr/bin/env bash
# Installs the Debian 12 packages PSIC builds and tests with. Needs root (or sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(libvulkan-dev glslang-tools libpng-dev libopenblas-dev libdnnl-dev mesa-vulkan-drivers vulkan-validationlayers pkg-config time)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "note: add /opt/swift/usr/bin to PATH" >&2
  else
    echo "error: Swift 6.1 or newer is required (https://www.swift.org/install/linux/)" >&2
    exit 1
  fi
fi
