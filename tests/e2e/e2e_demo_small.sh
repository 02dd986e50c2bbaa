#!/usr/bin/env bash
# The main job (scripts/demo.sh) at a tiny size, so a broken stage shows up in
# CI: raw text -> data pipeline (recipes/demo-data.yaml) -> tokenizer ->
# train/validation shards -> pretrain -> generate, on the generated corpus
# always and on ../shared/data when it is present; seconds each.
set -euo pipefail
SOJU=${SOJU_BIN:-build/soju}
T=${SOJU_TMP:-/tmp/soju-test}/e2e_demo
SHARED=${SOJU_SHARED:-../shared}
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$T/model.json" <<'EOF'
{"model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 128, "tie_word_embeddings": true}
EOF

demo() { # NAME SHARED_DIR: run the demo tiny into $T/NAME
  SOJU_BIN=$SOJU SOJU_DEMO_RUN="$T/$1" SOJU_SHARED="$2" SOJU_DEMO_DOCS=400 SOJU_DEMO_COMMENTS=400 \
    SOJU_DEMO_VOCAB=400 SOJU_DEMO_STEPS=40 SOJU_DEMO_GEN_TOKENS=16 SOJU_DEMO_CONFIG="$T/model.json" \
    bash scripts/demo.sh > "$T/$1.log" 2> "$T/$1.err" || { tail -20 "$T/$1.err" >&2; fail "$1: demo.sh failed"; }
}

check() { # NAME: what every run must show
  local r=$T/$1 log=$T/$1.log
  for f in raw/ko_comments.txt raw/ko_wiki.txt raw/en.txt data/kept.jsonl.zst data/stats.json tokenizer.json \
           shards/train.bin shards/val.bin model/metrics.jsonl model/checkpoints/step_00000040/model.safetensors; do
    [ -s "$r/$f" ] || fail "$1: $f missing"
  done
  # cleaning: the report, with its conservation check
  grep -qE "^conservation: kept \+ rejected = ([0-9]+), read = \1: ok" "$log" || fail "$1: no report / conservation"
  grep -q "^dedup_exact" "$log" && grep -q "^dedup_minhash" "$log" || fail "$1: dedup steps missing from the report"
  # tokenizer and shards
  grep -q "^trained 400 ids" "$log" || fail "$1: tokenizer training"
  grep -qE "^tokenizer.json +ko " "$log" || fail "$1: tokenizer stats"
  grep -qE "^validation: [1-9][0-9]* documents" "$log" || fail "$1: no validation documents"
  # the model uses the tokenizer and carries it
  cmp -s "$r/tokenizer.json" "$r/model/checkpoints/step_00000040/tokenizer.json" || fail "$1: checkpoint tokenizer.json"
  grep -qE '"vocab_size":[[:space:]]*400' "$r/model/checkpoints/step_00000040/config.json" || fail "$1: vocab_size"
  # the loss falls: the first train loss against the last validation loss
  local first last
  # (sed quits at the first match itself: `grep | head -1` under pipefail
  # fails at random when head exits before grep has written everything)
  first=$(sed -n '/"loss"/{s/.*"loss":\([0-9.]*\).*/\1/p;q}' "$r/model/metrics.jsonl")
  last=$(grep '"val_loss"' "$r/model/metrics.jsonl" | tail -1 | sed 's/.*"val_loss":\([0-9.]*\).*/\1/')
  awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1.0) }' || fail "$1: loss did not fall: $first -> $last"
  grep -q "val loss .*bits/byte" "$log" || fail "$1: loss table"
  # generation: one text per prompt, each starting with its prompt
  [ "$(grep -ac '^-- "' "$log")" -ge 3 ] || fail "$1: generations missing"
  grep -a -A1 '^-- "이 드라마"' "$log" | tail -1 | grep -q "^이 드라마" || fail "$1: Korean generation"
  grep -qE "^  total +[0-9.]+ s" "$log" || fail "$1: timing summary"
}

demo generated "$T/no-shared"
check generated
grep -q "^== done (generated corpus)" "$T/generated.log" || fail "generated: wrong corpus"
# the generated comments carry junk for every cleaning step to find
zstd -dc "$T/generated/data/rejects.jsonl.zst" > "$T/rejects.jsonl"
zstd -dc "$T/generated/data/kept.jsonl.zst" > "$T/kept.jsonl"
for rule in '"rule":"spam_strong"' '"rule":"jamo_ratio"' '"rule":"min_chars"' '"step":"dedup_exact"'; do
  grep -q "$rule" "$T/rejects.jsonl" || fail "generated: no reject with $rule"
done
grep -q "010-[0-9]" "$T/kept.jsonl" && fail "generated: a phone number survived"
grep -a -A1 '^-- "The king"' "$T/generated.log" | tail -1 | grep -q "^The king" || fail "generated: English generation"

if [ -f "$SHARED/data/en_tinyshakespeare/input.txt" ]; then
  demo shared "$SHARED"
  check shared
  grep -q "^== done (shared corpus)" "$T/shared.log" || fail "shared: wrong corpus"
  [ "$(wc -l < "$T/shared/raw/ko_comments.txt")" = 400 ] || fail "shared: SOJU_DEMO_COMMENTS not applied"
fi

# an input format the pipeline does not know is one clear error
mkdir -p "$T/bad"
printf 'inputs: [{path: raw/x.txt, format: csv}]\noutput: out\nsteps: [normalize]\n' > "$T/bad/p.yaml"
if err=$("$SOJU" data run "$T/bad/p.yaml" 2>&1); then fail "unknown input format accepted"; fi
grep -q "soju: error: .*p.yaml: input raw/x.txt: unknown format 'csv'" <<<"$err" || fail "format error: $err"
echo "e2e demo (small): ok"
