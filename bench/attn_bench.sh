#!/usr/bin/env bash
# The attention kernels alone on one GPU, in one call: soju's variants
# (bench/attn_bench.c: every switch of the Hopper kernels, each timed and
# checked against the default on the same inputs) beside PyTorch's
# scaled_dot_product_attention kernels (bench/attn_torch.py), for the GPT-2
# and Llama-style 124M layer shapes, then one table of per-call times with
# soju's ratio to torch's FlashAttention-2 kernel (> 1: soju faster), each
# variant's largest difference from the default (WRONG past 2e-2 of the
# largest value), and the fastest right variant of each direction.
#
#   SOJU_GPU_BIN=dir bash bench/attn_bench.sh        (prebuilt: gpu_bundle.sh; default build-gpu/)
#   SHAPES="gpt2 llama"  (docs: GPT-2's heads with up to 4 packed documents per row)  REPS=20  VARIANTS="default SOJU_CUDA_DQ_BULK=1 ..."  TORCH=0 (soju only)
#   EXCLUDE="SOJU_CUDA_ATT_BWD_WS+SOJU_CUDA_DQ_BULK SOJU_CUDA_CUDNN ..."  switch sets, each the
#                        '+'-joined switches of one failed run: a variant with every switch of a
#                        set is left out (one name: every variant with that switch)
#   ALL_TIMEOUT=150 ONE_TIMEOUT=60   seconds before a hung run is ended; a variant that hung is
#                        not run again, nor is any later variant with all its switches, and
#                        the last line says HUNG_SETS="..." (sets as in EXCLUDE) for the next call
#   BATCH=64 SEQ=1024    the shape's batch and length; DEVICE=cpu runs attn_bench on the CPU (a dry run)
#   SOJU_GPU_LIB=dir     extra shared libraries for the prebuilt soju binaries
#   RESULTS=file         also append soju's raw result lines there, each after shape=<shape>
#                        (scripts/gpu_auto.sh picks the winners from them)
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${SOJU_GPU_BIN:-$here/../build-gpu}
reps=${REPS:-20}
# (the warp-specialized variants last: a deadlock there costs the least)
variants=${VARIANTS:-"default SOJU_CUDA_WGMMA=0 SOJU_CUDA_DETERMINISTIC=1 SOJU_CUDA_CUDNN=strict SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_ATT_BWD_TMA=1
  SOJU_CUDA_ATT_BWD_TMA=1,SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_ATT_BWD_SPLIT=1 SOJU_CUDA_ATT_BWD_SPLIT=1,SOJU_CUDA_ATT_BWD_TMA=1 SOJU_CUDA_ATT_FWD128=1 SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_ATT_FWD_PIPE=1
  SOJU_CUDA_ATT_FWD128=1,SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_ATT_FWD128=1,SOJU_CUDA_ATT_FWD_PIPE=1
  SOJU_CUDA_ATT_FWD_TMA=1,SOJU_CUDA_ATT_FWD_PIPE=1 SOJU_CUDA_ATT_FWD128=1,SOJU_CUDA_ATT_FWD_TMA=1,SOJU_CUDA_ATT_FWD_PIPE=1
  SOJU_CUDA_ATT_FWD192=1 SOJU_CUDA_ATT_FWD192=1,SOJU_CUDA_ATT_FWD_TMA=1,SOJU_CUDA_ATT_FWD_PIPE=1
  SOJU_CUDA_ATT_FWD_WS=2 SOJU_CUDA_ATT_FWD_WS=3 SOJU_CUDA_ATT_FWD_WS=2,SOJU_CUDA_ATT_FWD_PIPE=1
  SOJU_CUDA_ATT_FWD_WS=3,SOJU_CUDA_ATT_FWD_PIPE=1 SOJU_CUDA_ATT_FWD_WS=gqa SOJU_CUDA_ATT_FWD_WS=gqa,SOJU_CUDA_ATT_FWD_PIPE=1
  SOJU_CUDA_ATT_BWD_WS=1 SOJU_CUDA_ATT_BWD_WS=1,SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_ATT_BWD_WS=128"}
# Whether variant $1 has every switch of one of the sets that follow ('+'-joined names). By
# whole sets, not single names: a failed WS+DQ_BULK run (gpu_auto.sh's checks) must not take
# DQ_BULK alone, which passed its own checks, out of the timing.
has_set() {
    local v=$1 set sw all; shift
    for set in "$@"; do
        [ -n "${set//+/}" ] || continue # (an empty set would take every variant, the default too)
        all=1
        for sw in ${set//+/ }; do [[ ",$v" == *",$sw="* ]] || all=0; done
        [ $all = 1 ] && return 0
    done
    return 1
}
# a variant's switch names as a set: SOJU_CUDA_A=1,SOJU_CUDA_B=2 -> SOJU_CUDA_A+SOJU_CUDA_B
switch_set() { echo "$1" | tr ',' '\n' | sed 's/=.*//' | paste -sd+; }
kept=""
# shellcheck disable=SC2086
for v in $variants; do has_set "$v" ${EXCLUDE:-} || kept="$kept $v"; done
variants=$kept
hung="" # the sets of the variants that hung, at any shape: left out of the shapes after
torch_py=$here/attn_torch.py
for shape in ${SHAPES:-gpt2 llama}; do
    case $shape in
        gpt2) args=(--heads 12 --kv-heads 12) ;;
        llama) args=(--heads 12 --kv-heads 4) ;;
        docs) args=(--heads 12 --kv-heads 12 --docs 4) ;; # soju pretrain's default mask (torch: causal only)
        *) echo "attn_bench.sh: unknown shape $shape (gpt2, llama, docs)"; exit 2 ;;
    esac
    args+=(--batch "${BATCH:-64}" --seq "${SEQ:-1024}")
    shape_variants=""
    # shellcheck disable=SC2086
    for v in $variants; do
        if has_set "$v" $hung; then echo "attn_bench: $v left out (it or a variant with its switches hung)"
        else shape_variants="$shape_variants $v"; fi
    done
    # a hang (a deadlocked kernel) ends at the timeout: ALL_TIMEOUT s for all the variants in
    # one process (they take about a second each), ONE_TIMEOUT s for each one alone after
    bench() { local limit=$1; shift; LD_LIBRARY_PATH="${SOJU_GPU_LIB:+$SOJU_GPU_LIB:}${LD_LIBRARY_PATH:-}" timeout "$limit" \
        "$bin/attn_bench" "${args[@]}" --device "${DEVICE:-cuda}" --reps "$reps" "$@" 2>&1; }
    # shellcheck disable=SC2086
    soju=$(bench "${ALL_TIMEOUT:-150}" $shape_variants)
    rc=$?
    echo "$soju" | grep -v '^RESULT'
    done_n=$(echo "$soju" | grep -c '^RESULT soju')
    # the variant running when the process ended: the one after the last measured
    next=$(echo $shape_variants | tr ' ' '\n' | sed -n "$((done_n + 1))p")
    if [ $rc = 124 ] && [ "$next" = default ]; then
        # every run starts with the default: nothing after it can be timed at this shape
        echo "attn_bench: the default hung (killed after ${ALL_TIMEOUT:-150} s); no variant timed at $shape"
    elif [ $rc != 0 ]; then
        # a variant that faults ends the process (CUDA errors stick to it): the variants
        # after the last one measured, each in its own process beside the default; one that
        # hung is not rerun (another ONE_TIMEOUT s for the same hang)
        echo "attn_bench failed (rc $rc); the remaining variants one by one"
        skip_n=$done_n
        if [ $rc = 124 ] && [ -n "$next" ]; then
            echo "attn_bench: variant $next hung (killed after ${ALL_TIMEOUT:-150} s); not run again"
            hung="$hung $(switch_set "$next")" skip_n=$((done_n + 1))
        fi
        for v in $(echo $shape_variants | tr ' ' '\n' | tail -n +$((skip_n + 1))); do
            [ "$v" = default ] && continue
            # shellcheck disable=SC2086
            if has_set "$v" $hung; then echo "attn_bench: variant $v skipped (a variant with its switches hung)"; continue; fi
            one=$(bench "${ONE_TIMEOUT:-60}" default "$v")
            orc=$?
            if [ $orc != 0 ]; then
                echo "attn_bench: variant $v failed (rc $orc$([ $orc = 124 ] && echo ", hung: killed after ${ONE_TIMEOUT:-60} s")); its last lines:"
                echo "$one" | grep -v '^RESULT' | tail -3 | sed 's/^/    /'
                if [ $orc = 124 ] && ! echo "$one" | grep -q '^RESULT soju variant=default '; then
                    echo "attn_bench: the default hung this time; no more variants at $shape"
                    break
                fi
                [ $orc = 124 ] && hung="$hung $(switch_set "$v")"
            fi
            soju="$soju
$(echo "$one" | grep "^RESULT soju variant=$v ")"
        done
    fi
    [ -n "${RESULTS:-}" ] && echo "$soju" | grep '^RESULT soju' | sed "s/^/shape=$shape /" >>"$RESULTS"
    torch=""
    if [ "${TORCH:-1}" = 1 ]; then
        torch=$(timeout 300 python3 "$torch_py" "${args[@]}" --reps "$reps" 2>&1)
        trc=$?
        if [ $trc = 0 ]; then echo "$torch" | grep -v '^RESULT'
        else # (an import error, CUDA out of memory: the table below lacks torch's rows)
            echo "attn_torch.py failed (rc $trc$([ $trc = 124 ] && echo ", killed after 300 s")); its last lines:"
            echo "$torch" | grep -v '^RESULT' | tail -5 | sed 's/^/    /'
        fi
    fi
    echo "== $shape: per call, ms (TFLOP/s); vs flash = torch FlashAttention-2 time / soju time"
    # (a diff of inf or nan is wrong: gawk reads both as 0, mawk reads nan as under 2e-2)
    { echo "$torch"; echo "$soju"; } | awk '
        function wrong(x) { return x ~ /[iI][nN][fF]|[nN][aA][nN]/ || x + 0 > 2e-2 }
        function f(line, k,   i, n, w) { n = split(line, w, " "); for (i = 1; i <= n; i++) if (index(w[i], k "=") == 1) return substr(w[i], length(k) + 2); return "" }
        /^RESULT torch/ { if (f($0, "kernel") == "flash") { tf = f($0, "fwd_ms"); tb = f($0, "bwd_ms") }
                          printf "  torch %-52s fwd %7.4f (%5.1f)  bwd %7.4f (%5.1f)\n", f($0, "kernel"), f($0, "fwd_ms"), f($0, "fwd_tflops"), f($0, "bwd_ms"), f($0, "bwd_tflops") }
        /^RESULT soju/ { fm = f($0, "fwd_ms"); bm = f($0, "bwd_ms")
                         printf "  soju  %-52s fwd %7.4f (%5.1f)  bwd %7.4f (%5.1f)", f($0, "variant"), fm, f($0, "fwd_tflops"), bm, f($0, "bwd_tflops")
                         if (tf != "") printf "  vs flash fwd %.2fx bwd %.2fx fwd+bwd %.2fx", tf / fm, tb / bm, (tf + tb) / (fm + bm)
                         ow = wrong(f($0, "out_diff")); gw = wrong(f($0, "grad_diff"))
                         printf "  diff out %s grad %s%s\n", f($0, "out_diff"), f($0, "grad_diff"), (ow || gw) ? "  WRONG" : ""
                         if (!ow && (bf == "" || fm + 0 < bf + 0)) { bf = fm; bfv = f($0, "variant") }
                         if (!gw && (bb == "" || bm + 0 < bb + 0)) { bb = bm; bbv = f($0, "variant") } }
        END { if (bf != "") printf "  fastest right forward: %s (%s ms); backward: %s (%s ms)\n", bfv, bf, bbv, bb }'
done
# the hung variants' sets, for the caller's EXCLUDE (they would hang its next call too)
if [ -n "$hung" ]; then echo "HUNG_SETS=\"${hung# }\""; fi
