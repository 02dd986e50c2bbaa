#!/usr/bin/env bash
# Every CPU benchmark, each against its named peer in the same run (ratios go
# to bench/RESULTS.md by hand, with machine and date). Peers are Python tools
# installed from PyPI for benchmarking only:
#   pip install torch tokenizers tiktoken sentencepiece fasttext-wheel datatrove spacy nltk 'xxhash<4'
# and the Debian package `sentencepiece` (spm_train). GPU benchmarks run on a
# GPU machine through scripts/gpu_check.sh.
#   bash bench/run.sh [name...]    names: pretrain model_step tokenizer data classifier dist
set -uo pipefail
cd "$(dirname "$0")/.."
make build >/dev/null || exit 1
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(pretrain model_step tokenizer data classifier dist)
status=0
for name in "${want[@]}"; do
  echo "================ $name"
  case "$name" in
    pretrain)   python3 bench/pretrain_vs_torch.py --rounds 3 ;;
    model_step) build/bench_model_step --runs 5 --steps 3 ;;
    tokenizer)  python3 bench/tokenizer_bench.py encode --rounds 5 && python3 bench/tokenizer_bench.py train --rounds 3 ;;
    data)       bash bench/data_vs_datatrove.sh 3 ;;
    classifier) bash bench/clf_vs_fasttext.sh 5 ;;
    dist)       bash bench/dist_cpu.sh 5 ;;  # 2 MPI ranks vs 1 process (soju against itself)
    *) echo "unknown benchmark '$name'"; status=2; continue ;;
  esac || { echo "benchmark $name failed"; status=1; }
done
exit $status
