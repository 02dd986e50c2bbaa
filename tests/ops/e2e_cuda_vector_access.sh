#!/usr/bin/env bash
# The element-wise CUDA kernels move bf16 rows 16 bytes at a time (load8,
# store8, ld_bf16x8 in src/ops/cuda/cuda_common.cuh). A plain copy of the
# bf16x8 struct compiles to pieces instead (ld.global.v2.u16 per bf16 pair,
# four 32-bit accesses in the SASS), which costs the L1 four times the
# wavefronts and adds instructions, silently: this happened to every such
# kernel until the SASS was read (bench/CUDA_NOTES.md). Checked here in the
# PTX, no GPU needed: none of these files may load a bf16 pair on its own.
# Skips without nvcc.
set -u
. "$(dirname "$0")/nvcc_env.sh"
fail=0
for f in norm activation crossentropy encoder rope; do
    src=src/ops/cuda/$f.cu
    "$NVCC" -O3 -std=c++17 --use_fast_math -arch=sm_90a -I include -I src -ptx "$src" -o "$tmp/$f.ptx" || {
        echo "FAIL: $src does not compile"
        exit 1
    }
    pairs=$(grep -c 'ld\.global\(\.nc\)\?\.v2\.u16' "$tmp/$f.ptx")
    wide=$(grep -c 'ld\.global\(\.nc\)\?\.v4\.\(u32\|b32\)' "$tmp/$f.ptx")
    echo "$src: $wide 16-byte loads, $pairs bf16-pair loads"
    if [ "$pairs" -ne 0 ] || [ "$wide" -eq 0 ]; then
        echo "FAIL: $src loads bf16 rows in pieces (a bf16x8 copied as a struct instead of through ld_bf16x8?)"
        fail=1
    fi
done
exit $fail
