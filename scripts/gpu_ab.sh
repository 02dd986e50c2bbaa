#!/usr/bin/env bash
# A/B of one CUDA switch on a GPU machine, in one call: gpu_train without and
# with the variant's environment, alternating (per-op times moved by up to 10%
# between machine instances in this project, so only runs side by side in one
# call compare), then one profiled run of each for the per-op GPU times.
#
#   AB_ENV="SOJU_CUDA_DQ_BULK=1" bash scripts/gpu_ab.sh
#   SOJU_GPU_BIN=dir  prebuilt binaries (gpu_bundle.sh), else build-gpu/
#   ARCHS="gpt2"  ROUNDS=2  STEPS=10 WARMUP=3  OPS="attention_backward attention_forward"
#   BIN_A=path    A runs this gpu_train instead (an older binary: A/B of a code change)
#   RUN_TIMEOUT=90  seconds before a run is ended (one takes about 10 s: a hang must not take the call)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${SOJU_GPU_BIN:-$root/build-gpu}
ab_env=${AB_ENV:-}
bin_a=${BIN_A:-$bin/gpu_train}
[ -n "$ab_env" ] || [ -n "${BIN_A:-}" ] || { echo "gpu_ab.sh: set AB_ENV (and/or BIN_A)"; exit 2; }
run() { # gpu_train, then NAME=value environment words, then -- and gpu_train's arguments
    local prog=$1; shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    env ${envs[@]+"${envs[@]}"} LD_LIBRARY_PATH="${SOJU_GPU_LIB:+$SOJU_GPU_LIB:}${LD_LIBRARY_PATH:-}" timeout "${RUN_TIMEOUT:-90}" "$prog" "$@" 2>&1
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s|^$2=||p"; }
# a run's step_ms from its output, "-" without a RESULT line
step_ms() { local s; s=$(field "$(grep -m1 '^RESULT' <<<"$1")" step_ms); echo "${s:--}"; }
# a run that failed (no RESULT line, or a non-zero rc: a profile table lost to a crash after
# it): its rc and last lines, the reason (a missing library, a CUDA error, a timeout), where
# a bare "-" would say nothing
why() { # what, rc, output
    local found=1
    grep -q '^RESULT' <<<"$3" || found=0
    [ $found = 1 ] && [ "$2" = 0 ] && return
    echo "  $1: rc $2$([ "$2" = 124 ] && echo " (killed after ${RUN_TIMEOUT:-90} s)")$([ $found = 0 ] &&
        echo ", no RESULT line"); its last lines:"
    tail -3 <<<"$3" | sed 's/^/    /'
}
# an op's line of a --profile table: "total ms (ms/call)", or the total line's "ms"
op_time() { echo "$1" | awk -v o="$2" '$1 == o { print ($2 ~ /^[0-9]+$/ ? $3 " ms (" $4 "/call)" : $2 " ms") }'; }
read -r -a variant <<<"$ab_env"
for arch in ${ARCHS:-gpt2}; do
    args=(--arch "$arch" --micro 64 --batch 64 --seq 1024 --steps "${STEPS:-10}" --warmup "${WARMUP:-3}")
    a_list="" b_list=""
    for r in $(seq "${ROUNDS:-2}"); do
        a=$(run "$bin_a" -- "${args[@]}")
        why "$arch A, round $r" $? "$a"
        b=$(run "$bin/gpu_train" ${variant[@]+"${variant[@]}"} -- "${args[@]}")
        why "$arch B, round $r" $? "$b"
        a_list="$a_list $(step_ms "$a")" b_list="$b_list $(step_ms "$b")"
    done
    echo "== $arch step ms   A:$a_list   B ($ab_env${BIN_A:+, new binary}):$b_list"
    prof=(--arch "$arch" --micro 64 --batch 64 --seq 1024 --steps 4 --warmup 2 --profile)
    ops=${OPS:-attention_backward attention_forward}
    pa=$(run "$bin_a" -- "${prof[@]}")
    why "$arch A, profiled" $? "$pa"
    pb=$(run "$bin/gpu_train" ${variant[@]+"${variant[@]}"} -- "${prof[@]}")
    why "$arch B, profiled" $? "$pb"
    for op in $ops total; do
        ra=$(op_time "$pa" "$op") rb=$(op_time "$pb" "$op")
        printf '   %-22s A %-26s B %s\n' "$op" "${ra:--}" "${rb:--}"
    done
done
