#!/usr/bin/env python3
"""Training throughput: `soju pretrain` against a PyTorch loop, in one run.

For each model config (bench/configs/llama_10m.json, llama_10m_gqa.json,
gpt2_small.json) both trainers run the same job on the same token shard:
float32, B=8, T=256, one micro-batch per step, AdamW, clipping at 1.0, the
same number of threads. They are interleaved run by run (the box is shared),
each run's first steps are left out as warm-up, and the medians of the runs
are compared.

  python3 bench/pretrain_vs_torch.py [--rounds 3] [--steps 30] [--threads 2] [--soju build/soju]

Peak memory is each process's maximum resident set size (wait4 rusage).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write_shard(path, vocab, n, seed=0):
    """Random tokens in soju's shard format (no separator: one long document)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, size=n, dtype=np.uint32)
    width = 2 if vocab <= 65536 else 4
    head = np.zeros(256, dtype=np.uint8)
    head[:8] = np.frombuffer(b"SOJUTOK1", dtype=np.uint8)
    head[8:24] = np.array([1, width, vocab, 0xFFFFFFFF], dtype=np.uint32).view(np.uint8)
    head[32:48] = np.array([n, 1], dtype=np.uint64).view(np.uint8)
    with open(path, "wb") as f:
        f.write(head.tobytes())
        f.write(tokens.astype(np.uint16 if width == 2 else np.uint32).tobytes())


def run_rss(cmd, env):
    """Run a command and measure its peak RSS via wait4."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return out.decode(), usage.ru_maxrss / 1024


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def soju_run(a, cfg, shard, workdir, i, env):
    out_dir = os.path.join(workdir, f"soju_{os.path.basename(cfg)}_{i}")
    cmd = [a.soju, "pretrain", "--config", cfg, "--train", shard, "--micro-batch", str(a.micro_batch),
           "--seq-len", str(a.seq_len), "--steps", str(a.steps), "--threads", str(a.threads), "--no-doc-mask",
           "--no-shuffle", "--quiet", "--out", out_dir, "--keep", "1"] + a.soju_args
    _, rss = run_rss(cmd, env)
    steps = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl")) if '"loss"' in l]
    steady = steps[a.skip:]
    per_step = a.micro_batch * a.seq_len
    step_s = [per_step / s["tokens_per_s"] for s in steady]  # whole step: data, forward, backward, update
    return {"tokens_per_s": per_step * len(steady) / sum(step_s), "step_s": step_s, "tokens_per_step": per_step, "peak_rss_mb": rss, "first_loss": steps[0]["loss"],
            "last_loss": steps[-1]["loss"]}


def torch_run(a, cfg, shard, env):
    cmd = [sys.executable, os.path.join(HERE, "pretrain_torch.py"), "--config", cfg, "--shard", shard,
           "--micro-batch", str(a.micro_batch), "--seq-len", str(a.seq_len), "--steps", str(a.steps),
           "--skip", str(a.skip), "--threads", str(a.threads)]
    out, rss = run_rss(cmd, env)
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss_mb"] = rss
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--soju", default=os.path.join(HERE, "..", "build", "soju"))
    ap.add_argument("--configs", nargs="*", default=[os.path.join(HERE, "configs", c) for c in
                                                     ("llama_10m.json", "llama_10m_gqa.json", "gpt2_small.json")])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--skip", type=int, default=5)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--soju-args", nargs="*", default=[], help="extra soju pretrain options")
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    with tempfile.TemporaryDirectory(prefix="soju-bench-") as work:
        for cfg in a.configs:
            vocab = json.load(open(cfg))["vocab_size"]
            shard = os.path.join(work, "tokens.bin")
            write_shard(shard, vocab, a.micro_batch * a.seq_len * (a.steps + 1) + 1)
            soju, torch = [], []
            for i in range(a.rounds):  # interleaved: the box is shared
                soju.append(soju_run(a, cfg, shard, work, i, env))
                torch.append(torch_run(a, cfg, shard, env))
                print(f"  {os.path.basename(cfg)} round {i + 1}: soju {soju[-1]['tokens_per_s']:.0f} tok/s, "
                      f"torch {torch[-1]['tokens_per_s']:.0f} tok/s", file=sys.stderr)
            s_tps = statistics.median(r["tokens_per_s"] for r in soju)
            t_tps = statistics.median(r["tokens_per_s"] for r in torch)
            # The box is shared: besides the median of the runs' means, the 20th
            # percentile of all step times (pooled over runs) shows the speed
            # with the least interference.
            s_fast = soju[0]["tokens_per_step"] / quantile([t for r in soju for t in r["step_s"]], 0.2)
            t_fast = torch[0]["tokens_per_step"] / quantile([t for r in torch for t in r["step_s"]], 0.2)
            s_rss = statistics.median(r["peak_rss_mb"] for r in soju)
            t_rss = statistics.median(r["peak_rss_mb"] for r in torch)
            print(json.dumps({
                "config": os.path.basename(cfg), "params": torch[0]["params"], "torch": torch[0]["torch"],
                "threads": a.threads, "B": a.micro_batch, "T": a.seq_len, "steps": a.steps, "rounds": a.rounds,
                "soju_tokens_per_s": round(s_tps, 1), "torch_tokens_per_s": round(t_tps, 1),
                "ratio": round(s_tps / t_tps, 3),
                "soju_p20_tokens_per_s": round(s_fast, 1), "torch_p20_tokens_per_s": round(t_fast, 1),
                "p20_ratio": round(s_fast / t_fast, 3),
                "soju_peak_rss_mb": round(s_rss, 1), "torch_peak_rss_mb": round(t_rss, 1),
                "soju_runs": [round(r["tokens_per_s"]) for r in soju],
                "torch_runs": [round(r["tokens_per_s"]) for r in torch],
                "soju_loss": [round(soju[0]["first_loss"], 3), round(soju[0]["last_loss"], 3)],
                "torch_loss": [round(torch[0]["first_loss"], 3), round(torch[0]["last_loss"], 3)],
            }))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
