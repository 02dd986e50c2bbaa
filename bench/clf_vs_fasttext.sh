#!/usr/bin/env bash
# The classifier vs fastText (fasttext-wheel: the Python binding of the same
# C++ code as the `fasttext` program) on the same labeled data and the same
# hyper-parameters: accuracy, training time and prediction speed.
#   bash bench/clf_vs_fasttext.sh [runs] [TRAIN.jsonl VALID.jsonl]...
# Without files it builds the tasks of bench/clf_tasks.py from ../shared/data.
# Runs alternate soju and fastText; times are medians over the runs.
#   training:   soju's reported training time (reading the file each epoch,
#               excluding the model save) vs fasttext.train_supervised
#               (reading the file, excluding a save); one thread each
#   prediction: soju data classify test (reading + predicting, in C) vs
#               fastText's model.test (reading + predicting, in C++)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}; shift || true
T=${TMPDIR:-/tmp}/soju-bench-clf; mkdir -p "$T"
if [ $# -eq 0 ]; then
  python3 bench/clf_tasks.py ../shared/data "$T" > /dev/null
  set -- "$T/wiki_web.train.jsonl" "$T/wiki_web.valid.jsonl" "$T/nsmc.train.jsonl" "$T/nsmc.valid.jsonl"
fi
python3 - "$RUNS" "$T" "$@" <<'PY'
import json, re, statistics, subprocess, sys, time
import fasttext
runs, tmp, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
HP = dict(dim=32, bucket=262144, wordNgrams=2, minn=2, maxn=3, epoch=5, lr=0.1)
SOJU = ['--dim', '32', '--bucket', '262144', '--word-ngrams', '2', '--minn', '2', '--maxn', '3',
        '--epoch', '5', '--lr', '0.1', '--threads', '1', '--quiet']
print('hyper-parameters (both):', HP, 'loss softmax, 1 thread')

def to_fasttext(src, dst):
    with open(dst, 'w') as f:
        for l in open(src):
            r = json.loads(l)
            f.write('__label__%s %s\n' % (r['label'], r['text'].replace('\n', ' ')))

for tr, va in zip(files[0::2], files[1::2]):
    ftr, fva, model = tmp + '/ft.train.txt', tmp + '/ft.valid.txt', tmp + '/soju.safetensors'
    to_fasttext(tr, ftr); to_fasttext(va, fva)
    r = {k: [] for k in ('s_acc', 's_train', 's_pred', 'f_acc', 'f_train', 'f_pred')}
    for i in range(runs):
        out = subprocess.run(['build/soju', 'data', 'classify', 'train', '--input', tr, '--model', model,
                              '--seed', str(i + 1)] + SOJU, capture_output=True, text=True, check=True).stdout
        r['s_train'].append(float(re.search(r'labels, ([0-9.]+) s', out).group(1)))
        out = subprocess.run(['build/soju', 'data', 'classify', 'test', '--model', model, va],
                             capture_output=True, text=True, check=True).stdout
        m = re.search(r'examples (\d+)\s+accuracy ([0-9.]+)\s+\(([0-9]+) docs/s\)', out)
        n = int(m.group(1)); r['s_acc'].append(float(m.group(2))); r['s_pred'].append(float(m.group(3)))
        t = time.perf_counter()
        ft = fasttext.train_supervised(ftr, thread=1, verbose=0, seed=i + 1, **HP)
        r['f_train'].append(time.perf_counter() - t)
        t = time.perf_counter()
        n2, p1, _ = ft.test(fva)
        r['f_pred'].append(n2 / (time.perf_counter() - t)); r['f_acc'].append(p1)
    med = {k: statistics.median(v) for k, v in r.items()}
    name = tr.rsplit('/', 1)[-1].replace('.train.jsonl', '')
    print(f"{name}: {n} validation examples, {runs} runs (medians; accuracy min-max)")
    print(f"  soju     accuracy {med['s_acc']:.4f} ({min(r['s_acc']):.4f}-{max(r['s_acc']):.4f})  "
          f"train {med['s_train']:.3f} s  predict {med['s_pred']:,.0f} docs/s")
    print(f"  fastText accuracy {med['f_acc']:.4f} ({min(r['f_acc']):.4f}-{max(r['f_acc']):.4f})  "
          f"train {med['f_train']:.3f} s  predict {med['f_pred']:,.0f} docs/s")
    print(f"  soju - fastText: accuracy {100 * (med['s_acc'] - med['f_acc']):+.2f} points, training "
          f"{med['f_train'] / med['s_train']:.1f}x faster, prediction {med['s_pred'] / med['f_pred']:.1f}x faster")
PY
