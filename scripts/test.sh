#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test through
# ctest, then runs each fuzz target briefly (SOJU_FUZZ_SECONDS, default 10)
# from its checked-in seed corpus. SOJU_LONG_TESTS=1 adds the slow checks.
# Where nvcc is installed the build includes the CUDA backend (compiled and
# linked; its tests run only where a GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make build
(cd build && ctest --output-on-failure -j "$(nproc)")
bash fuzz/run.sh "${SOJU_FUZZ_SECONDS:-10}"
echo "== all tests passed"
