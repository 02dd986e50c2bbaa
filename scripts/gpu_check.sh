#!/usr/bin/env bash
# The CUDA backend on a GPU machine in one command: build, check every CUDA op
# and a whole training step against the CPU backend, benchmark training
# throughput against torch.compile, and print one table.
#
#   bash scripts/gpu_check.sh                 # build into build-gpu/, check, benchmark
#   SOJU_GPU_BIN=dir bash scripts/gpu_check.sh  # use prebuilt binaries from dir
#
# Environment knobs:
#   BENCH=0            checks only
#   CHECKS=0           benchmark only (scripts/gpu_auto.sh's last stage, after its checks)
#   ARCHS="gpt2 llama" models to benchmark (GPT-2 124M, Llama-style 124M)
#   MICRO=64 BATCH=64  micro-batch and global batch (sequences of SEQ=1024)
#   STEPS=10 WARMUP=3  timed and warm-up steps per run
#   TORCH=0            soju only (no torch.compile runs)
#   PROFILE=1          also print soju's per-op GPU time for one short run
#   SANITIZE=1         run the op checks under compute-sanitizer too
#   PRETRAIN_BENCH=1   also time `soju pretrain --device cuda` on GPT-2 124M
#   OUT=dir            where full logs go (default /tmp/soju-gpu-check)
#   SOJU_GPU_LIB=dir   extra shared libraries for the prebuilt soju binaries only
#   SOJU_CUDA_WGMMA=0  Hopper: the head-dim-64 attention on mma.sync instead of wgmma
#   CHECK_TIMEOUT=120 VARIANT_TIMEOUT=60 CUDNN_TIMEOUT=300  seconds before a check counts as hung
#   SOJU_DEADLINE_AT=t  (epoch seconds, from gpu_auto.sh) checks not begun by then are skipped, so
#                      that the table is printed before the device call's time is up
#   (the checks also run with SOJU_CUDA_DQ_BULK=1, SOJU_CUDA_ATT_FWD128=1 / 192=1, SOJU_CUDA_ATT_FWD_TMA=1,
#    SOJU_CUDA_ATT_FWD_PIPE=1, SOJU_CUDA_ATT_BWD_TMA=1, SOJU_CUDA_ATT_BWD_SPLIT=1, SOJU_CUDA_ATT_BWD_WS=1 and
#    SOJU_CUDA_ATT_FWD_WS=2 / 3 / gqa on Hopper, and SOJU_CUDA_CUDNN=strict (cuDNN's engines; needs
#    libcudnn.so.9 on SOJU_GPU_LIB): attention variants that are off by default until timed)
#   (scripts/gpu_ab.sh times one such switch, or an older binary, against the default)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${OUT:-/tmp/soju-gpu-check}
mkdir -p "$out"
bin=${SOJU_GPU_BIN:-}
if [ -z "$bin" ]; then
    echo "== building (CUDA on, sm_90) into $root/build-gpu"
    cmake -S "$root" -B "$root/build-gpu" -DCMAKE_BUILD_TYPE=Release -DSOJU_CUDA=ON >"$out/build.log" 2>&1 &&
        cmake --build "$root/build-gpu" -j "$(nproc)" >>"$out/build.log" 2>&1 || {
        tail -30 "$out/build.log"
        echo "build failed (full log: $out/build.log)"
        exit 1
    }
    bin=$root/build-gpu
fi
# soju programs see SOJU_GPU_LIB; Python does not (it brings its own libraries)
soju_env() { LD_LIBRARY_PATH="${SOJU_GPU_LIB:+$SOJU_GPU_LIB:}${LD_LIBRARY_PATH:-}" "$@"; }
torch_bench=$root/bench/gpt2_torch_compile.py
[ -f "$torch_bench" ] || torch_bench=$here/gpt2_torch_compile.py

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
rows=()
status=0

# ---------------------------------------------------------------- checks
hung=""         # the kernel-variant switches of runs that hung
default_hung="" # a check of the default kernels that hung: every later CUDA check builds on them
# one row of the table, also printed at once (a killed call still shows what ran)
row() {
    rows+=("$(printf '%-28s %-10s %s' "$1" "$2" "$3")")
    echo "${rows[-1]}"
}
run_check() { # name, program, its arguments (test names: only those run); a hang, e.g. a bulk
    # copy that never lands, ends as rc 124 after CHECK_TIMEOUT s (VARIANT_TIMEOUT s, 60 by
    # default, when a kernel-variant switch is set: these checks take seconds); later runs
    # with a switch that was on in a hung run are skipped, so that one deadlocking kernel
    # costs one timeout and not one per check of it
    local name=$1 prog=$2 log="$out/$1.log" rc sw limit=${CHECK_TIMEOUT:-120}
    shift 2
    local switches
    switches=$(env | grep -oE '^SOJU_CUDA_(ATT_[A-Z0-9_]+|DQ_BULK|NORM_PREFETCH|CE_SMEM|ROPE_FUSED|CUDNN)=[^0]' | cut -d= -f1 |
        sort -u)
    if [ -n "${SOJU_DEADLINE_AT:-}" ] && [ "$(date +%s)" -ge "$SOJU_DEADLINE_AT" ]; then
        row "$name" "SKIP" "the call's deadline passed"
        status=1
        return
    fi
    if [ -n "$default_hung" ] && [[ $name == cuda_* ]]; then
        row "$name" "SKIP" "the default kernels hung ($default_hung)"
        status=1
        return
    fi
    for sw in $switches; do
        if [[ " $hung " == *" $sw "* ]]; then
            row "$name" "SKIP" "$sw hung in an earlier run"
            status=1
            return
        fi
    done
    [ -n "$switches" ] && limit=${VARIANT_TIMEOUT:-60}
    # cuDNN compiles each shape's engines at run time (NVRTC, about a second per plan and
    # direction, every candidate when tuning): the op checks' dozens of shapes take a minute
    echo "$switches" | grep -q SOJU_CUDA_CUDNN && limit=${CUDNN_TIMEOUT:-300}
    soju_env timeout "$limit" "$prog" "$@" >"$log" 2>&1
    rc=$?
    # what failed, for gpu_auto.sh: the switch set of each failed variant run, its names
    # joined by '+' (a variant is left out only when it has every switch of a failed
    # set: a broken kernel must not take down the switches it was combined with; a
    # hang puts each switch alone there too, as one hang costs a timeout per run);
    # the default kernels' own checks; and other failed runs (modes, CPU checks)
    case $rc in 0 | 77) ;; *)
        if [ -n "$switches" ]; then
            echo $switches | tr ' ' '+' >>"$out/failed_switches"
            [ $rc = 124 ] && for sw in $switches; do echo "$sw" >>"$out/failed_switches"; done
        elif [ "$name" = cuda_ops ] || [ "$name" = cuda_step ]; then
            echo "$name" >>"$out/failed_default"
        else
            echo "$name" >>"$out/failed_other"
        fi ;;
    esac
    if [ $rc = 124 ]; then
        for sw in $switches; do hung="$hung $sw "; done
        if [ -z "$switches" ] && { [ "$name" = cuda_ops ] || [ "$name" = cuda_step ]; }; then default_hung=$name; fi
        echo "hung after ${limit} s: $name${switches:+ (}$(echo $switches)${switches:+)}" >>"$log"
    fi
    grep -E "^  .*(ok|FAIL)$" "$log" >"$out/$name.table" || true
    local total fails
    total=$(wc -l <"$out/$name.table")
    fails=$(grep -c "FAIL$" "$out/$name.table")
    case $rc in
        0) row "$name" "pass" "$total checks" ;;
        77) row "$name" "SKIP" "$(grep -m1 SKIP "$log")" ;;
        *) row "$name" "FAIL rc=$rc" "$fails of $total checks failed; $(grep -E 'FAIL$|soju: .*(error|abort)|Assert|CUDA error' "$log" | head -2 | tr -s ' ' | tr '\n' ';')"
           status=1 ;;
    esac
}
rm -f "$out/failed_switches" "$out/failed_default" "$out/failed_other"
if [ "${CHECKS:-1}" != 0 ]; then
echo "== checks"
# Hopper's wgmma layouts one at a time (when the probe was built: gpu_bundle.sh, or nvcc below)
probe=$bin/wgmma_probe
if [ ! -x "$probe" ] && command -v nvcc >/dev/null && nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | grep -q '^9\.0'; then
    nvcc -O2 -std=c++17 -arch=sm_90a -I "$root/src" -I "$root/include" -o "$out/wgmma_probe" "$root/tools/wgmma_probe.cu" \
        >/dev/null 2>&1 && probe=$out/wgmma_probe
fi
if [ -x "$probe" ]; then
    CHECK_TIMEOUT=60 run_check wgmma_probe "$probe"
    # the warp-specialized kernels' deadlock watchdog: a deadlocked block must stop in seconds
    CHECK_TIMEOUT=30 run_check deadlock_watchdog "$probe" --deadlock
fi
run_check cuda_ops "$bin/ops_test_cuda_ops"
# on Hopper the head-dim-64 attention runs on wgmma; the mma.sync kernels too
SOJU_CUDA_WGMMA=0 run_check cuda_ops_mma_sync "$bin/ops_test_cuda_ops"
run_check cuda_step "$bin/model_test_cuda_step"
# the deterministic kernels (attention backward without atomics) too
SOJU_CUDA_DETERMINISTIC=1 run_check cuda_ops_deterministic "$bin/ops_test_cuda_ops"
SOJU_CUDA_DETERMINISTIC=1 run_check cuda_step_deterministic "$bin/model_test_cuda_step"
# Hopper: the attention backward's dQ by bulk reductions (off by default until timed)
if nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | grep -q '^9\.0'; then
    SOJU_CUDA_DQ_BULK=1 run_check cuda_ops_dq_bulk "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_DQ_BULK=1 run_check cuda_step_dq_bulk "$bin/model_test_cuda_step"
    # and the forward with two or three warpgroups (128, 192 queries) per block
    SOJU_CUDA_ATT_FWD128=1 run_check cuda_ops_fwd128 "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD128=1 run_check cuda_step_fwd128 "$bin/model_test_cuda_step"
    SOJU_CUDA_ATT_FWD192=1 run_check cuda_ops_fwd192 "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD192=1 SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_ATT_FWD_PIPE=1 run_check cuda_ops_fwd192_tma_pipe \
        "$bin/ops_test_cuda_ops" attention
    # and its tiles by TMA (both block sizes)
    SOJU_CUDA_ATT_FWD_TMA=1 run_check cuda_ops_fwd_tma "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_ATT_FWD128=1 run_check cuda_ops_fwd128_tma "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_TMA=1 run_check cuda_step_fwd_tma "$bin/model_test_cuda_step"
    # and with each tile's softmax overlapping the previous tile's P V (both block sizes, both loads)
    SOJU_CUDA_ATT_FWD_PIPE=1 run_check cuda_ops_fwd_pipe "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_PIPE=1 SOJU_CUDA_ATT_FWD128=1 run_check cuda_ops_fwd128_pipe "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_PIPE=1 SOJU_CUDA_ATT_FWD_TMA=1 run_check cuda_ops_fwd_pipe_tma "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_PIPE=1 SOJU_CUDA_ATT_FWD_TMA=1 SOJU_CUDA_ATT_FWD128=1 run_check cuda_ops_fwd128_pipe_tma \
        "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_PIPE=1 run_check cuda_step_fwd_pipe "$bin/model_test_cuda_step"
    # and the backward's query tiles by TMA (with atomics and with bulk dQ sums)
    SOJU_CUDA_ATT_BWD_TMA=1 run_check cuda_ops_bwd_tma "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_BWD_TMA=1 SOJU_CUDA_DQ_BULK=1 run_check cuda_ops_bwd_tma_bulk "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_BWD_TMA=1 run_check cuda_step_bwd_tma "$bin/model_test_cuda_step"
    # and the split backward (dK/dV, then dQ by its own kernel: no atomics), also deterministic and with TMA
    SOJU_CUDA_ATT_BWD_SPLIT=1 run_check cuda_ops_bwd_split "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_BWD_SPLIT=1 SOJU_CUDA_ATT_BWD_TMA=1 run_check cuda_ops_bwd_split_tma "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_BWD_SPLIT=1 run_check cuda_step_bwd_split "$bin/model_test_cuda_step"
    SOJU_CUDA_ATT_BWD_SPLIT=1 SOJU_CUDA_DETERMINISTIC=1 run_check cuda_step_bwd_split_det "$bin/model_test_cuda_step"
    # and the warp-specialized backward (a TMA producer warpgroup, two consumers sharing 128 keys;
    # a case with T not a multiple of 4 runs the default kernel)
    SOJU_CUDA_ATT_BWD_WS=1 run_check cuda_ops_bwd_ws "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_BWD_WS=1 SOJU_CUDA_DQ_BULK=1 run_check cuda_ops_bwd_ws_bulk "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_BWD_WS=128 run_check cuda_ops_bwd_ws128 "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_BWD_WS=1 run_check cuda_step_bwd_ws "$bin/model_test_cuda_step"
    # and the warp-specialized forward (a TMA producer warpgroup, 2 or 3 consumers; with the overlap too)
    SOJU_CUDA_ATT_FWD_WS=2 run_check cuda_ops_fwd_ws2 "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_WS=3 run_check cuda_ops_fwd_ws3 "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_WS=2 SOJU_CUDA_ATT_FWD_PIPE=1 run_check cuda_ops_fwd_ws2_pipe "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_WS=3 SOJU_CUDA_ATT_FWD_PIPE=1 run_check cuda_ops_fwd_ws3_pipe "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_WS=2 run_check cuda_step_fwd_ws "$bin/model_test_cuda_step"
    # and its GQA mode (consumers = runs of 2 or 3 query heads of a key/value head), with the overlap
    # too (op checks only: the step check's Llama has head dim 32, its GPT-2 no groups)
    SOJU_CUDA_ATT_FWD_WS=gqa run_check cuda_ops_fwd_ws_gqa "$bin/ops_test_cuda_ops" attention
    SOJU_CUDA_ATT_FWD_WS=gqa SOJU_CUDA_ATT_FWD_PIPE=1 run_check cuda_ops_fwd_ws_gqa_pipe "$bin/ops_test_cuda_ops" attention
fi
# the norm backwards fetching each warp's next row meanwhile (off by default until timed)
SOJU_CUDA_NORM_PREFETCH=1 run_check cuda_ops_norm_prefetch "$bin/ops_test_cuda_ops" norms
# the fused cross-entropy reading each row once into shared memory (off by default until timed)
SOJU_CUDA_CE_SMEM=1 run_check cuda_ops_ce_smem "$bin/ops_test_cuda_ops" crossentropy
# the attention backward's dq store applying the queries' rope backward (off by default until timed)
SOJU_CUDA_ROPE_FUSED=1 run_check cuda_ops_rope_fused "$bin/ops_test_cuda_ops" attention
SOJU_CUDA_ROPE_FUSED=1 run_check cuda_step_rope_fused "$bin/model_test_cuda_step"
# cuDNN's fused attention (causal, with documents and windows; off by default until timed; strict: a
# shape it refuses, or no libcudnn.so.9 on the library path, fails the check)
# (without timing every engine of every shape: one plan each, compiled once; the timing that
# matters is at the real shapes, in attn_bench and gpu_ab)
SOJU_CUDA_CUDNN=strict SOJU_CUDA_GEMM_TUNE=0 run_check cuda_ops_cudnn "$bin/ops_test_cuda_ops" attention
SOJU_CUDA_CUDNN=strict SOJU_CUDA_GEMM_TUNE=0 run_check cuda_step_cudnn "$bin/model_test_cuda_step"
run_check optimizer_ops "$bin/ops_test_optimizer_ops"
[ -x "$bin/model_test_recompute" ] && run_check recompute_cpu "$bin/model_test_recompute"
[ -x "$bin/ops_test_layer_ops" ] && run_check cpu_layer_ops "$bin/ops_test_layer_ops"
if [ "${SANITIZE:-0}" = 1 ] && command -v compute-sanitizer >/dev/null; then
    soju_env timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/ops_test_cuda_ops" \
        >"$out/sanitizer.log" 2>&1
    rc=$?
    row "memcheck cuda_ops" "$([ $rc = 0 ] && echo pass || echo "FAIL rc=$rc")" "$(grep -m1 'ERROR SUMMARY' "$out/sanitizer.log")"
fi
# soju pretrain on the GPU, and checkpoints moving between devices: a run on
# cuda, the same run twice (determinism), cuda stopped at 15 and resumed on
# cpu, cpu stopped at 15 and resumed on cuda, and all-cpu; the final losses
# must agree within bf16 noise. Needs the pretrain command (train branch).
pretrain_check() {
    local t="$out/pretrain" corpus=$root/scripts/demo_corpus.sh
    [ -f "$corpus" ] || corpus=$here/demo_corpus.sh
    local loads
    loads=$(soju_env "$bin/soju" version 2>&1) || { # (a library missing from SOJU_GPU_LIB, say)
        row "pretrain cpu<->cuda" "FAIL" "soju does not start: $(echo "$loads" | tail -1)"
        status=1
        return
    }
    soju_env "$bin/soju" pretrain --help >/dev/null 2>&1 && [ -f "$corpus" ] || {
        row "pretrain cpu<->cuda" "SKIP" "no pretrain command in this build"
        return
    }
    [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -gt 0 ] || {
        row "pretrain cpu<->cuda" "SKIP" "no GPU here (nvidia-smi lists none)"
        return
    }
    rm -rf "$t" && mkdir -p "$t"
    bash "$corpus" "$t/corpus.txt" 400
    soju_env "$bin/soju" tokenize --tokenizer bytes --quiet --out "$t/train.bin" "$t/corpus.txt" >"$t/shard.log" 2>&1
    cat >"$t/config.json" <<'JSON'
{"model_type": "llama", "vocab_size": 264, "hidden_size": 128, "intermediate_size": 256,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 128, "tie_word_embeddings": true}
JSON
    train() { # (seconds each: a hang must not eat the call)
        soju_env timeout 120 "$bin/soju" pretrain --config "$t/config.json" --train "$t/train.bin" --micro-batch 8 --seq-len 128 \
            --steps 40 --lr 3e-3 --warmup 4 --save-every 20 --eval-every 0 --quiet "$@"
    }
    local ok=1 detail
    # two runs with the deterministic kernels must give the same bits
    SOJU_CUDA_DETERMINISTIC=1 train --device cuda --out "$t/gpu" >"$t/gpu.log" 2>&1 || ok=0
    SOJU_CUDA_DETERMINISTIC=1 train --device cuda --out "$t/gpu2" >"$t/gpu2.log" 2>&1 || ok=0
    train --device cuda --out "$t/g2c" --stop-at 20 >"$t/g2c.log" 2>&1 &&
        soju_env timeout 120 "$bin/soju" pretrain --resume "$t/g2c" --device cpu --quiet >>"$t/g2c.log" 2>&1 || ok=0
    train --device cpu --out "$t/c2g" --stop-at 20 >"$t/c2g.log" 2>&1 &&
        soju_env timeout 120 "$bin/soju" pretrain --resume "$t/c2g" --device cuda --quiet >>"$t/c2g.log" 2>&1 || ok=0
    train --device cpu --out "$t/cpu" >"$t/cpu.log" 2>&1 || ok=0
    last() { grep '"loss"' "$t/$1/metrics.jsonl" 2>/dev/null | tail -1 | sed 's/.*"loss":\([0-9.]*\).*/\1/'; }
    first=$(sed -n '/"loss"/{s/.*"loss":\([0-9.]*\).*/\1/p;q}' "$t/cpu/metrics.jsonl" 2>/dev/null)
    detail="loss ${first:-?} -> cpu $(last cpu) cuda $(last gpu) cuda->cpu $(last g2c) cpu->cuda $(last c2g)"
    local g=$(last gpu) c=$(last cpu) a=$(last g2c) b=$(last c2g)
    awk -v g="${g:-0}" -v c="${c:-0}" -v a="${a:-0}" -v b="${b:-0}" -v f="${first:-0}" 'BEGIN {
        ok = c > 0 && c < f - 1.0;
        for (i = 0; i < 3; i++) { x = (i == 0 ? g : i == 1 ? a : b); d = x - c; if (d < 0) d = -d; if (d > 0.03 * c) ok = 0 }
        exit !ok }' || ok=0
    cmp -s "$t/gpu/checkpoints/step_00000040/model.safetensors" "$t/gpu2/checkpoints/step_00000040/model.safetensors" ||
        { ok=0; detail="$detail; two cuda runs differ"; }
    detail="$detail; cuda repeat (deterministic) bit-identical: $(cmp -s "$t/gpu/checkpoints/step_00000040/model.safetensors" \
        "$t/gpu2/checkpoints/step_00000040/model.safetensors" && echo yes || echo no)"
    rm -rf "$t"/*/checkpoints "$t"/*.bin "$t/corpus.txt" # keep the logs and metrics only
    if [ $ok = 1 ]; then row "pretrain cpu<->cuda" "pass" "$detail"
    else row "pretrain cpu<->cuda" "FAIL" "$detail"; status=1; fi
}
if [ -n "${SOJU_DEADLINE_AT:-}" ] && [ "$(date +%s)" -ge "$((SOJU_DEADLINE_AT - 60))" ]; then
    row "pretrain cpu<->cuda" "SKIP" "the call's deadline is near"
else
    pretrain_check
fi

echo "   relative errors (gpu vs cpu):"
cat "$out/cuda_ops.table" "$out/cuda_step.table" 2>/dev/null
fi # CHECKS

# ---------------------------------------------------------------- benchmark
bench_rows=()
if [ "${BENCH:-1}" != 0 ]; then
    micro=${MICRO:-64} batch=${BATCH:-64} seq=${SEQ:-1024} steps=${STEPS:-10} warmup=${WARMUP:-3}
    for arch in ${ARCHS:-gpt2 llama}; do
        echo "== benchmark $arch: soju"
        soju_env timeout 180 "$bin/gpu_train" --arch "$arch" --micro "$micro" --batch "$batch" --seq "$seq" \
            --steps "$steps" --warmup "$warmup" >"$out/bench_soju_$arch.log" 2>&1
        s1=$(grep -m1 '^RESULT' "$out/bench_soju_$arch.log")
        [ -n "$s1" ] || tail -5 "$out/bench_soju_$arch.log"
        t=""
        if [ "${TORCH:-1}" != 0 ] && python3 -c "import torch" 2>/dev/null; then
            echo "== benchmark $arch: torch.compile"
            PYTHONUNBUFFERED=1 timeout 300 python3 "$torch_bench" --arch "$arch" --micro "$micro" --batch "$batch" \
                --seq "$seq" --steps "$steps" --warmup "$warmup" >"$out/bench_torch_$arch.log" 2>&1
            t=$(grep -m1 '^RESULT' "$out/bench_torch_$arch.log")
            [ -n "$t" ] || tail -5 "$out/bench_torch_$arch.log"
        fi
        # soju again after the peer (runs interleaved); the table shows the mean of the two
        echo "== benchmark $arch: soju (again)"
        soju_env timeout 180 "$bin/gpu_train" --arch "$arch" --micro "$micro" --batch "$batch" --seq "$seq" \
            --steps "$steps" --warmup "$warmup" >"$out/bench_soju2_$arch.log" 2>&1
        s2=$(grep -m1 '^RESULT' "$out/bench_soju2_$arch.log")
        field() { echo "$1" | tr ' ' '\n' | sed -n "s|^$2=||p"; }
        mean() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.6g", (a + b) / 2; else if (a > 0) print a; else print b }'; }
        st=$(mean "$(field "$s1" tok/s)" "$(field "$s2" tok/s)") sm=$(mean "$(field "$s1" mfu)" "$(field "$s2" mfu)")
        tt=$(field "$t" tok/s) tm=$(field "$t" mfu)
        echo "   soju runs: $(field "$s1" tok/s) and $(field "$s2" tok/s) tokens/s"
        ratio=$(awk -v a="${st:-0}" -v b="${tt:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.3f", a / b; else print "-" }')
        bench_rows+=("$(printf '%-6s %12.0f %7s %12s %7s %8s   micro %s x %s, batch %s' "$arch" "${st:-0}" \
            "$(awk -v m="${sm:-0}" 'BEGIN { printf "%.1f%%", 100 * m }')" "${tt:--}" \
            "$(awk -v m="${tm:-0}" 'BEGIN { printf "%.1f%%", 100 * m }')" "$ratio" "$micro" "$seq" "$batch")")
        if [ "${PROFILE:-0}" = 1 ]; then
            soju_env "$bin/gpu_train" --arch "$arch" --micro "$micro" --batch "$micro" --seq "$seq" --steps 4 --warmup 2 \
                --profile >"$out/profile_$arch.log" 2>&1
        fi
    done
fi

# ------------------------------------------- soju pretrain at GPT-2 124M scale
# What a user of the CLI gets (the trainer: data loader, gradient norm and
# clipping, schedule, logging; here on byte tokens of the demo corpus), with
# and without document masking. PRETRAIN_BENCH=1 turns it on.
if [ "${PRETRAIN_BENCH:-0}" = 1 ]; then
    t="$out/pretrain_bench"
    rm -rf "$t" && mkdir -p "$t"
    corpus=$root/scripts/demo_corpus.sh
    [ -f "$corpus" ] || corpus=$here/demo_corpus.sh
    bash "$corpus" "$t/corpus.txt" 20000 # about 5 MB: more than the 1.3M tokens of 20 steps
    soju_env "$bin/soju" tokenize --tokenizer bytes --quiet --out "$t/train.bin" "$t/corpus.txt" >"$t/tok.log" 2>&1
    cat >"$t/gpt2.json" <<'JSON'
{"model_type": "gpt2", "vocab_size": 50304, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
 "tie_word_embeddings": true}
JSON
    for mask in no-doc-mask doc-mask; do
        flag=""
        [ $mask = no-doc-mask ] && flag=--no-doc-mask
        soju_env "$bin/soju" pretrain --device cuda --config "$t/gpt2.json" --train "$t/train.bin" --micro-batch 64 \
            --seq-len 1024 --steps 20 --warmup 2 --eval-every 0 --quiet $flag --out "$t/$mask" >"$t/$mask.log" 2>&1
        line=$(grep -m1 "tokens/s" "$t/$mask.log")
        row "pretrain gpt2-124M $mask" "$([ -n "$line" ] && echo ran || echo FAIL)" \
            "${line:-$(tail -1 "$t/$mask.log")} (20 steps incl. the first)"
    done
    rm -rf "$t"/*/checkpoints "$t"/*.bin "$t/corpus.txt"
fi

# ---------------------------------------------------------------- table
echo
echo "================ soju CUDA check ================"
printf '%-28s %-10s %s\n' "check" "result" "detail"
for r in "${rows[@]}"; do echo "$r"; done
if [ ${#bench_rows[@]} -gt 0 ]; then
    echo
    printf '%-6s %12s %7s %12s %7s %8s\n' "model" "soju tok/s" "MFU" "torch tok/s" "MFU" "ratio"
    for r in "${bench_rows[@]}"; do echo "$r"; done
fi
if [ "${PROFILE:-0}" = 1 ]; then
    for f in "$out"/profile_*.log; do
        [ -f "$f" ] && { echo; echo "$(basename "$f" .log):"; sed -n '/soju cuda profile/,$p' "$f"; }
    done
fi
exit $status
