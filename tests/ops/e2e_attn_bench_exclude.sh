#!/usr/bin/env bash
# bench/attn_bench.sh leaves out, on a GPU call, the variants whose checks
# failed (EXCLUDE from scripts/gpu_auto.sh's check stage): by whole switch
# sets, so that a broken kernel does not take down the switches it was
# combined with. Run here on the CPU backend (every switch a no-op there) at
# a tiny shape: which variants are timed, and which are not.
set -u
bin=$(dirname "${SOJU_BIN:-build/soju}")
[ -x "$bin/attn_bench" ] || { echo "SKIP: no $bin/attn_bench"; exit 77; }
fail=0
expect() { # what, got, want
    if [ "$2" = "$3" ]; then echo "  $1: '$2' ok"; else echo "  $1: got '$2', want '$3' FAIL"; fail=1; fi
}
timed() { # EXCLUDE, then the variants timed (their names, sorted)
    EXCLUDE=$1 SOJU_GPU_BIN=$bin DEVICE=cpu TORCH=0 BATCH=1 SEQ=64 REPS=1 SHAPES=gpt2 \
        VARIANTS="default SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_ATT_BWD_WS=1 SOJU_CUDA_ATT_BWD_WS=1,SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_CUDNN=strict" \
        bash bench/attn_bench.sh 2>&1 | awk '/^  soju / { print $2 }' | sort | tr '\n' ' ' | sed 's/ $//'
}
expect "nothing excluded" "$(timed "")" \
    "SOJU_CUDA_ATT_BWD_WS=1 SOJU_CUDA_ATT_BWD_WS=1,SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_CUDNN=strict SOJU_CUDA_DQ_BULK=1 default"
# a failed pair takes only the variants with both switches
expect "a failed pair" "$(timed "SOJU_CUDA_ATT_BWD_WS+SOJU_CUDA_DQ_BULK SOJU_CUDA_CUDNN")" \
    "SOJU_CUDA_ATT_BWD_WS=1 SOJU_CUDA_DQ_BULK=1 default"
# one switch alone takes every variant with it
expect "one switch" "$(timed "SOJU_CUDA_ATT_BWD_WS")" "SOJU_CUDA_CUDNN=strict SOJU_CUDA_DQ_BULK=1 default"
# an empty set takes nothing (not the default either)
expect "an empty set" "$(timed "+")" \
    "SOJU_CUDA_ATT_BWD_WS=1 SOJU_CUDA_ATT_BWD_WS=1,SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_CUDNN=strict SOJU_CUDA_DQ_BULK=1 default"
exit $fail
