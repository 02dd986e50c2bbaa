"""Labeled tasks for bench/clf_vs_fasttext.sh, built from ../shared/data.
  python3 bench/clf_tasks.py SHARED_DATA OUT_DIR
writes OUT_DIR/<task>.train.jsonl and .valid.jsonl (fields text, label), 80/20:
  wiki_web  Korean Wikipedia sentences (wiki) vs news comments (web), balanced
  nsmc      movie reviews rated 9-10 (pos) vs 1-4 (neg), balanced (NSMC's rule)"""
import io, json, random, subprocess, sys

d, out = sys.argv[1], sys.argv[2]


def write(task, ex):
    random.Random(2).shuffle(ex)
    cut = len(ex) * 4 // 5
    for name, part in (("train", ex[:cut]), ("valid", ex[cut:])):
        with open(f"{out}/{task}.{name}.jsonl", "w", encoding="utf-8") as f:
            for x, y in part:
                f.write(json.dumps({"text": x, "label": y}, ensure_ascii=False) + "\n")
    print(f"{task}: {cut} train, {len(ex) - cut} valid")


com = [l.split("\t")[0] for l in open(f"{d}/ko_hate_speech_comments/labeled/train.tsv", encoding="utf-8").read().split("\n")[1:] if l]
wiki = [s.strip() + "." for l in open(f"{d}/ko_korquad_v1/contexts.txt", encoding="utf-8").read().split("\n")
        for s in l.split(". ") if len(s) > 20]
n = min(len(com), len(wiki))
write("wiki_web", [(c, "web") for c in com[:n]] + [(w, "wiki") for w in wiki[:n]])

raw = subprocess.run(["zstd", "-dc", f"{d}/ko_nsmc_reviews_sample/nsmc_raw_sample.tsv.zst"], capture_output=True, check=True).stdout
rows = [l.split("\t") for l in io.StringIO(raw.decode("utf-8")).read().split("\n")[1:] if l.count("\t") == 4]
pos = [r[4] for r in rows if r[2] in ("9", "10") and r[4].strip()]
neg = [r[4] for r in rows if r[2] in ("1", "2", "3", "4") and r[4].strip()]
random.Random(3).shuffle(pos)
n = min(len(pos), len(neg))
write("nsmc", [(x, "pos") for x in pos[:n]] + [(x, "neg") for x in neg[:n]])
