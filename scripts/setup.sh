#!/usr/bin/env bash
# Install the Debian packages soju builds against (only those missing).
# Run as root, or with sudo available; otherwise it prints the apt-get line to run.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libopenblas-dev libopenblas-openmp-dev libomp-dev
      libyaml-dev libcjson-dev libzstd-dev zstd libutf8proc-dev libpcre2-dev
      libmicrohttpd-dev libopenmpi-dev openmpi-bin python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "soju setup: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "soju setup: please run as root: apt-get install -y ${missing[*]}" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
