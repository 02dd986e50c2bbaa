#!/usr/bin/env bash
# The classifier vs fastText (fasttext-wheel, same C++ code as the program) on
# the same labeled data and settings: accuracy, training and prediction time.
#   bash bench/clf_vs_fasttext.sh TRAIN.jsonl VALID.jsonl   (fields text, label)
set -euo pipefail
cd "$(dirname "$0")/.."
TR=$1; VA=$2; T=${TMPDIR:-/tmp}/soju-bench-clf; mkdir -p "$T"
ARGS="--dim 32 --bucket 262144 --word-ngrams 2 --minn 2 --maxn 3 --epoch 5 --lr 0.1 --threads 1"
s=$(date +%s.%N); build/soju data classify train --input "$TR" --model "$T/m.safetensors" $ARGS --quiet > /dev/null; e=$(date +%s.%N)
echo "soju train $(echo "$e - $s" | bc) s"
build/soju data classify test --model "$T/m.safetensors" "$VA"
python3 - "$TR" "$VA" "$T" <<'PY'
import json, sys, time, fasttext
tr, va, t = sys.argv[1:4]
def conv(src, dst):
    with open(dst, 'w') as f:
        for l in open(src):
            r = json.loads(l); f.write('__label__%s %s\n' % (r['label'], r['text'].replace('\n', ' ')))
conv(tr, t + '/tr.txt'); conv(va, t + '/va.txt')
s = time.time()
m = fasttext.train_supervised(t + '/tr.txt', dim=32, bucket=262144, wordNgrams=2, minn=2, maxn=3, epoch=5, lr=0.1, thread=1, verbose=0)
print('fasttext train %.3f s' % (time.time() - s))
lines = [l.split(' ', 1) for l in open(t + '/va.txt').read().splitlines()]
s = time.time()
pred = [m.f.predict(x + '\n', 1, 0.0, 'strict')[0][1] for _, x in lines]  # numpy-2-safe low-level call
el = time.time() - s
acc = sum(p == y for p, (y, _) in zip(pred, lines)) / len(lines)
print('fasttext examples %d accuracy %.4f (%.0f docs/s)' % (len(lines), acc, len(lines) / el))
PY
