# Sourced by the CUDA build checks in tests/ops (they need nvcc, not a GPU):
# moves to the repo root, sets NVCC (or skips the test, exit 77, without one)
# and a scratch directory $tmp removed on exit.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$NVCC" ] || { echo "SKIP: no nvcc"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
