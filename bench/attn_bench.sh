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
#   EXCLUDE="SOJU_CUDA_ATT_BWD_WS ..."  leave out the variants with any of these switches
#   ALL_TIMEOUT=150 ONE_TIMEOUT=60   seconds before a hung run is ended
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
# EXCLUDE="SOJU_CUDA_X ...": leave out every variant with one of these switches (gpu_auto.sh: those
# whose checks failed or hung)
kept=""
for v in $variants; do
    keep=1
    for sw in ${EXCLUDE:-}; do [[ ",$v" == *",$sw="* ]] && keep=0; done
    [ $keep = 1 ] && kept="$kept $v"
done
variants=$kept
torch_py=$here/attn_torch.py
for shape in ${SHAPES:-gpt2 llama}; do
    case $shape in
        gpt2) args=(--heads 12 --kv-heads 12) ;;
        llama) args=(--heads 12 --kv-heads 4) ;;
        docs) args=(--heads 12 --kv-heads 12 --docs 4) ;; # soju pretrain's default mask (torch: causal only)
        *) echo "attn_bench.sh: unknown shape $shape (gpt2, llama, docs)"; exit 2 ;;
    esac
    args+=(--batch "${BATCH:-64}" --seq "${SEQ:-1024}")
    # a hang (a deadlocked kernel) ends at the timeout: ALL_TIMEOUT s for all the variants in
    # one process (they take about a second each), ONE_TIMEOUT s for each one alone after
    bench() { local limit=$1; shift; LD_LIBRARY_PATH="${SOJU_GPU_LIB:+$SOJU_GPU_LIB:}${LD_LIBRARY_PATH:-}" timeout "$limit" \
        "$bin/attn_bench" "${args[@]}" --device "${DEVICE:-cuda}" --reps "$reps" "$@" 2>&1; }
    # shellcheck disable=SC2086
    soju=$(bench "${ALL_TIMEOUT:-150}" $variants)
    rc=$?
    echo "$soju" | grep -v '^RESULT'
    if [ $rc != 0 ]; then
        # a variant that faults ends the process (CUDA errors stick to it): the variants
        # after the last one measured, each in its own process beside the default
        echo "attn_bench failed (rc $rc); the remaining variants one by one"
        done_n=$(echo "$soju" | grep -c '^RESULT soju')
        for v in $(echo $variants | tr ' ' '\n' | tail -n +$((done_n + 1))); do
            [ "$v" = default ] && continue
            one=$(bench "${ONE_TIMEOUT:-60}" default "$v") || echo "attn_bench: variant $v failed (rc $?)"
            soju="$soju
$(echo "$one" | grep "^RESULT soju variant=$v ")"
        done
    fi
    [ -n "${RESULTS:-}" ] && echo "$soju" | grep '^RESULT soju' | sed "s/^/shape=$shape /" >>"$RESULTS"
    torch=""
    [ "${TORCH:-1}" = 1 ] && torch=$(timeout 300 python3 "$torch_py" "${args[@]}" --reps "$reps" 2>&1) &&
        echo "$torch" | grep -v '^RESULT'
    echo "== $shape: per call, ms (TFLOP/s); vs flash = torch FlashAttention-2 time / soju time"
    { echo "$torch"; echo "$soju"; } | awk '
        function f(line, k,   i, n, w) { n = split(line, w, " "); for (i = 1; i <= n; i++) if (index(w[i], k "=") == 1) return substr(w[i], length(k) + 2); return "" }
        /^RESULT torch/ { if (f($0, "kernel") == "flash") { tf = f($0, "fwd_ms"); tb = f($0, "bwd_ms") }
                          printf "  torch %-52s fwd %7.4f (%5.1f)  bwd %7.4f (%5.1f)\n", f($0, "kernel"), f($0, "fwd_ms"), f($0, "fwd_tflops"), f($0, "bwd_ms"), f($0, "bwd_tflops") }
        /^RESULT soju/ { fm = f($0, "fwd_ms"); bm = f($0, "bwd_ms")
                         printf "  soju  %-52s fwd %7.4f (%5.1f)  bwd %7.4f (%5.1f)", f($0, "variant"), fm, f($0, "fwd_tflops"), bm, f($0, "bwd_tflops")
                         if (tf != "") printf "  vs flash fwd %.2fx bwd %.2fx fwd+bwd %.2fx", tf / fm, tb / bm, (tf + tb) / (fm + bm)
                         od = f($0, "out_diff") + 0; gd = f($0, "grad_diff") + 0
                         printf "  diff out %s grad %s%s\n", f($0, "out_diff"), f($0, "grad_diff"), (od > 2e-2 || gd > 2e-2) ? "  WRONG" : ""
                         if (od <= 2e-2 && (bf == "" || fm + 0 < bf + 0)) { bf = fm; bfv = f($0, "variant") }
                         if (gd <= 2e-2 && (bb == "" || bm + 0 < bb + 0)) { bb = bm; bbv = f($0, "variant") } }
        END { if (bf != "") printf "  fastest right forward: %s (%s ms); backward: %s (%s ms)\n", bfv, bf, bbv, bb }'
done
