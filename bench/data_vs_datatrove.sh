#!/usr/bin/env bash
# Documents/s per core: soju vs datatrove, same input, one thread each,
# runs interleaved (soju, datatrove, soju, ...), medians.
#   bash bench/data_vs_datatrove.sh [runs]
# Tasks (bench/datatrove_pipeline.py has the datatrove side):
#   filters  normalize + Gopher repetition + Gopher quality + C4 + FineWeb + PII
#   minhash  MinHash dedup, 5-grams, 14 bands x 8 rows (sign, bucket, cluster, filter)
# Inputs, built from ../shared/data:
#   mixed    C4 demo + Korean Wikipedia paragraphs + Korean comment documents, x4 (~11 MB)
#   en       C4 demo + Wikipedia articles + 3 Gutenberg books in 40-line documents, x2 (~7 MB)
# Each process is timed whole (start-up included) by /usr/bin/time: wall and
# CPU (user + sys) seconds. On the shared 2-core box wall time includes
# waiting for a core, so the per-core figure is documents / CPU seconds;
# both are printed. Needs: pip install datatrove spacy nltk 'xxhash<4'
# (datatrove 0.10 calls xxhash with str, which xxhash 4 refuses).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
D=../shared/data
T=${TMPDIR:-/tmp}/soju-bench-data; rm -rf "$T"; mkdir -p "$T"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
python3 - "$D" "$T" <<'PY'
import json, subprocess, sys
d, t = sys.argv[1], sys.argv[2]
def write(name, docs, copies):
    with open(f'{t}/{name}.jsonl', 'w', encoding='utf-8') as f:
        for r in range(copies):
            for i, x in enumerate(docs):
                f.write(json.dumps({'text': x, 'id': f'{r}-{i}'}, ensure_ascii=False) + '\n')
c4 = [json.loads(l)['text'] for l in open(f'{d}/en_web_wiki_samples/c4_demo.jsonl')]
wiki = [l for l in open(f'{d}/ko_korquad_v1/contexts.txt', encoding='utf-8').read().split('\n') if l.strip()]
com = [l.split('\t')[0] for l in open(f'{d}/ko_hate_speech_comments/labeled/train.tsv', encoding='utf-8').read().split('\n')[1:] if l]
write('mixed', c4 + wiki + ['\n'.join(com[i:i+5]) for i in range(0, len(com), 5)], 4)
enwiki = [l for l in open(f'{d}/en_web_wiki_samples/wiki_demo.txt', encoding='utf-8').read().split('\n') if l.strip()]
books = []
for b in ['austen-emma', 'melville-moby_dick', 'whitman-leaves']:
    lines = subprocess.run(['zstd', '-dc', f'{d}/en_gutenberg_nltk/{b}.txt.zst'], capture_output=True, check=True).stdout.decode().split('\n')
    books += ['\n'.join(lines[i:i+40]) for i in range(0, len(lines), 40)]
write('en', c4 + enwiki + books, 2)
PY
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# run NAME LOG CMD...: time CMD, append "wall cpu" to LOG
run() { local log=$1; shift; /usr/bin/time -f "%e %U %S" -o "$T/time" "$@" > /dev/null 2>&1 || { echo "failed: $*"; exit 1; }
        awk '{print $1, $2 + $3}' "$T/time" >> "$log"; }
echo "date: $(date -u +%Y-%m-%d); machine: $(nproc --all)-core $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "datatrove $(python3 -c 'import datatrove, importlib.metadata as m; print(m.version("datatrove"))'), spacy $(python3 -c 'import importlib.metadata as m; print(m.version("spacy"))'); $RUNS runs each, interleaved"
for input in mixed en; do
  IN="$T/$input.jsonl"; N=$(wc -l < "$IN"); MB=$(du -m "$IN" | cut -f1)
  for task in filters minhash; do
    : > "$T/soju.log"; : > "$T/dt.log"
    for r in $(seq "$RUNS"); do
      rm -rf "$T/o" "$T/dt"; mkdir -p "$T/o" "$T/dt"
      if [ $task = filters ]; then
        run "$T/soju.log" build/soju data filter "$IN" --out "$T/o/k.jsonl" --threads 1 --quiet \
          --rules normalize,gopher_repetition,gopher_quality,c4,fineweb,pii
      else
        run "$T/soju.log" build/soju data dedup "$IN" --out "$T/o/k.jsonl" --threads 1 --quiet
      fi
      run "$T/dt.log" python3 bench/datatrove_pipeline.py $task "$IN" "$T/dt"
    done
    SW=$(cut -d' ' -f1 "$T/soju.log" | med); SC=$(cut -d' ' -f2 "$T/soju.log" | med)
    PW=$(cut -d' ' -f1 "$T/dt.log" | med); PC=$(cut -d' ' -f2 "$T/dt.log" | med)
    KS=$(zstd -dcf "$T/o/k.jsonl" 2>/dev/null | wc -l)
    KP=$(find "$T/dt" -path '*kept*' -name '*.jsonl.gz' -exec zcat {} + 2>/dev/null | wc -l)
    [ $task = filters ] && KP=$(find "$T/dt" -maxdepth 1 -name '*.jsonl.gz' -exec zcat {} + | wc -l)
    printf '%-6s %-8s %6d docs %3d MB | soju %6.2f s wall %6.2f s cpu (%7.0f docs/s/core, kept %d) | datatrove %7.2f s wall %7.2f s cpu (%5.0f docs/s/core, kept %d) | ratio %5.1fx cpu, %5.1fx wall\n' \
      $input $task "$N" "$MB" "$SW" "$SC" "$(echo "$N / $SC" | bc -l)" "$KS" "$PW" "$PC" "$(echo "$N / $PC" | bc -l)" "$KP" \
      "$(echo "$PC / $SC" | bc -l)" "$(echo "$PW / $SW" | bc -l)"
  done
done
