"""Produce the tokenizer parity fixtures in tests/tokenizer/fixtures/ from the
reference libraries (tokenizers, tiktoken, sentencepiece), offline, using the
real vocabularies in ../shared/data/tok_*.

    python3 tools/tok_reference.py [--shared ../shared]

Writes:
  texts.json            the mixed test set (tools/tok_texts.py)
  ids_<vocab>.json      {"texts": ids per text, "specials": ids with special
                        tokens recognized, "corpus": per-file block hashes}
The corpus section encodes the first lines of a Korean and an English file
of ../shared/data line by line and stores, per block of 100 lines, the token
count and an FNV-1a 64-bit hash of the ids (little-endian uint32), so the C
test checks thousands of lines against a fixture of a few hundred bytes.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tok_texts import TEXTS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "tokenizer", "fixtures")

PATTERNS = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama4": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}

CORPUS = [  # (name, path under shared/data, lines)
    ("ko", "ko_korquad_v1/contexts.txt", 1000),
    ("en", "en_web_wiki_samples/wiki_demo.txt", 1000),
]
BLOCK = 100
SPECIAL_TEXT = "<|begin_of_text|>user says <|eot_id|><|im_start|>hi<|im_end|><|endoftext|> done"


def fnv1a(ids, h=0xCBF29CE484222325):
    for i in ids:
        for b in int(i).to_bytes(4, "little"):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def llama3_specials(n):
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
             "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
             "<|eot_id|>", "<|python_tag|>", "<|image|>"]
    names += [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(names))]
    return {s: n + i for i, s in enumerate(names)}


def qwen2_specials(n):
    names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
             "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
             "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
             "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
    return {s: n + i for i, s in enumerate(names)}


def llama4_specials(n):
    basic = ["<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"]
    post = ["<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|step|>"] + \
        [f"<|text_post_train_reserved_special_token_{i}|>" for i in range(6)] + \
        ["<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>"] + \
        [f"<|text_post_train_reserved_special_token_{i}|>" for i in range(8, 69)]
    vision = ["<|image_start|>", "<|image_end|>", "<|vision_reserved_special_token_0|>",
              "<|vision_reserved_special_token_1|>", "<|tile_x_separator|>", "<|tile_y_separator|>"] + \
        [f"<|vision_reserved_special_token_{i}|>" for i in range(2, 6)] + \
        ["<|image|>", "<|vision_reserved_special_token_6|>", "<|patch|>"] + \
        [f"<|vision_reserved_special_token_{i}|>" for i in range(7, 1048)]
    reasoning = [f"<|reasoning_reserved_special_token_{i}|>" for i in range(8)] + \
        ["<|reasoning_thinking_start|>", "<|reasoning_thinking_end|>"]
    names = basic + post + vision + reasoning
    names += [f"<|reserved_special_token_{i}|>" for i in range(2048 - len(names))]
    return {s: n + i for i, s in enumerate(names)}


def tiktoken_encoder(path, preset):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(path)
    specials = {"llama3": llama3_specials, "qwen2": qwen2_specials, "llama4": llama4_specials}[preset](len(ranks))
    enc = tiktoken.Encoding(preset, pat_str=PATTERNS[preset], mergeable_ranks=ranks, special_tokens=specials)
    return (lambda s: enc.encode_ordinary(s)), (lambda s: enc.encode(s, allowed_special="all"))


def gpt2_encoder(d):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    tok = Tokenizer(models.BPE.from_file(os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return (lambda s: tok.encode(s, add_special_tokens=False).ids), None


def spm_encoder(path):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=path)
    return (lambda s: sp.encode(s)), None


def corpus_blocks(shared, encode):
    out = {}
    for name, rel, n_lines in CORPUS:
        path = os.path.join(shared, "data", rel)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")[:n_lines]
        blocks = []
        for b in range(0, len(lines), BLOCK):
            ids = []
            for line in lines[b:b + BLOCK]:
                ids += encode(line)
            blocks.append([len(ids), "%016x" % fnv1a(ids)])
        out[name] = {"file": rel, "lines": len(lines), "block": BLOCK, "blocks": blocks}
    return out


TRAINED = [  # (fixture name, extra soju tokenizer train options)
    ("trained_llama3", ["--pretok", "llama3"]),
    ("trained_gpt2_nfkc", ["--pretok", "gpt2", "--norm", "nfkc"]),
]


def trained_parity(soju):
    """Train with soju on fixtures/train.jsonl, load the tokenizer.json it
    writes with `tokenizers`, and record tokenizers' ids for the test set."""
    import subprocess
    import tempfile
    from tokenizers import Tokenizer
    with open(os.path.join(FIX, "train.jsonl"), "w", encoding="utf-8") as f:
        for t in TEXTS * 3:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    for name, extra in TRAINED:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "tokenizer.json")
            subprocess.run([soju, "tokenizer", "train", "--quiet", "--vocab-size", "700", "--min-frequency", "2",
                            "--out", out] + extra + [os.path.join(FIX, "train.jsonl")], check=True, capture_output=True)
            tok = Tokenizer.from_file(out)
        ids = [tok.encode(t, add_special_tokens=True).ids for t in TEXTS]
        with open(os.path.join(FIX, f"ids_{name}.json"), "w") as f:
            f.write('{"options": ' + json.dumps(extra) + ',\n"texts": [\n' + ",\n".join(json.dumps(x) for x in ids) + "\n]}\n")
        print(name, sum(map(len, ids)), "ids")


def converted_parity(soju, data, fixtures):
    """`soju tokenizer convert` writes each vocabulary as tokenizer.json;
    tokenizers must give the reference ids on it. (Texts holding special-token
    strings are left out: tokenizers always matches added tokens in text.)"""
    import subprocess
    import tempfile
    from tokenizers import Tokenizer
    specs = {"llama3": os.path.join(data, "tok_llama3", "tokenizer.model"),
             "llama2": os.path.join(data, "tok_llama2", "tokenizer.model"),
             "gpt2": os.path.join(data, "tok_gpt2"),
             "qwen2": os.path.join(data, "tok_qwen", "qwen.tiktoken")}
    for name, spec in specs.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "tokenizer.json")
            subprocess.run([soju, "tokenizer", "convert", "--tokenizer", spec, "--out", out], check=True,
                           capture_output=True)
            tok = Tokenizer.from_file(out)
        bad = [i for i, t in enumerate(TEXTS)
               if "<|" not in t and tok.encode(t, add_special_tokens=False).ids != fixtures[name][i]]
        print("tokenizers on soju's tokenizer.json for %s: %s" % (name, "same ids" if not bad else "DIFFERS on %s" % bad))
        if bad:
            sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared"))
    ap.add_argument("--soju", default=os.path.join(HERE, "..", "build", "soju"))
    args = ap.parse_args()
    data = os.path.join(args.shared, "data")
    os.makedirs(FIX, exist_ok=True)
    with open(os.path.join(FIX, "texts.json"), "w", encoding="utf-8") as f:
        json.dump(TEXTS, f, ensure_ascii=False, indent=0)
        f.write("\n")
    vocabs = {
        "gpt2": lambda: gpt2_encoder(os.path.join(data, "tok_gpt2")),
        "llama2": lambda: spm_encoder(os.path.join(data, "tok_llama2", "tokenizer.model")),
        "llama3": lambda: tiktoken_encoder(os.path.join(data, "tok_llama3", "tokenizer.model"), "llama3"),
        "llama4": lambda: tiktoken_encoder(os.path.join(data, "tok_llama4", "tokenizer.model"), "llama4"),
        "qwen2": lambda: tiktoken_encoder(os.path.join(data, "tok_qwen", "qwen.tiktoken"), "qwen2"),
    }
    fixtures = {}
    for name, make in vocabs.items():
        encode, encode_special = make()
        res = {"texts": [encode(t) for t in TEXTS]}
        if encode_special:
            res["specials"] = {"text": SPECIAL_TEXT, "ids": encode_special(SPECIAL_TEXT)}
        res["corpus"] = corpus_blocks(args.shared, encode)
        path = os.path.join(FIX, f"ids_{name}.json")
        with open(path, "w") as f:
            f.write("{\n")
            f.write('"texts": [\n' + ",\n".join(json.dumps(x) for x in res["texts"]) + "\n]")
            for k in ("specials", "corpus"):
                if k in res:
                    f.write(f',\n"{k}": ' + json.dumps(res[k]))
            f.write("\n}\n")
        print(name, sum(map(len, res["texts"])), "ids ->", path)
        fixtures[name] = res["texts"]
    trained_parity(args.soju)
    converted_parity(args.soju, data, fixtures)


if __name__ == "__main__":
    main()
