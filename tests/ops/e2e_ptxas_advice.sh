#!/usr/bin/env bash
# The Hopper (wgmma) kernels as ptxas builds them, checked without a GPU:
#  - no "wgmma serialized" advice (ptxas C7512: for lack of registers every
#    wgmma waits for the one before; the code stays correct but loses most of
#    its speed, and nothing else would say so),
#  - register spills within each kernel's budget below: these kernels sit at
#    the register bound that sets their blocks per SM, where a small source
#    change can add spills. Raise a budget only after timing the change on a
#    GPU (tools/sass_report.sh shows where the spills land; bench/CUDA_NOTES.md).
# The flags are the CMake build's (cmake/cuda.cmake). Skips without nvcc.
set -u
. "$(dirname "$0")/nvcc_env.sh"
# mangled-name pattern, most spill-store bytes allowed
budget="
hopper_fwd_kernel 0
hopper_bwd_kernel 0
hopper_dq_kernel 0
hopper_bwd_ws_kernel 0
hopper_fwd_ws_kernel 0
"
fail=0
for src in $(grep -lE 'wgmma.cuh|attention_hopper.cuh' src/ops/cuda/*.cu); do
    log=$tmp/$(basename "$src").log
    if ! "$NVCC" -O3 -std=c++17 --use_fast_math -Werror=all-warnings -DSOJU_WGMMA -gencode arch=compute_90a,code=sm_90a \
        -Xptxas -v -I include -I src -c "$src" -o "$tmp/k.o" 2>"$log"; then
        cat "$log"
        echo "FAIL: $src does not compile"
        exit 1
    fi
    if grep -q "(C75" "$log"; then
        grep "(C75" "$log"
        echo "FAIL: $src: ptxas performance advice above"
        fail=1
    fi
    # ptxas -v: "Compiling entry function 'NAME' for 'sm_90a'", then "... N bytes spill stores ..."
    awk -v budget="$budget" -v src="$src" '
        BEGIN { n = split(budget, line, "\n"); for (i = 1; i <= n; i++) if (split(line[i], w, " ") == 2) max[w[1]] = w[2] }
        /Compiling entry function/ { name = $0; next }
        /bytes spill stores/ {
            spill = $5
            for (k in max) if (index(name, k)) {
                printf "%s: %s spills %d bytes (budget %d)\n", src, k, spill, max[k]
                if (spill + 0 > max[k] + 0) bad = 1
            }
        }
        END { exit bad }' "$log" >"$tmp/spills"
    rc=$?
    cat "$tmp/spills" && cat "$tmp/spills" >>"$tmp/checked"
    [ $rc = 0 ] || { echo "FAIL: $src: a kernel spills more than its budget"; fail=1; }
done
# a budget that matched no kernel (renamed, or a mangling change) checks nothing: fail
for k in $(echo "$budget" | awk 'NF == 2 { print $1 }'); do
    grep -q ": $k spills" "$tmp/checked" 2>/dev/null || { echo "FAIL: no kernel matches the budget '$k'"; fail=1; }
done
exit $fail
