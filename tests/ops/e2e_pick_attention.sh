#!/usr/bin/env bash
# bench/pick_attention.py decides, on a GPU call, which attention variants
# become the default (scripts/gpu_auto.sh): a wrong pick would make a slower
# or wrong kernel the default, so its rules are checked here on made-up
# results: the fastest right variant per direction wins, and only by the
# margin; a variant that differs from the default, lacks a shape, mixes
# directions or is a mode (deterministic) is never picked; cuDNN's whole
# attention is weighed against both directions' picks together.
set -u
tmp=${SOJU_TMP:-/tmp}/pick_attention.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pick() { python3 bench/pick_attention.py "$@"; }
fail=0
expect() { # what, got, want
    if [ "$2" = "$3" ]; then echo "  $1: '$2' ok"; else echo "  $1: got '$2', want '$3' FAIL"; fail=1; fi
}
line() { # shape variant fwd_ms bwd_ms out_diff grad_diff
    echo "shape=$1 RESULT soju variant=$2 fwd_ms=$3 bwd_ms=$4 fwd_tflops=1 bwd_tflops=1 out_diff=$5 grad_diff=$6"
}
{
    for s in gpt2 llama; do
        line $s default 1.0 2.0 0 0
        line $s SOJU_CUDA_ATT_FWD_TMA=1 0.9 2.0 0 0                        # -10%: the forward's pick
        line $s SOJU_CUDA_ATT_FWD_WS=2 0.8 2.0 0.5 0                       # faster, wrong output
        line $s SOJU_CUDA_ATT_FWD_PIPE=1 0.7 2.0 0 0.1                     # right output, wrong gradients
        line $s SOJU_CUDA_ATT_FWD128=1,SOJU_CUDA_ATT_BWD_TMA=1 0.5 1.0 0 0 # both directions at once
        line $s SOJU_CUDA_DETERMINISTIC=1 1.0 0.9 0 0                      # a mode, not a variant
        line $s SOJU_CUDA_ATT_BWD_WS=1 1.0 1.99 0 0                        # -0.5%: under the margin
        line $s SOJU_CUDA_DQ_BULK=1 1.0 1.5 0 0.001                        # -25%: the backward's pick
    done
    line gpt2 SOJU_CUDA_ATT_FWD192=1 0.1 2.0 0 0    # timed at one shape only
    line gpt2 SOJU_CUDA_ATT_BWD_SPLIT=1 1.0 0.1 0 0 # (the same)
} >"$tmp/results"
out=$(pick "$tmp/results")
echo "$out" | sed 's/^/    /'
expect "picked" "$(echo "$out" | tail -1)" "SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_DQ_BULK=1"
expect "wrong output" "$(echo "$out" | grep -c 'FWD_WS=2 WRONG')" 1
expect "wrong gradients" "$(echo "$out" | grep -c 'FWD_PIPE=1 WRONG')" 1
expect "one shape only" "$(echo "$out" | grep -c 'left out (not timed at every shape)')" 2
# a higher margin keeps the forward's 10% out, the backward's 25% in
expect "margin 0.2" "$(pick "$tmp/results" 0.2 | tail -1)" "SOJU_CUDA_DQ_BULK=1"
# cuDNN's whole attention: weighed by forward + backward against the two picks together
# (0.9 + 1.5 = 2.4 ms per shape): 2.2 wins beside them, 2.38 is under the margin, and a
# wrong one is never picked
{
    cat "$tmp/results"
    for s in gpt2 llama; do line $s SOJU_CUDA_CUDNN=1 0.6 1.6 0 0.002; done
} >"$tmp/cudnn_wins"
expect "cudnn wins" "$(pick "$tmp/cudnn_wins" | tail -1)" "SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_DQ_BULK=1 SOJU_CUDA_CUDNN=1"
{
    cat "$tmp/results"
    for s in gpt2 llama; do line $s SOJU_CUDA_CUDNN=1 0.9 1.48 0 0; done
} >"$tmp/cudnn_margin"
expect "cudnn under the margin" "$(pick "$tmp/cudnn_margin" | tail -1)" "SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_DQ_BULK=1"
{
    cat "$tmp/results"
    for s in gpt2 llama; do line $s SOJU_CUDA_CUDNN=1 0.3 0.5 0 0.5; done
} >"$tmp/cudnn_wrong"
expect "cudnn wrong" "$(pick "$tmp/cudnn_wrong" | tail -1)" "SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_DQ_BULK=1"
# a variant whose output or gradients hold NaN or inf (attn_bench prints inf for both) is
# wrong however fast: a "nan > tolerance" test is false, which once let such a variant win
{
    cat "$tmp/results"
    for s in gpt2 llama; do line $s SOJU_CUDA_ATT_BWD_TMA=1 1.0 0.5 0 nan; done
    for s in gpt2 llama; do line $s SOJU_CUDA_ATT_FWD_WS=3 0.4 2.0 inf 0; done
} >"$tmp/nonfinite"
out=$(pick "$tmp/nonfinite")
expect "nan and inf never picked" "$(echo "$out" | tail -1)" "SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_DQ_BULK=1"
expect "nan and inf are wrong" "$(echo "$out" | grep -cE '(BWD_TMA=1|FWD_WS=3) WRONG')" 2
# nothing beats the default: an empty line
grep -E 'variant=default ' "$tmp/results" >"$tmp/default_only"
expect "default only" "$(pick "$tmp/default_only" | tail -1)" ""
# no default times (its run failed): nothing picked
grep -v 'variant=default ' "$tmp/results" >"$tmp/no_default"
expect "no default" "$(pick "$tmp/no_default" | tail -1)" ""
exit $fail
