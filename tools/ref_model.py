#!/usr/bin/env python3
"""Reference transformer in plain PyTorch, and the parity fixtures soju's model
tests read (tests/model/fixtures/<case>/).

The model follows Hugging Face semantics and tensor names for the families
soju implements (LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM,
GPT2LMHeadModel) without importing transformers: RMSNorm or LayerNorm, RoPE
in the rotate_half convention (theta, linear scaling) or learned positions,
grouped-query attention (repeat_kv), optional document masking of packed
sequences and a sliding window, SwiGLU or tanh-GELU, tied or untied
embeddings, QKV (and o/mlp) biases, GPT-2 Conv1D weights stored (in, out).

Each fixture case holds
  config.json          the HF config
  model.safetensors    the initial weights (HF names and layouts, float32)
  expected.safetensors inputs, targets, position/doc ids, token weights, and
                       what soju must reproduce: logits, the loss, every
                       gradient ("grad.<name>"), the losses of 10 AdamW steps
                       and the parameters after them ("final.<name>").
The reference runs in float64, so the differences the tests see are soju's
float32 rounding. Run:  python3 tools/ref_model.py  (rewrites the fixtures).
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE = -100


# --------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored (in, out), y = x W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_cos_sin(positions, head_dim, theta, factor, dtype):
    """cos, sin of shape (B, T, head_dim) as transformers computes them."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    inv = inv / factor
    freqs = positions.to(torch.float64)[..., None] * inv
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def attention_mask(B, T, doc_ids, window):
    """(B, 1, T, T) boolean: key j visible to query i."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    ok = (j <= i)[None].expand(B, T, T).clone()
    if doc_ids is not None:
        ok &= doc_ids[:, :, None] == doc_ids[:, None, :]
    if window:
        ok &= (i - j < window)[None]
    return ok[:, None]


def attend(q, k, v, mask, n_rep):
    """q (B, NH, T, hd), k/v (B, NKV, T, hd): softmax(q k^T / sqrt(hd)) v."""
    k = k.repeat_interleave(n_rep, dim=1)
    v = v.repeat_interleave(n_rep, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, hd = c["hidden_size"], c["head_dim"]
        self.nh, self.nkv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], hd
        qkv_bias, o_bias = c["_qkv_bias"], c["_o_bias"]
        self.q_proj = nn.Linear(C, self.nh * hd, bias=qkv_bias)
        self.k_proj = nn.Linear(C, self.nkv * hd, bias=qkv_bias)
        self.v_proj = nn.Linear(C, self.nkv * hd, bias=qkv_bias)
        self.o_proj = nn.Linear(self.nh * hd, C, bias=o_bias)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        y = attend(q, k, v, mask, self.nh // self.nkv)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.nh * self.hd))


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, Fw, b = c["hidden_size"], c["intermediate_size"], c["_mlp_bias"]
        self.gate_proj = nn.Linear(C, Fw, bias=b)
        self.up_proj = nn.Linear(C, Fw, bias=b)
        self.down_proj = nn.Linear(Fw, C, bias=b)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = LlamaAttention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = LlamaMLP(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(LlamaLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class GPT2Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["n_embd"]
        self.nh, self.hd = c["n_head"], C // c["n_head"]
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)

    def forward(self, x, mask):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, self.hd).transpose(1, 2) for t in (q, k, v))
        y = attend(q, k, v, mask, 1)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class GPT2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, Fw = c["n_embd"], c["n_inner"] or 4 * c["n_embd"]
        self.c_fc = Conv1D(C, Fw)
        self.c_proj = Conv1D(Fw, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, eps = c["n_embd"], c.get("layer_norm_epsilon", 1e-5)
        self.ln_1 = nn.LayerNorm(C, eps=eps)
        self.attn = GPT2Attention(c)
        self.ln_2 = nn.LayerNorm(C, eps=eps)
        self.mlp = GPT2MLP(c)

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class GPT2Body(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList(GPT2Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c.get("layer_norm_epsilon", 1e-5))


def normalize_config(cfg):
    """Fill the defaults transformers would use for the fields the model reads."""
    c = dict(cfg)
    if c["model_type"] == "gpt2":
        c.setdefault("n_inner", None)
        c.setdefault("tie_word_embeddings", True)
        return c
    c.setdefault("num_key_value_heads", c["num_attention_heads"])
    c.setdefault("head_dim", c["hidden_size"] // c["num_attention_heads"])
    c.setdefault("rms_norm_eps", 1e-6)
    c.setdefault("rope_theta", 10000.0)
    c.setdefault("tie_word_embeddings", False)
    rs = c.get("rope_scaling") or {}
    c["_rope_factor"] = rs.get("factor", 1.0) if rs.get("rope_type", rs.get("type")) == "linear" else 1.0
    qwen2 = c["model_type"] == "qwen2"
    c["_qkv_bias"] = True if qwen2 else c.get("attention_bias", False)
    c["_o_bias"] = False if qwen2 else c.get("attention_bias", False)
    c["_mlp_bias"] = False if qwen2 else c.get("mlp_bias", False)
    c["_window"] = c.get("sliding_window") if c["model_type"] == "mistral" else None
    return c


class RefModel(nn.Module):
    """One decoder-only LM; parameter names equal the HF state_dict keys."""

    def __init__(self, cfg):
        super().__init__()
        self.c = c = normalize_config(cfg)
        self.gpt2 = c["model_type"] == "gpt2"
        V = c["vocab_size"]
        C = c["n_embd"] if self.gpt2 else c["hidden_size"]
        if self.gpt2:
            self.transformer = GPT2Body(c)
        else:
            self.model = LlamaBody(c)
        self.lm_head = None if c["tie_word_embeddings"] else nn.Linear(C, V, bias=False)

    def head_weight(self):
        if self.lm_head is not None:
            return self.lm_head.weight
        return self.transformer.wte.weight if self.gpt2 else self.model.embed_tokens.weight

    def forward(self, input_ids, position_ids=None, doc_ids=None):
        B, T = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(T)[None].expand(B, T)
        c = self.c
        if self.gpt2:
            mask = attention_mask(B, T, doc_ids, None)
            x = self.transformer.wte(input_ids.long()) + self.transformer.wpe(position_ids.long())
            for blk in self.transformer.h:
                x = blk(x, mask)
            x = self.transformer.ln_f(x)
        else:
            mask = attention_mask(B, T, doc_ids, c["_window"])
            cos, sin = rope_cos_sin(position_ids, c["head_dim"], c["rope_theta"], c["_rope_factor"],
                                    self.model.embed_tokens.weight.dtype)
            x = self.model.embed_tokens(input_ids.long())
            for layer in self.model.layers:
                x = layer(x, cos, sin, mask)
            x = self.model.norm(x)
        return x @ self.head_weight().t()

    def named_params(self):
        """(HF name, tensor) in state_dict order, a tied lm_head omitted."""
        return [(n, p) for n, p in self.named_parameters()]


def param_kind(name, p):
    """soju's weight-decay classes: only linear weight matrices decay."""
    if p.dim() < 2:
        return "norm_or_bias"
    if name.endswith(("embed_tokens.weight", "wte.weight", "wpe.weight")):
        return "embedding"
    return "matrix"


def init_weights(model, seed):
    """Random weights that exercise every path (norm gains and biases not 1 / 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)


# --------------------------------------------------------------------------- fixtures

ADAM = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
STEPS = 10


def objective(model, batch):
    """scale * sum_t w_t loss_t with scale = 1 / (number of targets)."""
    logits = model(batch["input_ids"], batch.get("position_ids"), batch.get("doc_ids"))
    V = logits.shape[-1]
    losses = F.cross_entropy(logits.reshape(-1, V), batch["targets"].reshape(-1).long(), ignore_index=IGNORE,
                             reduction="none")
    n = (batch["targets"] != IGNORE).sum()
    w = batch.get("token_weights")
    w = torch.ones_like(losses) if w is None else w.reshape(-1).to(losses.dtype)
    return logits, (losses * w).sum() / n


def make_case(out_dir, cfg, batch, seed):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(seed)
    model = RefModel(cfg)
    init_weights(model, seed)
    from safetensors.torch import save_file

    weights = {n: p.detach().float().contiguous() for n, p in model.named_params()}
    save_file(weights, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    model = model.double()
    logits, loss = objective(model, batch)
    loss.backward()
    expected = {
        "logits": logits.detach().float().contiguous(),
        "loss": loss.detach().float().reshape(1),
    }
    for k, v in batch.items():
        expected[k] = v.contiguous() if v.dtype != torch.float64 else v.float().contiguous()
    for n, p in model.named_params():
        expected["grad." + n] = p.grad.float().contiguous()

    # 10 AdamW steps on the same batch, weight decay on matrices only.
    decay = [p for n, p in model.named_params() if param_kind(n, p) == "matrix"]
    other = [p for n, p in model.named_params() if param_kind(n, p) != "matrix"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAM["weight_decay"]},
                             {"params": other, "weight_decay": 0.0}],
                            lr=ADAM["lr"], betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"])
    step_losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        _, loss = objective(model, batch)
        loss.backward()
        step_losses.append(loss.item())
        opt.step()
    expected["step_losses"] = torch.tensor(step_losses, dtype=torch.float32)
    for n, p in model.named_params():
        expected["final." + n] = p.detach().float().contiguous()
    meta = {k: repr(v) for k, v in ADAM.items()}
    meta["steps"] = str(STEPS)
    save_file(expected, os.path.join(out_dir, "expected.safetensors"), metadata=meta)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{out_dir}: loss {expected['loss'].item():.6f}, {size} bytes")


def random_batch(g, B, T, V, ignore_some=True):
    ids = torch.randint(0, V, (B, T), generator=g, dtype=torch.int32)
    tgt = torch.randint(0, V, (B, T), generator=g, dtype=torch.int32)
    if ignore_some:
        tgt[0, :2] = IGNORE
        tgt[-1, -1] = IGNORE
    return {"input_ids": ids, "targets": tgt}


def packed_docs(B, T, lengths):
    """doc ids and positions restarting per document, one row per list of lengths."""
    docs = torch.zeros(B, T, dtype=torch.int32)
    pos = torch.zeros(B, T, dtype=torch.int32)
    for b in range(B):
        t = 0
        for d, n in enumerate(lengths[b]):
            docs[b, t:t + n] = d
            pos[b, t:t + n] = torch.arange(n, dtype=torch.int32)
            t += n
    return docs, pos


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "model", "fixtures")
    g = torch.Generator().manual_seed(1234)
    # the batch dictionaries are int32 (inputs) / float64 (weights); the model casts
    cases = {}

    cases["llama_gqa_tied"] = (
        {"model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "tie_word_embeddings": True, "hidden_act": "silu"},
        random_batch(g, 2, 12, 32))

    b = random_batch(g, 2, 10, 32)
    b["token_weights"] = torch.rand(2, 10, generator=g, dtype=torch.float64) + 0.5
    cases["qwen2_bias_untied"] = (
        {"model_type": "qwen2", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
         "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
         "rope_scaling": {"rope_type": "linear", "factor": 2.0},
         "tie_word_embeddings": False, "hidden_act": "silu"},
        b)

    cases["gpt2"] = (
        {"model_type": "gpt2", "vocab_size": 32, "n_embd": 16, "n_layer": 2, "n_head": 2,
         "n_positions": 16, "n_inner": 32, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"},
        random_batch(g, 2, 12, 32))

    b = random_batch(g, 2, 16, 32)
    b["doc_ids"], b["position_ids"] = packed_docs(2, 16, [[5, 9, 2], [16]])
    cases["llama_docmask"] = (
        {"model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8,
         "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
         "tie_word_embeddings": True, "attention_bias": True, "hidden_act": "silu"},
        b)

    b = random_batch(g, 1, 14, 32)
    cases["mistral_window"] = (
        {"model_type": "mistral", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
         "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "sliding_window": 4, "tie_word_embeddings": False, "hidden_act": "silu"},
        b)

    only = sys.argv[1:]
    for i, (name, (cfg, batch)) in enumerate(cases.items()):
        if only and name not in only:
            continue
        make_case(os.path.join(root, name), cfg, batch, seed=100 + i)


if __name__ == "__main__":
    main()
