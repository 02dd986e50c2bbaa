#!/usr/bin/env bash
# End to end through the CLI: text -> shards -> pretrain (with an interrupted
# run resumed exactly) -> generate; and every bad input gives one
# "soju: error:" line naming the file, exit status 1, never a crash.
set -euo pipefail
SOJU=${SOJU_BIN:-build/soju}
T=${SOJU_TMP:-/tmp/soju-test}/e2e_pretrain
rm -rf "$T"
mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------- corpus -> shards
bash scripts/demo_corpus.sh "$T/corpus.txt" 400
$SOJU tokenize --tokenizer bytes --quiet "$T/corpus.txt" --out "$T/train.bin" --val-out "$T/val.bin" --val-frac 0.1 \
  > "$T/shard.log"
grep -q "^validation: [0-9]* documents" "$T/shard.log" || fail "tokenize summary: $(cat "$T/shard.log")"
cat > "$T/config.json" <<'EOF'
{"model_type": "llama", "vocab_size": 257, "hidden_size": 48, "intermediate_size": 96,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 64, "tie_word_embeddings": true}
EOF

# ---------------------------------------------------------------- pretrain
train() {
  $SOJU pretrain --config "$T/config.json" --train "$T/train.bin" --val "$T/val.bin" --micro-batch 4 --seq-len 32 \
    --batch-tokens 256 --steps 30 --lr 3e-3 --warmup 3 --schedule wsd --decay-frac 0.3 --eval-every 10 \
    --eval-batches 4 --save-every 10 --threads 2 --quiet "$@"
}
train --out "$T/a" > "$T/a.log"
grep -q "train loss" "$T/a.log" || fail "no summary"
n=$(grep -c '"loss"' "$T/a/metrics.jsonl")
[ "$n" = 30 ] || fail "expected 30 step lines in metrics.jsonl, got $n"
grep -q '"val_loss"' "$T/a/metrics.jsonl" || fail "no validation loss"
for f in step loss lr grad_norm tokens tokens_per_s mfu time; do
  head -1 "$T/a/metrics.jsonl" | grep -q "\"$f\":" || fail "metrics line lacks $f"
done
first=$(head -1 "$T/a/metrics.jsonl" | sed 's/.*"loss":\([0-9.]*\).*/\1/')
last=$(grep '"loss"' "$T/a/metrics.jsonl" | tail -1 | sed 's/.*"loss":\([0-9.]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1.0) }' || fail "loss did not fall: $first -> $last"
ls "$T/a/checkpoints" | grep -q step_00000030 || fail "no final checkpoint"
[ "$(ls "$T/a/checkpoints" | wc -l)" = 2 ] || fail "--keep default 2 not applied"
for f in config.json model.safetensors trainer_state.json optimizer.safetensors; do
  [ -f "$T/a/checkpoints/step_00000030/$f" ] || fail "checkpoint lacks $f"
done

# Interrupted at 15, resumed: the same weights, bit for bit.
train --out "$T/b" --stop-at 15 > /dev/null
$SOJU pretrain --resume "$T/b" --quiet > "$T/b.log"
grep -q "30 steps (15 this run)" "$T/b.log" || fail "resume summary: $(cat "$T/b.log")"
cmp "$T/a/checkpoints/step_00000030/model.safetensors" "$T/b/checkpoints/step_00000030/model.safetensors" ||
  fail "resume is not bit-identical"
cmp "$T/a/checkpoints/step_00000030/optimizer.safetensors" "$T/b/checkpoints/step_00000030/optimizer.safetensors" ||
  fail "optimizer state differs after resume"
diff <(sed 's/,"tokens_per_s.*//' "$T/a/metrics.jsonl") <(sed 's/,"tokens_per_s.*//' "$T/b/metrics.jsonl") ||
  fail "losses differ after resume"

# ---------------------------------------------------------------- generate
gen() { $SOJU generate --model "$T/a" --prompt "The king" --max-tokens 40 --threads 2 "$@" 2> "$T/gen.err"; }
g1=$(gen --greedy)
g2=$(gen --temperature 0)
[ "$g1" = "$g2" ] || fail "greedy differs from temperature 0"
case "$g1" in "The king"*) ;; *) fail "output does not start with the prompt: $g1" ;; esac
[ ${#g1} -gt 12 ] || fail "nothing generated"
s1=$(gen --temperature 0.9 --top-k 20 --top-p 0.9 --seed 5)
s2=$(gen --temperature 0.9 --top-k 20 --top-p 0.9 --seed 5)
[ "$s1" = "$s2" ] || fail "a fixed seed does not reproduce"
grep -q "tokens/s" "$T/gen.err" || fail "no generation timing"
gen --model "$T/a/checkpoints/step_00000020" --greedy > /dev/null || fail "generate from a checkpoint dir"
[ "$(gen --greedy --tokenizer bytes)" = "$g1" ] || fail "--tokenizer bytes differs from the default"

# ---------------------------------------------------------------- a trained tokenizer travels with the model
# BPE on the corpus; the model takes the tokenizer's vocab_size (the config says 257);
# every checkpoint holds tokenizer.json, and generate finds it there.
$SOJU tokenizer train --quiet --vocab-size 320 --out "$T/tok.json" "$T/corpus.txt" > /dev/null
$SOJU tokenize --quiet --tokenizer "$T/tok.json" --out "$T/bpe_train.bin" "$T/corpus.txt" > /dev/null
$SOJU pretrain --config "$T/config.json" --tokenizer "$T/tok.json" --train "$T/bpe_train.bin" --micro-batch 4 \
  --seq-len 32 --steps 6 --lr 3e-3 --save-every 3 --threads 2 --quiet --out "$T/bpe" > /dev/null 2> "$T/bpe.err"
grep -q "vocab_size 320 from the tokenizer" "$T/bpe.err" || fail "vocab_size not taken from the tokenizer"
grep -qE '"vocab_size":[[:space:]]*320' "$T/bpe/checkpoints/step_00000006/config.json" || fail "checkpoint vocab_size"
for s in 3 6; do
  cmp -s "$T/bpe/tokenizer.json" "$T/bpe/checkpoints/step_0000000$s/tokenizer.json" || fail "checkpoint $s lacks tokenizer.json"
done
g=$($SOJU generate --model "$T/bpe" --prompt "The king" --max-tokens 8 --greedy 2> /dev/null)
case "$g" in "The king"*) ;; *) fail "generate with the checkpoint's tokenizer: $g" ;; esac

# ---------------------------------------------------------------- bad input
# Run a command that must fail: exit status 1 (not a crash) and one error
# line that contains every given string.
expect_error() {
  local want=("$@") out status
  set +e
  out=$("${CMD[@]}" 2>&1 >/dev/null)
  status=$?
  set -e
  [ $status -eq 1 ] || fail "exit $status (expected 1) for: ${CMD[*]}: $out"
  [ "$(printf '%s\n' "$out" | grep -c '^soju: error: ')" = 1 ] || fail "not one error line for ${CMD[*]}: $out"
  for w in "${want[@]}"; do
    printf '%s' "$out" | grep -qF -- "$w" || fail "error for ${CMD[*]} lacks '$w': $out"
  done
}
head -c 100 "$T/train.bin" > "$T/trunc_header.bin"
head -c 1000 "$T/train.bin" > "$T/trunc.bin"
{ printf 'NOTSOJU!'; tail -c +9 "$T/train.bin"; } > "$T/magic.bin"
for bad in "$T/missing.bin:cannot open" "$T/trunc_header.bin:truncated" "$T/trunc.bin:truncated" \
           "$T/magic.bin:bad magic"; do
  CMD=(train --out "$T/bad_shard" --train "${bad%%:*}")
  expect_error "${bad%%:*}" "${bad#*:}"
  rm -rf "$T/bad_shard"
done
CMD=(train --out "$T/bad_val" --val "$T/trunc.bin"); expect_error "$T/trunc.bin" truncated
CMD=($SOJU pretrain --config "$T/nope.json" --train "$T/train.bin" --steps 2 --out "$T/c"); expect_error "$T/nope.json"
printf '{"model_type": "llama", "vocab_size": ' > "$T/trunc_config.json"
CMD=($SOJU pretrain --config "$T/trunc_config.json" --train "$T/train.bin" --steps 2 --out "$T/c")
expect_error "$T/trunc_config.json"
CMD=($SOJU pretrain --resume "$T/b" --lr 1); expect_error "--lr cannot change on --resume"
CMD=($SOJU pretrain --resume "$T/bpe" --tokenizer bytes); expect_error "--tokenizer cannot change on --resume"
CMD=($SOJU pretrain --init "$T/a" --tokenizer "$T/tok.json" --train "$T/bpe_train.bin" --steps 2 --out "$T/c")
expect_error "vocab_size 257 is smaller than the tokenizer's 320"
CMD=(train --out "$T/c" --schedule linear); expect_error "--schedule must be cosine, wsd or constant"
CMD=(train --out "$T/c" --decay-shape cubic); expect_error "--decay-shape"
CMD=(train --out "$T/c" --batch-tokens 200); expect_error "not a multiple" "try 256"
CMD=(train --out "$T/c" --warmup 31); expect_error "warmup"
CMD=($SOJU pretrain --config "$T/config.json" --train "$T/train.bin" --out "$T/c"); expect_error "--steps or --tokens"
CMD=($SOJU pretrain --train "$T/train.bin" --steps 2 --out "$T/c"); expect_error "exactly one of --config, --init or --resume"
CMD=($SOJU generate --model "$T/a" --top-p 2); expect_error "top-p"
CMD=($SOJU generate --model "$T/a" --tokenizer "$T/tokenizer.json"); expect_error "$T/tokenizer.json"
if [ -d "${SOJU_SHARED:-../shared}/data/tok_gpt2" ]; then # a 50257-token tokenizer for a 257-token model
  CMD=($SOJU generate --model "$T/a" --tokenizer "${SOJU_SHARED:-../shared}/data/tok_gpt2")
  expect_error "vocab_size 257 is smaller than the tokenizer's 50257"
fi
CMD=($SOJU pretrain --resume "$T/nothing"); expect_error "$T/nothing"
CMD=(train --out "$T/a"); expect_error "$T/a" "already holds a run"
CMD=($SOJU generate --model "$T/none"); expect_error "$T/none"

# Broken checkpoint files, each in its own copy of the run.
breakit() { # run-copy file how
  rm -rf "$T/$1"; cp -r "$T/b" "$T/$1"
  local f="$T/$1/checkpoints/step_00000030/$2"
  case $3 in
    delete) rm "$f" ;;
    truncate) head -c 50 "$f" > "$f.x"; mv "$f.x" "$f" ;;
    magic) printf 'garbage garbage garbage' > "$f" ;;
  esac
  echo "$f"
}
for file in config.json model.safetensors trainer_state.json optimizer.safetensors; do
  for how in delete truncate magic; do
    f=$(breakit broken "$file" $how)
    CMD=($SOJU pretrain --resume "$T/broken" --steps 40 --quiet); expect_error "$f"
    if [ $file = config.json ] || [ $file = model.safetensors ]; then
      CMD=($SOJU generate --model "$T/broken"); expect_error "$f"
    fi
  done
done

# A diverging run stops with a clear message and keeps its last good checkpoint.
CMD=($SOJU pretrain --init "$T/a" --train "$T/train.bin" --micro-batch 4 --seq-len 32 --steps 20 --lr 1e30 \
     --grad-clip 0 --save-every 1 --quiet --out "$T/nan")
expect_error "last good checkpoint"
if [ -d "$T/nan/checkpoints" ]; then
  last=$(ls "$T/nan/checkpoints" | tail -1)
  $SOJU generate --model "$T/nan/checkpoints/$last" --max-tokens 4 --greedy > /dev/null 2>&1 ||
    fail "the last checkpoint before divergence does not load"
fi
echo "e2e pretrain/generate: ok"
