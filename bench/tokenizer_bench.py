"""Tokenizer benchmarks against the named peers, measured in the same run.

encode: throughput in MB/s of soju vs Hugging Face tokenizers vs tiktoken,
  same vocabulary (Llama 3: the official rank file for soju and tiktoken; the
  same vocabulary written as tokenizer.json by `soju tokenizer convert` for
  tokenizers), same text (Korean and English separately, line by line), on 1
  and 2 threads.
train: seconds to train a 32k byte-level BPE vocabulary on the same corpus
  files: `soju tokenizer train` vs tokenizers' BpeTrainer (same Llama 3
  pre-tokenizer regex, byte alphabet, specials) vs sentencepiece's spm_train
  (--model_type=bpe).

Runs are interleaved (soju, peer, peer, soju, ...) and the median of each is
reported with the ratios. Each peer runs in its own process so thread
settings apply (RAYON_NUM_THREADS for tokenizers).

    python3 bench/tokenizer_bench.py encode [--rounds 5]
    python3 bench/tokenizer_bench.py train [--rounds 3]

The corpus is built from ../shared/data (Korean: comments, NSMC reviews,
KorQuAD paragraphs, KorNLI sentences; English: Gutenberg, Shakespeare,
Wikipedia, C4 samples) into a temporary folder.
"""
import argparse
import glob
import json
import os
import time
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

PEER = r'''
import sys, time, os
kind, path, threads, ranks, tjson = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
text = open(path, encoding="utf-8", errors="surrogateescape").read()
lines = text.split("\n")
nbytes = len(text.encode("utf-8", "surrogateescape"))
if kind == "tiktoken":
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    enc = tiktoken.Encoding("llama3", pat_str=sys.argv[6], mergeable_ranks=load_tiktoken_bpe(ranks), special_tokens={})
    run = lambda: enc.encode_ordinary_batch(lines, num_threads=threads)
else:
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tjson)
    run = lambda: [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]
t0 = time.perf_counter(); out = run(); dt = time.perf_counter() - t0
print("%s MB/s %.2f tokens %d" % (kind, nbytes / dt / 1e6, sum(map(len, out))))
'''


def run_soju(binary, ranks, path, threads):
    out = subprocess.run([binary, "--tokenizer", ranks, "--file", path, "--threads", str(threads), "--repeat", "1"],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[2]), int(out[4])


def run_peer(kind, path, threads, ranks, tjson):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    out = subprocess.run([sys.executable, "-c", PEER, kind, path, str(threads), ranks, tjson, LLAMA3_RE],
                         capture_output=True, text=True, check=True, env=env).stdout.split()
    return float(out[2]), int(out[4])


def zstd_text(path):
    return subprocess.run(["zstd", "-dcq", path], capture_output=True, check=True).stdout.decode("utf-8")


def make_corpus(shared, out):
    d = os.path.join(shared, "data")
    parts = {
        "ko_comments": zstd_text(os.path.join(d, "ko_hate_speech_comments/unlabeled/unlabeled_comments_5.txt.zst")),
        "ko_nsmc": "\n".join(l.split("\t")[1] for l in zstd_text(
            os.path.join(d, "ko_nsmc_reviews_sample/nsmc_raw_sample.tsv.zst")).split("\n") if "\t" in l),
        "ko_korquad": open(os.path.join(d, "ko_korquad_v1/contexts.txt"), encoding="utf-8").read(),
        "ko_nli": "\n".join(f for p in sorted(glob.glob(os.path.join(d, "ko_kornli_korsts/KorNLI/*.tsv")))
                             for l in open(p, encoding="utf-8").read().split("\n") for f in l.split("\t")[:2]),
        "en_gutenberg": "".join(zstd_text(p) for p in sorted(glob.glob(os.path.join(d, "en_gutenberg_nltk/*.zst")))),
        "en_shakespeare": open(os.path.join(d, "en_tinyshakespeare/input.txt"), encoding="utf-8").read(),
        "en_wiki": open(os.path.join(d, "en_web_wiki_samples/wiki_demo.txt"), encoding="utf-8").read(),
        "en_c4": "\n".join(json.loads(l)["text"] for l in open(os.path.join(d, "en_web_wiki_samples/c4_demo.jsonl"),
                                                                 encoding="utf-8") if l.strip()),
    }
    for name, text in parts.items():
        with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(text)
    for lang in ("ko", "en"):
        with open(os.path.join(out, lang + "_all.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(t for n, t in parts.items() if n.startswith(lang)))
    return os.path.join(out, "ko_all.txt"), os.path.join(out, "en_all.txt")


HF_TRAIN = r'''
import sys, time
from tokenizers import Tokenizer, Regex, models, pre_tokenizers, trainers
files, pat = sys.argv[3:], sys.argv[2]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pat), "isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tr = trainers.BpeTrainer(vocab_size=int(sys.argv[1]), min_frequency=2, show_progress=False,
                         special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
t0 = time.perf_counter(); tok.train(files, tr); print(time.perf_counter() - t0, tok.get_vocab_size())
'''


SPM_TRAIN = r'''
import sys, time, sentencepiece as spm
vocab, threads, prefix, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
t0 = time.perf_counter()
spm.SentencePieceTrainer.train(input=",".join(files), model_prefix=prefix, vocab_size=vocab, model_type="bpe",
                               num_threads=threads, byte_fallback=True, max_sentence_length=1000000,
                               input_sentence_size=0, minloglevel=2)
print(time.perf_counter() - t0)
'''


def timed(cmd, env=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def train_bench(args, files, tmp):
    vocab = 32000
    import sentencepiece
    spm_version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "sentencepiece"], capture_output=True,
                                 text=True).stdout or "?"
    print("peers: tokenizers BpeTrainer; spm_train %s (Debian CLI); sentencepiece %s (pip, Python API)"
          % (spm_version, sentencepiece.__version__))
    print("| threads | soju s | tokenizers s | spm_train s | sentencepiece (pip) s | tokenizers/soju | spm_train/soju "
          "| sentencepiece/soju |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in (1, 2):
        res = {"soju": [], "tokenizers": [], "spm_train": [], "spm_pip": []}
        for _ in range(args.rounds):
            res["soju"].append(timed([os.path.join(args.build, "soju"), "tokenizer", "train", "--quiet", "--vocab-size",
                                      str(vocab), "--threads", str(threads), "--out",
                                      os.path.join(tmp, "soju.json")] + files))
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
            out = subprocess.run([sys.executable, "-c", HF_TRAIN, str(vocab), LLAMA3_RE] + files, check=True,
                                 capture_output=True, text=True, env=env).stdout.split()
            res["tokenizers"].append(float(out[0]))
            res["spm_train"].append(timed(["spm_train", "--input=" + ",".join(files), "--model_type=bpe",
                                           "--vocab_size=%d" % vocab, "--num_threads=%d" % threads,
                                           "--model_prefix=" + os.path.join(tmp, "spm"), "--byte_fallback=true",
                                           "--max_sentence_length=1000000", "--input_sentence_size=0",
                                           "--minloglevel=2"]))
            out = subprocess.run([sys.executable, "-c", SPM_TRAIN, str(vocab), str(threads), os.path.join(tmp, "spm2")]
                                 + files, check=True, capture_output=True, text=True).stdout.split()
            res["spm_pip"].append(float(out[0]))
        m = {k: statistics.median(v) for k, v in res.items()}
        print("| %d | %.2f | %.2f | %.2f | %.2f | %.2fx | %.2fx | %.2fx |" % (
            threads, m["soju"], m["tokenizers"], m["spm_train"], m["spm_pip"], m["tokenizers"] / m["soju"],
            m["spm_train"] / m["soju"], m["spm_pip"] / m["soju"]), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["encode", "train"])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--ranks", default=None, help="Llama 3 rank file (default: shared/data/tok_llama3/tokenizer.model)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    args.ranks = args.ranks or os.path.join(args.shared, "data", "tok_llama3", "tokenizer.model")
    soju = os.path.join(args.build, "soju")
    bench = os.path.join(args.build, "bench_tokenizer")
    with tempfile.TemporaryDirectory() as tmp:
        args.ko, args.en = make_corpus(args.shared, tmp)
        if args.what == "train":
            files = sorted(f for f in glob.glob(os.path.join(tmp, "*.txt")) if not f.endswith("_all.txt"))
            print("corpus: %d files, %.1f MB" % (len(files), sum(os.path.getsize(f) for f in files) / 1e6))
            train_bench(args, files, tmp)
            return
        print("text: ko %.1f MB, en %.1f MB" % (os.path.getsize(args.ko) / 1e6, os.path.getsize(args.en) / 1e6))
        tjson = os.path.join(tmp, "tokenizer.json")
        subprocess.run([soju, "tokenizer", "convert", "--tokenizer", args.ranks, "--out", tjson], check=True,
                       capture_output=True)
        print("| text | threads | soju MB/s | tiktoken MB/s | tokenizers MB/s | soju/tiktoken | soju/tokenizers | tokens equal |")
        print("|---|---|---|---|---|---|---|---|")
        for lang, path in (("ko", args.ko), ("en", args.en)):
            for threads in (1, 2):
                res = {"soju": [], "tiktoken": [], "tokenizers": []}
                toks = {}
                for _ in range(args.rounds):
                    r, n = run_soju(bench, args.ranks, path, threads)
                    res["soju"].append(r); toks["soju"] = n
                    for kind in ("tiktoken", "tokenizers"):
                        r, n = run_peer(kind, path, threads, args.ranks, tjson)
                        res[kind].append(r); toks[kind] = n
                m = {k: statistics.median(v) for k, v in res.items()}
                same = "yes" if len(set(toks.values())) == 1 else "no: %s" % toks
                print("| %s | %d | %.2f | %.2f | %.2f | %.2fx | %.2fx | %s |" % (
                    lang, threads, m["soju"], m["tiktoken"], m["tokenizers"], m["soju"] / m["tiktoken"],
                    m["soju"] / m["tokenizers"], same), flush=True)


if __name__ == "__main__":
    main()
