"""Encoding throughput: soju vs Hugging Face tokenizers vs tiktoken, same
vocabulary (Llama 3: the official rank file for soju and tiktoken, the same
vocabulary written as tokenizer.json by `soju tokenizer convert` for
tokenizers), same text, line by line, on 1 and 2 threads. Runs are
interleaved (soju, tiktoken, tokenizers, soju, ...) and the median of each
is reported, with the ratios.

    python3 bench/tokenizer_bench.py --ko KO.txt --en EN.txt [--rounds 5]

Each peer runs in its own process so RAYON_NUM_THREADS applies to tokenizers.
"""
import argparse
import os
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ko", required=True)
    ap.add_argument("--en", required=True)
    ap.add_argument("--ranks", default=os.path.join(ROOT, "..", "shared", "data", "tok_llama3", "tokenizer.model"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    soju = os.path.join(args.build, "soju")
    bench = os.path.join(args.build, "bench_tokenizer")
    with tempfile.TemporaryDirectory() as tmp:
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
