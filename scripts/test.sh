#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test through
# ctest, then runs each fuzz target briefly (SOJU_FUZZ_SECONDS, default 10)
# from its checked-in seed corpus. SOJU_LONG_TESTS=1 adds the slow checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make build
(cd build && ctest --output-on-failure -j "$(nproc)")
bash fuzz/run.sh "${SOJU_FUZZ_SECONDS:-10}"
if command -v nvcc >/dev/null 2>&1 && [ -f cmake/cuda.cmake ]; then
  echo "== CUDA compile check"
  make build BUILD=build-cuda CMAKE_FLAGS="-DSOJU_CUDA=ON"
fi
echo "== all tests passed"
