"""The PyTorch peer of bench/gpu_train.c: the same models trained the same
way (random tokens, bf16 autocast over fp32 master weights, fused AdamW,
gradient accumulation to the global batch), compiled with torch.compile.

  python3 bench/gpt2_torch_compile.py --arch gpt2|llama [--micro 64] [--batch 64]
                                      [--seq 1024] [--steps 10] [--warmup 3]

gpt2:  a nanoGPT-style GPT-2 124M (vocab 50304, tied embeddings, tanh GELU,
       scaled_dot_product_attention, i.e. flash attention).
llama: transformers' LlamaForCausalLM at the same size (12 x 768, 12 heads,
       4 KV heads, SwiGLU 2048, RoPE, RMSNorm, tied embeddings, sdpa).
Prints one line  RESULT torch <arch> tok/s=<x> mfu=<x> step_ms=<x> micro=<B> accum=<n>
with MFU by 6N + 12 L C T FLOPs per token (N without position embeddings)
over 989 TFLOP/s, as gpu_train does.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, C, L, NH, T_MAX = 50304, 768, 12, 12, 1024


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, C), nn.Embedding(T_MAX, C)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for blk in self.blocks:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, VOCAB).float(), targets.view(-1))


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=C, intermediate_size=2048, num_hidden_layers=L,
                      num_attention_heads=NH, num_key_value_heads=4, max_position_embeddings=T_MAX,
                      rope_theta=10000.0, tie_word_embeddings=True, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg)

    class Wrap(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, idx, targets):
            logits = self.m(input_ids=idx).logits
            return F.cross_entropy(logits.view(-1, VOCAB).float(), targets.view(-1))

    return Wrap(model)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="gpt2", choices=["gpt2", "llama"])
    ap.add_argument("--micro", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = "cuda"
    model = (GPT2() if args.arch == "gpt2" else llama()).to(dev)
    n_all = sum(p.numel() for p in model.parameters())
    n = n_all - (T_MAX * C if args.arch == "gpt2" else 0)
    flops_tok = 6 * n + 12 * L * C * args.seq
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    step_fn = torch.compile(model)
    micro, accum = args.micro, args.batch // args.micro
    print(f"torch {torch.__version__} {args.arch}: {n_all / 1e6:.1f}M parameters, micro-batch {micro} x {args.seq}, "
          f"accumulation {accum}, {flops_tok / 1e9:.3f} GFLOP/token, {torch.cuda.get_device_name()}", flush=True)
    x = torch.randint(0, VOCAB, (micro, args.seq), device=dev)
    y = torch.randint(0, VOCAB, (micro, args.seq), device=dev)
    times = []
    for s in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for _ in range(accum):
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss = step_fn(x, y) / accum
            loss.backward()
        opt.step()
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3
        times.append(ms)
        print(f"  step {s:2d} {ms:9.2f} ms  loss {loss.item() * accum:.4f}{'  (warm-up)' if s < args.warmup else ''}",
              flush=True)
    med = statistics.median(times[args.warmup:])
    tok_s = args.batch * args.seq / (med / 1e3)
    mfu = tok_s * flops_tok / 989e12
    print(f"median step {med:.2f} ms: {tok_s:.0f} tokens/s, MFU {100 * mfu:.1f}%, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"RESULT torch {args.arch} tok/s={tok_s:.0f} mfu={mfu:.4f} step_ms={med:.2f} micro={micro} accum={accum}")


if __name__ == "__main__":
    main()
