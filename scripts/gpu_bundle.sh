#!/usr/bin/env bash
# Build soju's GPU check programs on a machine WITHOUT a GPU (nvcc present),
# for a GPU machine WITHOUT soju's Debian libraries: the binaries go to
# .gpu/bin and the non-system shared libraries they load to .gpu/lib, with the
# check scripts beside them, all packed into .gpu/bundle.tgz. On the GPU machine:
#   tar xzf .gpu/bundle.tgz -C /tmp
#   SOJU_GPU_BIN=/tmp/.gpu/bin SOJU_GPU_LIB=/tmp/.gpu/lib:/usr/local/cuda/lib64:$NCCL_LIB_DIR \
#     bash scripts/gpu_check.sh
# The CPU code is built for x86-64-v3 (AVX2/FMA), not this machine's own CPU,
# and the CUDA code for sm_90a (H100/H200). Used on a lent H100 on 2026-11-23.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build-gpubundle
# a step's output goes to a log, shown (its tail) only when the step fails
quiet() {
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  [ $rc = 0 ] || { echo "gpu_bundle.sh: failed (rc $rc): $*"; tail -30 "$log"; rm -f "$log"; exit 1; }
  rm -f "$log"
}
quiet cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DSOJU_NATIVE=OFF -DCMAKE_C_FLAGS="-march=x86-64-v3" \
  -DSOJU_CUDA=ON -DSOJU_CUDA_ARCHS="90a"
progs=(soju gpu_train attn_bench ops_test_cuda_ops model_test_cuda_step ops_test_optimizer_ops model_test_recompute
  ops_test_layer_ops)
quiet cmake --build $B -j "$(nproc)" --target "${progs[@]}"
rm -rf .gpu && mkdir -p .gpu/bin .gpu/lib
for p in "${progs[@]}"; do cp $B/$p .gpu/bin/; done
# the wgmma layout probe (tools/wgmma_probe.cu; gpu_check.sh runs it first)
quiet /usr/local/cuda/bin/nvcc -O2 -std=c++17 -arch=sm_90a -I src -I include -o .gpu/bin/wgmma_probe tools/wgmma_probe.cu
# Libraries the GPU machine lacks: everything ldd resolves outside libc's own
# set and outside CUDA (the GPU machine has its own driver and toolkit).
for p in "${progs[@]}"; do ldd ".gpu/bin/$p"; done | awk '/=> \// {print $1, $3}' | sort -u |
  while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      libcuda.so*|libcudart.so*|libcublas*|libnccl.so*|libnvidia*) ;;
      *) cp -L "$path" ".gpu/lib/$name" ;;
    esac
  done
# BASE=<commit>: also gpu_train as of that commit, .gpu/bin/gpu_train_base, so that
# scripts/gpu_ab.sh (BIN_A=/tmp/.gpu/bin/gpu_train_base) times a kernel change
# against the code before it in the same call (and the CUDA checks as of then,
# *_base, which gpu_auto.sh runs when a check of the default kernels fails)
if [ -n "${BASE:-}" ]; then
  wt=$(mktemp -d)
  git worktree add -q --detach "$wt" "$BASE"
  quiet cmake -S "$wt" -B "$wt/build" -DCMAKE_BUILD_TYPE=Release -DSOJU_NATIVE=OFF -DCMAKE_C_FLAGS="-march=x86-64-v3" \
    -DSOJU_CUDA=ON -DSOJU_CUDA_ARCHS="90a"
  quiet cmake --build "$wt/build" -j "$(nproc)" --target gpu_train ops_test_cuda_ops model_test_cuda_step
  cp "$wt/build/gpu_train" .gpu/bin/gpu_train_base
  # and its checks: when a check of the default kernels fails, the same check at BASE says
  # whether a change since then broke it (the op's name in the failing line says which)
  cp "$wt/build/ops_test_cuda_ops" .gpu/bin/ops_test_cuda_ops_base
  cp "$wt/build/model_test_cuda_step" .gpu/bin/model_test_cuda_step_base
  git worktree remove --force "$wt"
fi
strip .gpu/bin/*
# without cuDNN compiled in, every SOJU_CUDA_CUDNN=strict run on the GPU aborts: stop here instead
grep -q libcudnn.so.9 .gpu/bin/attn_bench || {
  echo "gpu_bundle.sh: .gpu/bin/attn_bench has no cuDNN support (no libcudnn.so.9 in it): configure found"
  echo "no cudnn_backend.h (install cuDNN's headers or pip's nvidia-cudnn-cu13; see cmake/cuda.cmake)"
  exit 1
}
cp scripts/gpu_check.sh scripts/gpu_ab.sh scripts/gpu_auto.sh scripts/dist_gpu_check.sh scripts/demo_corpus.sh \
  bench/gpt2_torch_compile.py \
  bench/attn_bench.sh bench/attn_torch.py bench/pick_attention.py .gpu/
# which code the bundle is (gpu_auto.sh prints it first): a stale bundle carried to the GPU
# shows in the call's output
echo "$(git describe --always --dirty 2>/dev/null || echo unknown)${BASE:+ (base $BASE)}, built $(date -u '+%Y-%m-%d %H:%M UTC')" \
  >.gpu/VERSION
# one compressed file: the device tool carries at most 64 MiB (OpenBLAS alone is 35 MB)
tar czf gpu-bundle.tgz .gpu && rm -rf .gpu && mkdir .gpu && mv gpu-bundle.tgz .gpu/bundle.tgz
du -sh .gpu/bundle.tgz

# MPI=1: also pack this machine's OpenMPI (mpirun, orted, plugins and the
# libraries they load) as .gpu/mpi.tgz, for scripts/dist_gpu_check.sh on a GPU
# machine without MPI. There, unpack it without overwriting anything:
#   tar xzf .gpu/mpi.tgz -C / --skip-old-files && ldconfig
#   mkdir -p /tmp/mpibin && ln -sf /usr/bin/mpirun.openmpi /tmp/mpibin/mpirun && PATH=/tmp/mpibin:$PATH
if [ "${MPI:-0}" = 1 ]; then
  pkgs="openmpi-bin libopenmpi3 openmpi-common libpmix2"
  files=$(dpkg -L $pkgs | while read -r f; do [ -f "$f" ] && echo "$f"; done)
  deps=$(for f in $(echo "$files" | grep -E '\.so|/bin/'); do ldd "$f" 2>/dev/null; done |
    awk '/=> \// {print $3}' | sort -u |
    grep -v -E 'libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|ld-linux|libstdc\+\+|libgcc_s|libz\.so' |
    while read -r f; do readlink -f "$f"; echo "$f"; done)
  printf '%s\n' $files $deps | sort -u | tar czf .gpu/mpi.tgz -P -T - 2>/dev/null ||
    { echo "packing OpenMPI failed (is openmpi-bin installed?)"; exit 1; }
  du -sh .gpu/mpi.tgz
fi
