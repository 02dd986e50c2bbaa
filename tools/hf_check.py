#!/usr/bin/env python3
"""Check that checkpoints soju saves load in Hugging Face transformers and give
the same logits (not part of the test suite: it needs transformers).

  pip install transformers
  python3 tools/hf_check.py [build-dir]

It runs the model test's hf_export case, which writes, per family (llama tied
GQA, qwen2 with QKV bias and linear RoPE scaling, gpt2, mistral with a sliding
window, llama with q/k/v/o and MLP biases and head_dim != hidden/heads), a
checkpoint directory and the logits soju computed for a batch. Each directory
is then opened with AutoModelForCausalLM.from_pretrained (float32, eager
attention) and its logits compared; missing or unexpected weights fail.
"""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    from transformers import AutoModelForCausalLM

    tmp = tempfile.mkdtemp(prefix="soju-hf-check-")
    exe = os.path.join(build, "model_test_model")
    env = dict(os.environ, SOJU_TMP=tmp, OMP_NUM_THREADS="2")
    subprocess.run([exe, "hf_export"], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = os.path.join(tmp, "hf_export")
    worst_all = 0.0
    ok = True
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        ref = load_file(os.path.join(d, "soju_logits.safetensors"))
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                           output_loading_info=True)
        missing = [k for k in info["missing_keys"] if k != "lm_head.weight"]
        problems = missing + list(info["unexpected_keys"]) + list(info.get("mismatched_keys", []))
        with torch.no_grad():
            logits = model(input_ids=ref["input_ids"].long()).logits
        diff = (logits - ref["logits"]).abs().max().item()
        scale = ref["logits"].abs().max().item()
        good = not problems and diff <= 1e-4 * max(1.0, scale)
        ok &= good
        worst_all = max(worst_all, diff)
        print(f"{name:12s} {type(model).__name__:20s} max |logit diff| {diff:.2e} (max |logit| {scale:.2f})"
              f" {'OK' if good else 'FAIL'}{'  weights: ' + str(problems) if problems else ''}")
    print("all families match" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
