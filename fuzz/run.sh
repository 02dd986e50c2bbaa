#!/usr/bin/env bash
# Build the libFuzzer targets (clang, AddressSanitizer + UBSan) into build-fuzz
# and run each one for a bounded time from its seed corpus in fuzz/corpus/<name>.
#   bash fuzz/run.sh [seconds-per-target] [target...]
# Run longer, e.g. an hour on the shard parser:
#   bash fuzz/run.sh 3600 fuzz_shard
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOJU_FUZZ=ON -DSOJU_NATIVE=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/${t#fuzz_}"
  work="build-fuzz/corpus/${t#fuzz_}"
  mkdir -p "$work"
  echo "== fuzz $t for ${secs}s (seeds: $seeds)"
  # New inputs go to the scratch corpus; the checked-in seeds are only read.
  # A finding prints the sanitizer's report (the end of the log), not just
  # the last lines, and stops the run.
  log="build-fuzz/$t.log"
  if ! build-fuzz/"$t" -artifact_prefix=build-fuzz/ -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=0 "$work" "$seeds" >"$log" 2>&1; then
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED)' "$log" | tail -n 60
    echo "== $t found a failure (log: $log); reproduce with: build-fuzz/$t <the crash- file above>"
    exit 1
  fi
  tail -n 2 "$log"
done
