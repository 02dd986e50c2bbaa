#!/usr/bin/env bash
# Data-parallel training on CUDA in one command, on a machine with mpirun and
# one or more GPUs: build (or use SOJU_GPU_BIN), train a tiny Llama several
# ways for 6 steps, and print a table comparing each run's final parameters
# with one plain process (no mpirun) whose micro-batch is the whole batch.
#
#   bash scripts/dist_gpu_check.sh
#   SOJU_GPU_BIN=build bash scripts/dist_gpu_check.sh     # prebuilt soju
#   DEVICE=cpu SOJU_GPU_BIN=build bash scripts/dist_gpu_check.sh  # the same runs on the CPU
#
# A GPU machine without MPI: `MPI=1 bash scripts/gpu_bundle.sh` on a Debian
# machine packs OpenMPI beside the binaries (see the end of that script).
# Ran on one H100 on 2026-11-23 (bench/RESULTS.md): the one-GPU cases pass.
#
# Runs (B = 4 sequences per rank, global batch 8):
#   nccl-1        mpirun -np 1: NCCL with one rank, per-layer sums on its own
#                 stream; must be bit-identical to the plain run
#   nccl-1-zero1  the same with --zero 1
#   mpi-2         2 ranks sharing GPU 0 through MPI host copies
#                 (SOJU_DIST_COMM=mpi; NCCL refuses two ranks on one GPU)
#   mpi-2-zero1   the same with --zero 1
#   mpi-2-acc     the same with 2 micro-batches of 2 per rank (accumulation)
#   nccl-2[-zero1|-nooverlap|-acc] with 2 or more GPUs: NCCL between GPUs 0, 1
#   nccl-2-hostid[...]  with one GPU: 2 NCCL ranks sharing it, each rank told
#                 it is on a host of its own (NCCL_HOSTID), so NCCL joins them
#                 as two machines over its socket transport on the loopback
#                 interface instead of refusing a duplicate GPU. Slow (its
#                 proxy threads copy through host memory), but every NCCL call
#                 of soju's runs for real: the per-layer all-reduce on the NCCL
#                 stream during the backward, ZeRO-1's reduce and broadcast.
#                 The log's "via NET/Socket" lines (NCCL_DEBUG=INFO) show the
#                 transport NCCL chose.
#   hang-...      the first 2-rank NCCL launch above (MPI on the CPU), training
#                 on, when rank 1 is stopped (SIGSTOP, as a hung rank): rank
#                 0's watchdog must end the job within --dist-timeout (10 s)
#                 plus a margin, saying what it waited on (a collective on the
#                 host, or NCCL's work on the GPU stream), and the run must
#                 resume from its last checkpoint.
# What passes: with two ranks every sum is one fp32 addition a + b, the same
# bits whichever rank or library adds, and the deterministic kernels make
# each rank's gradients the same in every run. So every 2-rank NCCL run must
# equal its MPI twin (mpi-2, mpi-2-zero1, mpi-2-acc) bit for bit, parameters
# and optimizer state: a race between the streams (NCCL reading a gradient
# before it is written) would show there, where it would hide in the
# rounding-level distance from the 1-process reference. "half" (one process
# with half the batch) shows how far a wrong batch is from that reference.
set -u
device=${DEVICE:-cuda}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/soju-dist-gpu}
rm -rf "$out" && mkdir -p "$out"
bin=${SOJU_GPU_BIN:-}
if [ -z "$bin" ]; then
    echo "== building (CUDA on) into $root/build-gpu"
    cmake -S "$root" -B "$root/build-gpu" -DCMAKE_BUILD_TYPE=Release -DSOJU_CUDA=ON >"$out/build.log" 2>&1 &&
        cmake --build "$root/build-gpu" -j "$(nproc)" --target soju >>"$out/build.log" 2>&1 ||
        { tail -30 "$out/build.log"; echo "build failed"; exit 1; }
    bin=$root/build-gpu
fi
soju=$bin/soju
command -v mpirun >/dev/null || { echo "mpirun not found"; exit 1; }
$soju version | grep -q "mpi nccl" || echo "note: $($soju version) (no NCCL: GPU runs use MPI host copies)"
# OpenMPI in a container (as the CI test runs it): root, more ranks than cores,
# no cross-memory attach, loopback only; the caller's settings win
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMPI_MCA_btl_tcp_if_include=${OMPI_MCA_btl_tcp_if_include:-lo} OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
# the GPUs this process sees: CUDA_VISIBLE_DEVICES's list, else nvidia-smi's (whole GPUs, not MIG slices)
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)
[ -n "${CUDA_VISIBLE_DEVICES:-}" ] && gpus=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
[ "$device" = cuda ] || gpus=0

here=$(cd "$(dirname "$0")" && pwd)
corpus_script=$here/demo_corpus.sh # (beside this script in gpu_bundle.sh's bundle, else in scripts/)
bash "$corpus_script" "$out/corpus.txt" 400
$soju tokenize --tokenizer bytes --quiet --out "$out/train.bin" --val-out "$out/val.bin" --val-frac 0.1 "$out/corpus.txt" >/dev/null
cat >"$out/config.json" <<'EOF'
{"model_type": "llama", "vocab_size": 257, "hidden_size": 128, "intermediate_size": 256,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 64, "tie_word_embeddings": false}
EOF
# every run ends within 120 s: a hang in NCCL's setup must not eat a device call
train() { # name, launcher words..., -- , options...
    local name=$1
    shift
    local launch=()
    while [ "$1" != "--" ]; do launch+=("$1"); shift; done
    shift
    timeout 120 "${launch[@]}" $soju pretrain --config "$out/config.json" --train "$out/train.bin" --device "$device" \
        --threads 1 --seq-len 64 --steps 6 --lr 3e-3 --warmup 2 --quiet --out "$out/$name" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "  $name: $([ $rc = 0 ] && echo done || { [ $rc = 124 ] && echo "HUNG (killed after 120 s)" || echo "failed, rc $rc"; })"
    [ $rc = 0 ] || tail -3 "$out/$name.log" | sed 's/^/    /'
    return $rc
}
# bit-for-bit comparisons need the deterministic kernels (the default CUDA
# attention backward sums with atomics)
export SOJU_CUDA_DETERMINISTIC=1
mpi1=(mpirun -np 1 --bind-to none -x SOJU_CUDA_DETERMINISTIC)
mpi2=(mpirun -np 2 --bind-to none -x SOJU_CUDA_DETERMINISTIC)
# the 2-rank runs of one communicator (launcher words before soju, run-name prefix)
two_ranks() {
    local prefix=$1
    shift
    train $prefix "$@" -- --micro-batch 4 --batch-tokens 512 || { runs+=($prefix); return 1; }
    train $prefix-zero1 "$@" -- --micro-batch 4 --batch-tokens 512 --zero 1
    train $prefix-acc "$@" -- --micro-batch 2 --batch-tokens 512
    runs+=($prefix $prefix-zero1 $prefix-acc)
}
echo "== runs"
runs=()
train ref -- --micro-batch 8 --batch-tokens 512
train half -- --micro-batch 4 --batch-tokens 256 && runs+=(half)
train nccl-1 "${mpi1[@]}" -- --micro-batch 8 --batch-tokens 512 && runs+=(nccl-1)
train nccl-1-zero1 "${mpi1[@]}" -- --micro-batch 8 --batch-tokens 512 --zero 1 && runs+=(nccl-1-zero1)
SOJU_DIST_COMM=mpi two_ranks mpi-2 "${mpi2[@]}" -x SOJU_DIST_COMM
if [ "$gpus" -ge 2 ]; then
    two_ranks nccl-2 "${mpi2[@]}"
    SOJU_DIST_OVERLAP=0 train nccl-2-nooverlap "${mpi2[@]}" -x SOJU_DIST_OVERLAP -- --micro-batch 4 --batch-tokens 512 &&
        runs+=(nccl-2-nooverlap)
elif [ "$gpus" -eq 1 ] || [ "$device" = cpu ]; then # (on the CPU: the launch alone, MPI sums)
    per_rank_host=$out/per_rank_host.sh
    printf '#!/bin/sh\nexport NCCL_HOSTID=soju-rank-${OMPI_COMM_WORLD_RANK:-0}\nexec "$@"\n' >"$per_rank_host"
    mpi_hostid=("${mpi2[@]}" -x NCCL_SOCKET_IFNAME=lo -x NCCL_IB_DISABLE=1 -x NCCL_DEBUG=INFO)
    own_host=(sh "$per_rank_host")
    # (after a hang or failure of the first, the others are skipped)
    two_ranks nccl-2-hostid "${mpi_hostid[@]}" "${own_host[@]}" &&
        SOJU_DIST_OVERLAP=0 train nccl-2-hostid-nooverlap "${mpi_hostid[@]}" -x SOJU_DIST_OVERLAP "${own_host[@]}" -- \
            --micro-batch 4 --batch-tokens 512 && runs+=(nccl-2-hostid-nooverlap)
fi

# A hung rank: rank 1 stops mid-run; rank 0's watchdog must end the job.
hang_failed=0
hang() { # name, launcher words...
    local name=$1
    shift
    (timeout 120 "$@" $soju pretrain --config "$out/config.json" --train "$out/train.bin" --device "$device" \
        --threads 1 --seq-len 64 --steps 100000 --save-every 2 --micro-batch 4 --batch-tokens 512 --quiet \
        --dist-timeout 10 --out "$out/$name" >"$out/$name.log" 2>&1; echo $? >"$out/$name.rc") &
    local waited=0 pid="" took
    until ls "$out/$name/checkpoints" 2>/dev/null | grep -q step_ || [ -f "$out/$name.rc" ] || [ $waited -ge 600 ]; do
        sleep 0.1; waited=$((waited + 1))
    done
    sleep 1 # training on, past its first checkpoint
    for p in $(pgrep -f -- "--out $out/$name"); do
        grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2>/dev/null && pid=$p
    done
    if [ -z "$pid" ] || [ -f "$out/$name.rc" ]; then
        echo "  $name: FAIL: rank 1 was not training ($(tail -1 "$out/$name.log" 2>/dev/null))"
        hang_failed=1; wait; return 1
    fi
    local t0=$(date +%s.%N)
    kill -STOP "$pid"
    waited=0
    until [ -f "$out/$name.rc" ] || [ $waited -ge 900 ]; do sleep 0.1; waited=$((waited + 1)); done
    took=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
    kill -KILL "$pid" 2>/dev/null
    wait
    local rc=$(cat "$out/$name.rc" 2>/dev/null) said
    said=$(grep -m1 "soju: error: rank 0 of 2" "$out/$name.log" | sed 's/; another rank.*//')
    local last=$(ls "$out/$name/checkpoints" 2>/dev/null | grep step_ | sort | tail -1)
    if [ "${rc:-0}" = 0 ] || [ "${rc:-0}" = 124 ] || [ -z "$said" ] || [ -z "$last" ] ||
        ! python3 -c "import sys; sys.exit(float(sys.argv[1]) > 60)" "$took"; then
        echo "  $name: FAIL: rc ${rc:-none} ${took} s after rank 1 stopped; rank 0 said: ${said:-nothing}"
        hang_failed=1; return 1
    fi
    local step=$((10#${last#step_}))
    timeout 120 "$@" $soju pretrain --resume "$out/$name" --stop-at $((step + 2)) --device "$device" --threads 1 \
        --quiet >"$out/$name-resume.log" 2>&1
    rc=$?
    [ -d "$out/$name/checkpoints/$(printf 'step_%08d' $((step + 2)))" ] || rc=1 # (it must have saved there)
    echo "  $name: rank 1 stopped; the job ended ${took} s later: ${said#soju: error: }"
    echo "  $name: resumed from step $step to $((step + 2)): $([ $rc = 0 ] && echo done || echo "FAIL, rc $rc")"
    [ $rc = 0 ] || hang_failed=1
}
if [ "$gpus" -ge 2 ]; then
    hang hang-nccl-2 "${mpi2[@]}"
elif [ "$gpus" -eq 1 ] || [ "$device" = cpu ]; then
    hang hang-nccl-2-hostid "${mpi_hostid[@]}" "${own_host[@]}"
fi

echo "== $device: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) x $gpus GPU(s), $($soju version)"
HANG_FAILED=$hang_failed python3 - "$out" "${runs[@]}" <<'EOF'
import json, os, struct, sys
import numpy as np
out, runs = sys.argv[1], sys.argv[2:]
def load(run, file):
    p = f"{out}/{run}/checkpoints/step_00000006/{file}"
    try:
        b = open(p, "rb").read()
    except OSError:
        return None
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=np.float32)
            for k, v in h.items() if k != "__metadata__"}
def diff(a, b):
    if a is None or b is None or a.keys() != b.keys():
        return None
    return np.concatenate([np.abs(a[k] - b[k]) for k in a])
def twin(run):  # the MPI run a 2-rank NCCL run must equal bit for bit
    if not run.startswith("nccl-2"):
        return None
    return "mpi-2" + next((s for s in ("-zero1", "-acc") if run.endswith(s)), "")
ref = load("ref", "model.safetensors")
print(f"{'run':26} {'max |diff|':>11} {'mean |diff|':>11}  vs one process with the whole batch; 2-rank NCCL runs vs their MPI twin")
bad = 0
for run in runs:
    d = diff(load(run, "model.safetensors"), ref)
    if d is None:
        print(f"{run:26} {'missing':>11}")
        bad += 1
        continue
    note = "bit-identical" if d.max() == 0 else ""
    if run.startswith("nccl-1") and d.max() != 0:
        note, bad = "FAIL: one NCCL rank must equal the plain run", bad + 1
    t = twin(run)
    if t:
        same = [diff(load(run, f), load(t, f)) for f in ("model.safetensors", "optimizer.safetensors")]
        ok = all(x is not None and x.max() == 0 for x in same)
        note = f"= {t} bit for bit (parameters, optimizer)" if ok else f"FAIL: differs from {t}"
        bad += not ok
    print(f"{run:26} {d.max():11.3g} {d.mean():11.3g}  {note}")
bad += int(os.environ["HANG_FAILED"])  # the hung-rank run, reported above
print("dist check:", "PASS" if bad == 0 else f"{bad} FAILED")
EOF
# how NCCL joined the two ranks that share one GPU (NCCL_DEBUG=INFO lines of the hostid runs)
for run in "${runs[@]}"; do
    case $run in *hostid*) ;; *) continue ;; esac
    via=$(grep -o "via NET/[A-Za-z]*" "$out/$run.log" 2>/dev/null | sort | uniq -c | tr -s ' ' | tr '\n' ';')
    echo "$run: ${via:-no NCCL transport lines (MPI sums, or NCCL did not start: see $out/$run.log)}"
done
