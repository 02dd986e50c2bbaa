#!/usr/bin/env python3
"""The PyTorch peer of bench/bench_model_step.c: one full training step
(forward, cross-entropy, backward, AdamW) of the same model, timed the same
way, in float32 on the CPU with PyTorch's default kernels (MKL/oneDNN matmuls,
scaled_dot_product_attention as transformers uses by default, torch.optim.AdamW).

The model is written the way transformers writes LlamaForCausalLM and
GPT2LMHeadModel (separate q/k/v projections, RMSNorm in fp32, rotate_half
RoPE, repeat of key/value heads handled by SDPA's enable_gqa; GPT-2 Conv1D
through addmm), without transformers' Python overhead.

  python3 bench/model_step_torch.py --family llama --B 8 --T 256 --steps 3 --threads 2
prints:  torch <family> tok/s <x> step_s <s> peak_rss_mb <m>
"""
import argparse
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # kept identical to bench/bench_model_step.c
    "llama": dict(V=16384, C=256, L=8, NH=8, NKV=2, F=768, eps=1e-5, theta=10000.0),
    "gpt2": dict(V=16384, C=256, L=6, NH=8, NKV=8, F=1024, eps=1e-5, maxT=1024),
}


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, hd = c["C"], c["C"] // c["NH"]
        self.nh, self.nkv, self.hd = c["NH"], c["NKV"], hd
        self.input_layernorm = RMSNorm(C, c["eps"])
        self.q_proj = nn.Linear(C, self.nh * hd, bias=False)
        self.k_proj = nn.Linear(C, self.nkv * hd, bias=False)
        self.v_proj = nn.Linear(C, self.nkv * hd, bias=False)
        self.o_proj = nn.Linear(self.nh * hd, C, bias=False)
        self.post_attention_layernorm = RMSNorm(C, c["eps"])
        self.gate_proj = nn.Linear(C, c["F"], bias=False)
        self.up_proj = nn.Linear(C, c["F"], bias=False)
        self.down_proj = nn.Linear(c["F"], C, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o_proj(y.transpose(1, 2).reshape(B, T, C))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["V"], c["C"])
        self.layers = nn.ModuleList(LlamaLayer(c) for _ in range(c["L"]))
        self.norm = RMSNorm(c["C"], c["eps"])

    def forward(self, idx):
        T, hd = idx.shape[1], self.c["C"] // self.c["NH"]
        inv = 1.0 / (self.c["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(idx)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return F.linear(self.norm(x), self.embed_tokens.weight)  # tied head


class Conv1D(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.view(-1, x.shape[-1]), self.weight).view(shape)


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["C"]
        self.nh = c["NH"]
        self.ln_1 = nn.LayerNorm(C, eps=c["eps"])
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=c["eps"])
        self.c_fc = Conv1D(C, c["F"])
        self.mlp_proj = Conv1D(c["F"], C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["V"], c["C"])
        self.wpe = nn.Embedding(c["maxT"], c["C"])
        self.h = nn.ModuleList(GPT2Block(c) for _ in range(c["L"]))
        self.ln_f = nn.LayerNorm(c["C"], eps=c["eps"])

    def forward(self, idx):
        pos = torch.arange(idx.shape[1])
        x = self.wte(idx) + self.wpe(pos)
        for blk in self.h:
            x = blk(x)
        return F.linear(self.ln_f(x), self.wte.weight)  # tied head


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="llama", choices=sorted(CONFIGS))
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--T", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = CONFIGS[a.family]
    model = Llama(c) if a.family == "llama" else GPT2(c)
    for p in model.parameters():  # same init scale as soju's: N(0, 0.02) matrices
        if p.dim() == 2:
            nn.init.normal_(p, std=0.02)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n and "wte" not in n
             and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed" not in n and "wte" not in n
                                                            and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, c["V"], (a.B, a.T), generator=g)
    tgt = torch.randint(0, c["V"], (a.B, a.T), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(idx)
        loss = F.cross_entropy(logits.view(-1, c["V"]), tgt.view(-1))
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up: allocator, kernels, optimizer state
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t0) / a.steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {a.family} tok/s {a.B * a.T / dt:.1f} step_s {dt:.4f} peak_rss_mb {rss:.0f}")


if __name__ == "__main__":
    main()
