"""The PyTorch peer of bench/attn_bench.c: causal attention forward and
backward alone, bf16, on one shape, through scaled_dot_product_attention
with each of its GPU kernels that runs here (FlashAttention-2 and cuDNN's;
the flash one is what bench/gpt2_torch_compile.py's model uses by default).

  python3 bench/attn_torch.py [--batch 64] [--seq 1024] [--heads 12] [--kv-heads 12] [--head-dim 64] [--reps 20]

q, k, v are strided views of one packed (B, T, (NH + 2 NKV) hd) tensor, as in
the models. Prints per kernel one line
  RESULT torch kernel=<flash|cudnn> fwd_ms=<x> bwd_ms=<x> fwd_tflops=<x> bwd_tflops=<x>
with FLOPs counted as attn_bench counts them (4 B NH T^2 hd / 2, backward 2.5x).
"""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn, reps):
    """Mean milliseconds of fn() over reps calls after three warm-up calls."""
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=12)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    B, T, NH, NKV, hd = a.batch, a.seq, a.heads, a.kv_heads, a.head_dim
    torch.manual_seed(11)
    qkv = torch.randn(B, T, (NH + 2 * NKV) * hd, device="cuda", dtype=torch.bfloat16)

    def heads(x, n):  # (B, T, n hd) view -> (B, n, T, hd) view
        return x.view(B, T, n, hd).transpose(1, 2)

    q = heads(qkv[..., : NH * hd], NH).detach().requires_grad_()
    k = heads(qkv[..., NH * hd : (NH + NKV) * hd], NKV).detach().requires_grad_()
    v = heads(qkv[..., (NH + NKV) * hd :], NKV).detach().requires_grad_()
    dout = 0.1 * torch.randn(B, NH, T, hd, device="cuda", dtype=torch.bfloat16)
    gqa = {"enable_gqa": True} if NKV != NH else {}
    fwd_flop = 4.0 * B * NH * T * T * hd / 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}: batch {B} x {T}, {NH} heads ({NKV} key/value), "
          f"head dim {hd}, causal")
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel(backend):
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)
                fwd = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa), a.reps)
                bwd = timed(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True), a.reps)
        except RuntimeError as e:  # this kernel does not run here (GPU, shape or build)
            print(f"torch kernel={name}: not available ({str(e).splitlines()[0][:120]})")
            continue
        print(f"RESULT torch kernel={name} fwd_ms={fwd:.4f} bwd_ms={bwd:.4f} fwd_tflops={fwd_flop / fwd * 1e-9:.1f} "
              f"bwd_tflops={2.5 * fwd_flop / bwd * 1e-9:.1f}", flush=True)


if __name__ == "__main__":
    main()
