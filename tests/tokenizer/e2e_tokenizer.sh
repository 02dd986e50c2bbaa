#!/usr/bin/env bash
# End to end through the CLI: train → encode/decode → tokenize to shards →
# stats → extend; and the one-line errors for bad inputs.
set -euo pipefail
SOJU=${SOJU_BIN:-build/soju}
T=${SOJU_TMP:-/tmp/soju-test}/e2e_tokenizer
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }

# A small corpus built from the checked-in test set, plus one malformed record.
cp tests/tokenizer/fixtures/train.jsonl "$T/corpus.jsonl"
echo '{"text": broken' >> "$T/corpus.jsonl"

out=$("$SOJU" tokenizer train --quiet --vocab-size 600 --out "$T/tok.json" "$T/corpus.jsonl" 2>"$T/train.err")
grep -q "trained 600 ids" <<<"$out" || fail "train: $out"
grep -q "1 bad records skipped" <<<"$out" || fail "bad record not counted: $out"
grep -q "corpus.jsonl:.*malformed JSON" "$T/train.err" || fail "bad record not reported"

text='안녕하세요, soju! 😀 <|endoftext|>'
ids=$("$SOJU" tokenizer encode --tokenizer "$T/tok.json" --text "$text")
back=$("$SOJU" tokenizer decode --tokenizer "$T/tok.json" $ids)
[ "$back" = "$text" ] || fail "round trip: '$back'"
sid=$("$SOJU" tokenizer encode --tokenizer "$T/tok.json" --specials --text "<|endoftext|>")
[ "$sid" = "0" ] || fail "special token id: $sid"

out=$("$SOJU" tokenize --quiet --tokenizer "$T/tok.json" --out "$T/shard.bin" "$T/corpus.jsonl" 2>/dev/null)
grep -q "documents 123 (bad records skipped 1, empty 3)" <<<"$out" || fail "tokenize: $out"
grep -q "bytes/token" <<<"$out" || fail "tokenize summary: $out"
[ -s "$T/shard.bin" ] || fail "no shard written"

out=$("$SOJU" tokenizer stats --tokenizer "$T/tok.json" --tokenizer "$T/tok.json" "$T/corpus.jsonl" 2>/dev/null)
grep -qE "tok.json +ko +24 " <<<"$out" || fail "stats: $out"

out=$("$SOJU" tokenizer extend --quiet --tokenizer "$T/tok.json" --new-tokens 10 --out "$T/ext" \
      --heldout "$T/corpus.jsonl" "$T/corpus.jsonl" 2>/dev/null)
grep -q "600 ids -> 610 ids" <<<"$out" || fail "extend: $out"
grep -q "held-out tokens per character" <<<"$out" || fail "extend report: $out"
[ -s "$T/ext/tokenizer.json" ] || fail "extend wrote no tokenizer.json"

printf '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n' > "$T/chat.jsonl"
out=$("$SOJU" tokenizer chat --tokenizer "$T/tok.json" --pieces "$T/chat.jsonl")
grep -q "<|im_start|>" <<<"$out" && grep -q "<|im_end|>\*" <<<"$out" || fail "chat: $out"

# Errors: one line naming the file and the place, non-zero exit.
printf '{\n "model": {\n' > "$T/bad.json"
if err=$("$SOJU" tokenizer encode --tokenizer "$T/bad.json" --text x 2>&1); then fail "bad tokenizer.json accepted"; fi
grep -qE "soju: error: .*bad.json:[0-9]+:[0-9]+: malformed JSON" <<<"$err" || fail "bad tokenizer.json message: $err"
printf 'YWI= 0\nnot base64! 1\n' > "$T/bad.tiktoken"
if err=$("$SOJU" tokenizer info --tokenizer "gpt2:$T/bad.tiktoken" 2>&1); then fail "bad rank file accepted"; fi
grep -q "soju: error: .*bad.tiktoken:2:" <<<"$err" || fail "bad rank file message: $err"
if err=$("$SOJU" tokenize --tokenizer "$T/tok.json" --out "$T/x.bin" "$T/missing.jsonl" 2>&1); then fail "missing input accepted"; fi
grep -q "soju: error: .*missing.jsonl" <<<"$err" || fail "missing input message: $err"
echo "e2e tokenizer: ok"
