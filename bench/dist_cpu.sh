#!/usr/bin/env bash
# Data-parallel training on the CPU: tokens/s of `soju pretrain` as 2 MPI
# ranks x 1 thread against 1 process x 2 threads (the peer: soju's own
# single-process training, with the same cores, the same global batch and
# the same micro-batch), on the demo Llama (scripts/demo_model.json).
#
#   bash bench/dist_cpu.sh [RUNS]        (default 3; runs alternate)
#
# Each run trains STEPS steps; its speed is the median tokens/s over the steps
# after the first two (metrics.jsonl). The table shows the median and the best
# run of each setup: on a shared machine the best is the least disturbed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
soju=${SOJU_BIN:-$root/build/soju}
runs=${1:-3}
steps=${STEPS:-12}
T=${TMPDIR:-/tmp}/soju-bench-dist
rm -rf "$T" && mkdir -p "$T"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none

bash "$root/scripts/demo_corpus.sh" "$T/corpus.txt" 3000
$soju tokenize --tokenizer bytes --quiet --out "$T/train.bin" "$T/corpus.txt" >/dev/null
common=(pretrain --config "$root/scripts/demo_model.json" --train "$T/train.bin" --seq-len 256 --micro-batch 4
        --batch-tokens 2048 --steps "$steps" --lr 1e-3 --quiet)

# median of the per-step tokens/s after step 2
speed() { grep '"loss"' "$1/metrics.jsonl" | tail -n +3 | sed 's/.*"tokens_per_s":\([0-9.]*\).*/\1/' | sort -g |
          awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
best() { sort -g | tail -1; }

: >"$T/one" && : >"$T/two" && : >"$T/two_zero" && : >"$T/single"
for i in $(seq "$runs"); do
    OMP_NUM_THREADS=1 $soju "${common[@]}" --threads 1 --out "$T/single_$i" >/dev/null 2>&1
    speed "$T/single_$i" >>"$T/single"
    OMP_NUM_THREADS=2 $soju "${common[@]}" --threads 2 --out "$T/one_$i" >/dev/null 2>&1
    speed "$T/one_$i" >>"$T/one"
    OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none $soju "${common[@]}" --threads 1 --out "$T/two_$i" >/dev/null 2>&1
    speed "$T/two_$i" >>"$T/two"
    OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none $soju "${common[@]}" --threads 1 --zero 1 \
        --out "$T/two_zero_$i" >/dev/null 2>&1
    speed "$T/two_zero_$i" >>"$T/two_zero"
done
row() { # label, file
    awk -v l="$1" -v m="$(median <"$2")" -v b="$(best <"$2")" -v m1="$(median <"$T/one")" -v b1="$(best <"$T/one")" \
        'BEGIN { printf "%-34s %10.0f %6.2f %10.0f %6.2f\n", l, m, m / m1, b, b / b1 }'
}
echo "demo Llama ($(sed -n 's/.*"hidden_size": \([0-9]*\).*/C=\1/p' "$root/scripts/demo_model.json"), T=256), global batch 8 x 256 tokens, $runs runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); tokens/s"
printf '%-34s %10s %6s %10s %6s\n' "setup" "median" "ratio" "best" "ratio"
row "1 process x 2 threads, 4 x 2 accum" "$T/one"
row "2 ranks x 1 thread, 4 x 1 (mpi)" "$T/two"
row "2 ranks x 1 thread, ZeRO-1" "$T/two_zero"
row "1 process x 1 thread (one core)" "$T/single"
awk -v two="$(best <"$T/two")" -v one="$(best <"$T/single")" \
    'BEGIN { printf "data-parallel efficiency (best): 2 ranks = %.0f%% of twice one core\n", 100 * two / (2 * one) }'
echo "(per-run: 1 process $(tr '\n' ' ' <"$T/one")| 2 ranks $(tr '\n' ' ' <"$T/two")| ZeRO-1 $(tr '\n' ' ' <"$T/two_zero")| 1 thread $(tr '\n' ' ' <"$T/single"))"
