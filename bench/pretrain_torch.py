#!/usr/bin/env python3
"""The PyTorch peer of `soju pretrain` for bench/pretrain_vs_torch.py.

The same decoder as soju, built from the same Hugging Face config.json: Llama
style (RMSNorm, RoPE, SwiGLU, grouped-query attention, tied or untied
embeddings) or GPT-2 (LayerNorm, learned positions, tanh-GELU, biases). Eager
PyTorch with its default CPU kernels (scaled_dot_product_attention for the
causal attention), float32, AdamW with weight decay on matrices only, gradient
clipping at 1.0, reading (B, T+1) windows from a soju token shard.

Prints one JSON line: step times after warm-up, tokens/s, peak RSS.
"""
import argparse
import json
import math
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, head_dim, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    ang = torch.cat([ang, ang], dim=-1)  # HF "rotate_half" layout
    return ang.cos(), ang.sin()


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Block(nn.Module):
    def __init__(self, c, llama):
        super().__init__()
        C, self.llama = c["hidden_size"], llama
        self.nh, self.nkv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        bias = not llama or c.get("attention_bias", False)
        if llama:
            self.ln1, self.ln2 = RMSNorm(C, c["eps"]), RMSNorm(C, c["eps"])
            self.gate = nn.Linear(C, c["intermediate_size"], bias=False)
            self.up = nn.Linear(C, c["intermediate_size"], bias=False)
            self.down = nn.Linear(c["intermediate_size"], C, bias=False)
        else:
            self.ln1, self.ln2 = nn.LayerNorm(C, eps=c["eps"]), nn.LayerNorm(C, eps=c["eps"])
            self.fc = nn.Linear(C, c["intermediate_size"])
            self.proj = nn.Linear(c["intermediate_size"], C)
        self.q = nn.Linear(C, self.nh * self.hd, bias=bias)
        self.k = nn.Linear(C, self.nkv * self.hd, bias=bias)
        self.v = nn.Linear(C, self.nkv * self.hd, bias=bias)
        self.o = nn.Linear(self.nh * self.hd, C, bias=not llama)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        if self.llama:
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if self.nkv != self.nh:
            k = k.repeat_interleave(self.nh // self.nkv, dim=1)
            v = v.repeat_interleave(self.nh // self.nkv, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
        h = self.ln2(x)
        if self.llama:
            return x + self.down(F.silu(self.gate(h)) * self.up(h))
        return x + self.proj(F.gelu(self.fc(h), approximate="tanh"))


class Model(nn.Module):
    def __init__(self, c, T):
        super().__init__()
        self.llama = c["model_type"] != "gpt2"
        C = c["hidden_size"]
        self.embed = nn.Embedding(c["vocab_size"], C)
        self.pos = None if self.llama else nn.Embedding(c["max_position_embeddings"], C)
        self.blocks = nn.ModuleList(Block(c, self.llama) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(C, c["eps"]) if self.llama else nn.LayerNorm(C, eps=c["eps"])
        self.head = nn.Linear(C, c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.head.weight = self.embed.weight
        cos, sin = rope_tables(T, c["head_dim"], c["rope_theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=c["initializer_range"])

    def forward(self, idx):
        T = idx.shape[1]
        x = self.embed(idx)
        if self.pos is not None:
            x = x + self.pos(torch.arange(T))
        for b in self.blocks:
            x = b(x, self.cos[:T], self.sin[:T])
        return self.head(self.norm(x))


def load_config(path):
    j = json.load(open(path))
    gpt2 = j.get("model_type") == "gpt2"
    C = j.get("n_embd", j.get("hidden_size"))
    nh = j.get("n_head", j.get("num_attention_heads"))
    return {
        "model_type": j.get("model_type", "llama"),
        "vocab_size": j["vocab_size"],
        "hidden_size": C,
        "intermediate_size": j.get("n_inner") or j.get("intermediate_size") or 4 * C,
        "num_hidden_layers": j.get("n_layer", j.get("num_hidden_layers")),
        "num_attention_heads": nh,
        "num_key_value_heads": nh if gpt2 else j.get("num_key_value_heads", nh),
        "head_dim": j.get("head_dim", C // nh),
        "max_position_embeddings": j.get("n_positions", j.get("max_position_embeddings", 2048)),
        "eps": j.get("layer_norm_epsilon", 1e-5) if gpt2 else j.get("rms_norm_eps", 1e-6),
        "rope_theta": j.get("rope_theta", 10000.0),
        "tie_word_embeddings": j.get("tie_word_embeddings", True),
        "attention_bias": j.get("attention_bias", False),
        "initializer_range": j.get("initializer_range", 0.02),
    }


def read_shard(path):
    head = np.fromfile(path, dtype=np.uint8, count=256)
    assert bytes(head[:8]) == b"SOJUTOK1", f"{path}: not a soju token shard"
    width = int(head[12:16].view(np.uint32)[0])
    n = int(head[32:40].view(np.uint64)[0])
    return np.memmap(path, dtype=np.uint16 if width == 2 else np.uint32, mode="r", offset=256, shape=(n,))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--shard", required=True)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the timing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    c = load_config(a.config)
    B, T = a.micro_batch, a.seq_len
    model = Model(c, T)
    decay = [p for p in model.parameters() if p.dim() == 2 and p is not model.embed.weight]
    rest = [p for p in model.parameters() if not any(p is d for d in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    tokens = read_shard(a.shard)
    n_samples = (len(tokens) - 1) // T
    pos = 0
    times, losses = [], []
    for step in range(a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(a.accum):
            rows = []
            for _ in range(B):
                s = (pos % n_samples) * T
                rows.append(torch.from_numpy(tokens[s:s + T + 1].astype(np.int64)))
                pos += 1
            batch = torch.stack(rows)
            x, y = batch[:, :-1], batch[:, 1:]
            logits = model(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1)) / a.accum
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:  # cosine schedule, as soju runs it
            g["lr"] = a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / a.steps)))
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(total)
    steady = times[a.skip:]
    tok = B * T * a.accum
    print(json.dumps({
        "params": sum(p.numel() for p in model.parameters()),
        "tokens_per_step": tok,
        "step_s": steady,
        "tokens_per_s": tok * len(steady) / sum(steady),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
