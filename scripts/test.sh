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
# where the build found CUDA and cuDNN's header, the CUDA backend must also
# compile without the header (a CUDA toolkit alone, the usual machine): once
# more, for PTX only (about 20 s)
if grep -q '^CUDNN_INCLUDE:PATH=/' build/CMakeCache.txt 2>/dev/null; then
    echo "== the CUDA backend without cuDNN"
    cmake -S . -B build-nocudnn -DCMAKE_BUILD_TYPE=Release -DSOJU_CUDA=ON -DSOJU_CUDA_ARCHS=80-virtual \
        -DCUDNN_INCLUDE=CUDNN_INCLUDE-NOTFOUND >/dev/null
    cmake --build build-nocudnn -j "$(nproc)" --target soju_cuda >/dev/null
fi
(cd build && ctest --output-on-failure -j "$(nproc)")
bash fuzz/run.sh "${SOJU_FUZZ_SECONDS:-10}"
echo "== all tests passed"
