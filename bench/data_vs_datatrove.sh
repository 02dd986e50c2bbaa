#!/usr/bin/env bash
# Documents/s per core: soju vs datatrove, same input, interleaved runs, median.
#   bash bench/data_vs_datatrove.sh [runs]
# Input: C4 demo documents + Korean Wikipedia paragraphs + Korean comment
# documents from ../shared/data, repeated to about 10 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
D=../shared/data
T=${TMPDIR:-/tmp}/soju-bench-data; rm -rf "$T"; mkdir -p "$T"
python3 - "$D" "$T/in.jsonl" <<'PY'
import json, sys
d, out = sys.argv[1], sys.argv[2]
c4 = [json.loads(l)['text'] for l in open(f'{d}/en_web_wiki_samples/c4_demo.jsonl')]
wiki = [l for l in open(f'{d}/ko_korquad_v1/contexts.txt', encoding='utf-8').read().split('\n') if l.strip()]
com = [l.split('\t')[0] for l in open(f'{d}/ko_hate_speech_comments/labeled/train.tsv', encoding='utf-8').read().split('\n')[1:] if l]
docs = c4 + wiki + ['\n'.join(com[i:i+5]) for i in range(0, len(com), 5)]
with open(out, 'w') as f:
    for r in range(4):
        for i, x in enumerate(docs):
            f.write(json.dumps({'text': x, 'id': f'{r}-{i}'}, ensure_ascii=False) + '\n')
PY
N=$(wc -l < "$T/in.jsonl"); MB=$(du -m "$T/in.jsonl" | cut -f1)
echo "input: $N docs, ${MB} MB"
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for task in filters minhash; do
  : > "$T/soju.$task"; : > "$T/dt.$task"
  for r in $(seq "$RUNS"); do
    rm -rf "$T/o"; mkdir -p "$T/o"
    s=$(date +%s.%N)
    if [ $task = filters ]; then
      OMP_NUM_THREADS=1 build/soju data filter "$T/in.jsonl" --out "$T/o/k.jsonl" --threads 1 --quiet \
        --rules normalize,gopher_repetition,gopher_quality,c4,fineweb,pii > /dev/null
    else
      OMP_NUM_THREADS=1 build/soju data dedup "$T/in.jsonl" --out "$T/o/k.jsonl" --threads 1 --quiet > /dev/null
    fi
    e=$(date +%s.%N); echo "$e - $s" | bc >> "$T/soju.$task"
    rm -rf "$T/dt"; mkdir -p "$T/dt"
    python3 bench/datatrove_pipeline.py $task "$T/in.jsonl" "$T/dt" 2>/dev/null | tail -1 >> "$T/dt.$task"
  done
  S=$(med < "$T/soju.$task"); P=$(med < "$T/dt.$task")
  echo "$task: soju ${S}s ($(echo "$N / $S" | bc) docs/s)  datatrove ${P}s ($(echo "$N / $P" | bc) docs/s)  ratio $(echo "scale=1; $P / $S" | bc)x"
done
