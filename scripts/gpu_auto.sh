#!/usr/bin/env bash
# The decision a GPU call exists for, scripted: which of the CUDA variants
# that are off by default until timed (the SOJU_CUDA_* switches) are right
# and faster, and what soju's training rate is with them, against
# torch.compile. Three stages, each meant to fit a device call (a call may
# run ten minutes); estimated, not yet run on a GPU: check about 5 minutes
# (cuDNN compiles its kernels at run time for each checked shape), pick about
# 5.5, final about 6:
#
#   STAGE=check  gpu_check.sh's checks (no benchmark): every op and training
#                step against the CPU backend, with the default kernels and
#                with each variant; prints EXCLUDE="...": the switch set of
#                every run that failed or hung ('+'-joined; attn_bench leaves
#                out a variant only when it has all of one set).
#   STAGE=pick   EXCLUDE="..." from the check stage. attn_bench.sh times every
#                attention variant not excluded, at the GPT-2 and Llama
#                shapes beside torch's kernels; gpu_train --profile times the
#                ops of the other switches (norm backwards, cross-entropy,
#                the attention backward with the rope folded in) with and
#                without them (A B A B); prints WINNERS="...": the fastest
#                right forward and backward variants when they beat the
#                default by MARGIN (2%) summed over both shapes
#                (bench/pick_attention.py says the rules), and each other
#                switch that cut its ops' time by MARGIN on every model it
#                touches.
#   STAGE=final  WINNERS="..." from the pick stage: the training-step check
#                with all of them on together, whole steps default vs winners
#                alternating (gpu_ab.sh), then soju with the winners / torch.compile /
#                soju again (gpu_check.sh's benchmark, STEPS=20 WARMUP=5): the
#                numbers for bench/RESULTS.md.
#   STAGE=check,pick  (any comma list) stages in a row, each passing what it
#                prints to the next: check,pick about ten minutes (one call
#                only if the machine is already warm and nothing hangs).
#   STAGE=all    the three in a row (about fourteen minutes: more than one call).
#   STAGE=cudnn  the short way, one call (about 5 minutes): cuDNN's attention
#                checked (ops and steps, strict), timed alone beside the
#                default and torch's kernels, and whole steps default vs cuDNN
#                on both models (gpu_ab.sh).
#   STAGE=dist   data-parallel training on this GPU (dist_gpu_check.sh, about a
#                minute, needs mpirun): NCCL with one rank, and two NCCL ranks
#                sharing the GPU over sockets, against one process;
#                STAGE=cudnn,dist fits one call.
#
# Where the binaries come from: SOJU_GPU_BIN (gpu_bundle.sh's, with SOJU_GPU_LIB)
# or build-gpu/. A dry run of the pick stage's plumbing on a machine without a
# GPU: SOJU_GPU_BIN=build DEVICE=cpu TORCH=0 BATCH=1 SEQ=64 STAGE=pick bash scripts/gpu_auto.sh
# (the attention variants run on the CPU backend, where every switch is a no-op).
# Then, on the dev box: make the winners the default in cuda_backend.cu, delete
# the losers' kernels and switches, and record the final table in bench/RESULTS.md.
#
# What comes back from a device call: at most 8 files of $OUT and the last
# 12,000 characters of output. So the logs go to a scratch folder (LOGS,
# /tmp/soju-auto), and $OUT gets two files per run of this script, written
# after every stage: summary-<stages>.txt (all it printed) and
# logs-<stages>.tgz (every log, without checkpoints and shards).
# DEADLINE (seconds from the start, 540 by default): what has not begun by
# then is skipped, so that the summary and the logs are written before the
# call's 600 s are up.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${SOJU_GPU_BIN:-$root/build-gpu}
out=${LOGS:-/tmp/soju-auto}
keep=${OUT:-}
mkdir -p "$out"
margin=${MARGIN:-0.02}
stage=${STAGE:-}
[ -n "$stage" ] || { echo "gpu_auto.sh: say STAGE= (check, pick, final, cudnn, dist, a comma list, or all)"; exit 2; }
export SOJU_DEADLINE_AT=$(($(date +%s) + ${DEADLINE:-540})) # (gpu_check.sh skips checks past it)
time_left() { echo $((SOJU_DEADLINE_AT - $(date +%s))); }
tag=${stage//,/-}
if [ -n "$keep" ]; then
    mkdir -p "$keep"
    exec > >(tee -a "$keep/summary-$tag.txt") 2>&1
fi
pack_logs() {
    [ -n "$keep" ] || return 0
    tar czf "$keep/logs-$tag.tgz" -C "$(dirname "$out")" --exclude=checkpoints --exclude='*.bin' \
        --exclude='*.safetensors' --exclude=corpus.txt "$(basename "$out")" 2>/dev/null
}
script() { [ -f "$here/$1" ] && echo "$here/$1" || echo "$root/${2:-scripts}/$1"; } # bundle: all in one folder
# a soju program with SOJU_GPU_LIB's libraries (and any NAME=value words before it)
soju_env() { env LD_LIBRARY_PATH="${SOJU_GPU_LIB:+$SOJU_GPU_LIB:}${LD_LIBRARY_PATH:-}" "$@"; }
[ -f "$here/VERSION" ] && echo "bundle: $(cat "$here/VERSION")"

# cuDNN (SOJU_CUDA_CUDNN) loads libcudnn.so.9 from the library path: where no
# folder of SOJU_GPU_LIB has it and the loader knows none, PyTorch's wheel's
# (after the toolkit's folder, so that one cuDNN's libraries are never mixed
# with another's)
has_cudnn() {
    local d
    local IFS=: # (the paths' separator)
    for d in ${SOJU_GPU_LIB:-} ${LD_LIBRARY_PATH:-}; do [ -e "$d/libcudnn.so.9" ] && return 0; done
    ldconfig -p 2>/dev/null | grep -q 'libcudnn\.so\.9 '
}
if ! has_cudnn; then
    wheel=$(python3 -c "import nvidia.cudnn as n; print(list(n.__path__)[0] + '/lib')" 2>/dev/null)
    if [ -n "$wheel" ] && [ -e "$wheel/libcudnn.so.9" ]; then
        export SOJU_GPU_LIB="${SOJU_GPU_LIB:+$SOJU_GPU_LIB:}$wheel"
        echo "cuDNN: $wheel (PyTorch's wheel)"
    else
        echo "cuDNN: no libcudnn.so.9 found (SOJU_CUDA_CUDNN runs will fail)"
    fi
fi

# cuDNN's engine lines (stderr: each shape's engine and timed candidates) in logs
cudnn_lines() { grep -hE "soju: cudnn|SOJU_CUDA_CUDNN" "$@" 2>/dev/null | sort -u | head -40; }
# cuDNN against the default on the docs shape (soju pretrain's document mask)
cudnn_docs_timing() {
    SHAPES=docs VARIANTS="default SOJU_CUDA_CUDNN=strict" TORCH=0 SOJU_GPU_BIN=$bin \
        bash "$(script attn_bench.sh bench)" | grep -E 'soju|fastest|failed|hung|HUNG'
}

# ---------------------------------------------------------------- check
stage_check() {
    echo "== check: gpu_check.sh without its benchmark ($(time_left) s left)"
    # (its rows as they finish, then its table; not the passing lines of each check)
    OUT=$out/check BENCH=0 SOJU_GPU_BIN=$bin bash "$(script gpu_check.sh)" | grep -vE '^  .* ok$'
    # cuDNN's library and each shape's engine (its checks' stderr)
    cudnn_lines "$out"/check/cuda_*cudnn*.log
    # the failed runs' switch sets ('+'-joined): attn_bench leaves out a variant with all of one
    exclude=$(sort -u "$out/check/failed_switches" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')
    [ -s "$out/check/failed_other" ] && echo "OTHER FAILS (modes, CPU checks; logs in the tarball): $(tr '\n' ' ' <"$out/check/failed_other")"
    if [ -s "$out/check/failed_default" ]; then
        # the default kernels themselves: timing them means nothing until this is fixed
        echo "DEFAULT FAILS: $(tr '\n' ' ' <"$out/check/failed_default")(logs: check/ in the logs tarball); the changes on by"
        echo "default since the last GPU-checked commit are the suspects (bench/CUDA_NOTES.md, (a)-(p))"
        local t
        for t in ops_test_cuda_ops model_test_cuda_step; do # the same checks as of gpu_bundle.sh's BASE
            [ -x "$bin/${t}_base" ] || continue
            soju_env timeout 120 "$bin/${t}_base" >"$out/check/${t}_base.log" 2>&1
            echo "  $t as of BASE: rc $? ($(grep -c 'FAIL$' "$out/check/${t}_base.log") failing lines; now:" \
                "$(grep -h 'FAIL$' "$out/check/"cuda_ops.log "$out/check/"cuda_step.log 2>/dev/null | head -3 | tr -s ' ' | tr '\n' ';'))"
        done
    fi
    echo "EXCLUDE=\"$exclude\""
}

# ---------------------------------------------------------------- pick
# per-op GPU times of gpu_train --profile, A (no switch) and B (with it),
# alternating twice; prints "op a_ms b_ms" with each side's faster run
profile_ab() { # arch, switch, ops...
    local arch=$1 sw=$2 r side envs
    shift 2
    for r in 1 2; do
        for side in a b; do
            envs=()
            [ $side = b ] && envs=("$sw")
            soju_env ${envs[@]+"${envs[@]}"} timeout 300 "$bin/gpu_train" --arch "$arch" --micro 64 --batch 64 \
                --seq 1024 --steps 4 --warmup 2 --profile >"$out/profile_${arch}_${sw%%=*}_${side}$r.log" 2>&1
        done
    done
    for op in "$@"; do
        awk -v o="$op" '
            $1 == o && $2 ~ /^[0-9]+$/ { side = (FILENAME ~ /_b[12]\.log$/) ? "b" : "a"
                                        if (!(side in t) || $3 < t[side]) t[side] = $3 }
            END { if (("a" in t) && ("b" in t)) print o, t["a"], t["b"] }' "$out"/profile_"${arch}"_"${sw%%=*}"_*.log
    done
}

stage_pick() {
    echo "== pick: attention variants (excluded switches: ${EXCLUDE:-none})"
    rm -f "$out/attn_results"
    RESULTS=$out/attn_results EXCLUDE="${EXCLUDE:-}" SOJU_GPU_BIN=$bin bash "$(script attn_bench.sh bench)"
    # the fastest right forward and backward, summed over the shapes, against the default's sum
    attention=$(python3 "$(script pick_attention.py bench)" "$out/attn_results" "$margin")
    echo "$attention" | grep '^#'
    winners=$(echo "$attention" | grep -v '^#' | tail -1)
    # soju pretrain masks packed documents by default: cuDNN's document mask beside soju's
    # kernels there (for the notes; the pick above is on the benchmark's causal shapes)
    [[ " ${EXCLUDE:-} " == *" SOJU_CUDA_CUDNN "* ]] || cudnn_docs_timing
    # the memory-bound kernels' switches: per-op times, A/B
    local sw arch ok line ops
    for sw in SOJU_CUDA_NORM_PREFETCH=1 SOJU_CUDA_CE_SMEM=1 SOJU_CUDA_ROPE_FUSED=1; do
        [[ " ${EXCLUDE:-} " == *" ${sw%%=*} "* ]] && { echo "# ${sw%%=*}: excluded by the checks"; continue; }
        [ "$(time_left)" -gt 120 ] || { echo "# ${sw%%=*}: not timed (the call's deadline is near)"; continue; }
        ok=1
        for arch in gpt2 llama; do
            case $sw in
                *NORM*) [ $arch = gpt2 ] && ops=layernorm_backward || ops=rmsnorm_backward ;;
                *CE_SMEM*) [ $arch = gpt2 ] && ops=crossentropy_fused || continue ;;
                *ROPE*) [ $arch = llama ] && ops=attention_backward || continue ;; # (the rope's backward is inside it)
            esac
            line=$(profile_ab "$arch" "$sw" $ops)
            echo "# ${sw%%=*} $arch: ${line:-no profile lines} (op, ms without, ms with; faster of two runs each)"
            echo "$line" | awk -v m="$margin" 'NF == 3 && $3 <= $2 * (1 - m) { found = 1 } END { exit !found }' || ok=0
        done
        [ $ok = 1 ] && winners="$winners $sw"
    done
    winners=$(echo $winners)
    echo "WINNERS=\"$winners\""
}

# ---------------------------------------------------------------- cudnn
# The one question that matters most, in one call (about 5 minutes), for a
# session with little device time: is cuDNN's attention right, and how much
# faster are whole steps with it? Its op and step checks under strict, the
# attention alone beside soju's default and torch's kernels, then whole
# steps default vs cuDNN, alternating, on both models.
stage_cudnn() {
    echo "== cudnn: checks, attention alone, whole steps"
    local t rc
    mkdir -p "$out/cudnn"
    for t in "ops_test_cuda_ops attention" model_test_cuda_step; do
        # (one plan per shape, untimed: the timing is at the real shapes below)
        # shellcheck disable=SC2086
        soju_env SOJU_CUDA_CUDNN=strict SOJU_CUDA_GEMM_TUNE=0 timeout 240 "$bin"/$t >"$out/cudnn/${t%% *}.log" 2>&1
        rc=$?
        echo "  ${t%% *} with SOJU_CUDA_CUDNN=strict: rc $rc ($(grep -c 'FAIL$' "$out/cudnn/${t%% *}.log") failing lines)"
    done
    cudnn_lines "$out"/cudnn/*.log
    VARIANTS="default SOJU_CUDA_CUDNN=strict" SOJU_GPU_BIN=$bin bash "$(script attn_bench.sh bench)"
    cudnn_docs_timing
    ARCHS="gpt2 llama" AB_ENV="SOJU_CUDA_CUDNN=1" SOJU_GPU_BIN=$bin bash "$(script gpu_ab.sh)"
}

# ---------------------------------------------------------------- dist
# Data-parallel training on the GPU (dist_gpu_check.sh, about a minute): NCCL
# with one rank, two ranks sharing the GPU through MPI, and two NCCL ranks
# sharing it as two "hosts" over sockets (NCCL_HOSTID), each run's final
# parameters against one process with the whole batch. Needs mpirun (the
# OpenMPI of `MPI=1 bash scripts/gpu_bundle.sh`, unpacked as
# bench/CUDA_NOTES.md says).
stage_dist() {
    echo "== dist: data parallel on this GPU"
    command -v mpirun >/dev/null ||
        { echo "  mpirun not found: unpack .gpu/mpi.tgz first (bench/CUDA_NOTES.md, data parallel)"; return 0; }
    OUT=$out/dist SOJU_GPU_BIN=$bin LD_LIBRARY_PATH="${SOJU_GPU_LIB:+$SOJU_GPU_LIB:}${LD_LIBRARY_PATH:-}" \
        bash "$(script dist_gpu_check.sh)"
}

# ---------------------------------------------------------------- final
stage_final() {
    echo "== final: with ${WINNERS:-the defaults only}"
    # all winners on together: the training-step check against the CPU backend
    # shellcheck disable=SC2086
    soju_env ${WINNERS:-} timeout 300 "$bin/model_test_cuda_step" >"$out/final_step_check.log" 2>&1
    case $? in
        0) echo "step check with all winners on: pass" ;;
        77) echo "step check with all winners on: SKIP ($(grep -m1 SKIP "$out/final_step_check.log"))" ;;
        *) echo "step check with all winners on: FAIL (the winners together are wrong: do not adopt them)"
           tail -5 "$out/final_step_check.log" ;;
    esac
    [ -n "${WINNERS:-}" ] && ARCHS="gpt2 llama" AB_ENV="$WINNERS" SOJU_GPU_BIN=$bin bash "$(script gpu_ab.sh)"
    # shellcheck disable=SC2086
    env ${WINNERS:-} OUT=$out/final CHECKS=0 STEPS=${STEPS:-20} WARMUP=${WARMUP:-5} SOJU_GPU_BIN=$bin \
        bash "$(script gpu_check.sh)"
}

exclude=${EXCLUDE:-} winners=${WINNERS:-}
[ "$stage" = all ] && stage=check,pick,final
for st in ${stage//,/ }; do
    if [ "$(time_left)" -le 30 ]; then
        echo "== $st: SKIPPED (the call's deadline: DEADLINE=${DEADLINE:-540} s from the start)"
        continue
    fi
    case $st in
        check) stage_check ;;
        pick) EXCLUDE=$exclude stage_pick ;;
        final) WINNERS=$winners stage_final ;;
        cudnn) stage_cudnn ;;
        dist) stage_dist ;;
        *) echo "gpu_auto.sh: STAGE is check, pick, final, cudnn, dist, a comma list of them, or all"; exit 2 ;;
    esac
    echo "== $st done, $SECONDS s since the start"
    pack_logs
done
