#!/usr/bin/env bash
# A small corpus the project makes itself, for the demo on a machine without
# ../shared/data: short English and Korean "stories" built from word lists,
# one document per blank-line-separated block. Deterministic for a given awk.
#   bash scripts/demo_corpus.sh OUT.txt [N_DOCS]
set -euo pipefail
out=$1
n=${2:-6000}
awk -v n="$n" 'BEGIN {
  srand(7);
  ns = split("the cat|the old dog|a small bird|the farmer|my sister|the king|a young girl|the baker|our teacher|the fox", S, "|");
  nv = split("sees|finds|carries|paints|loves|follows|watches|builds|sells|remembers", V, "|");
  no = split("a red apple|the green door|a wooden boat|the quiet river|an old map|the tall tower|a warm loaf|the silver key|a blue kite|the empty cup", O, "|");
  np = split("in the garden|by the sea|at the market|near the hill|in the morning|under the bridge|after the rain|before dinner", P, "|");
  nks = split("고양이가|강아지가|농부가|선생님이|아이가|할머니가|여우가|왕이", KS, "|");
  nkp = split("공원에서|시장에서|바닷가에서|학교에서|숲속에서|집에서", KP, "|");
  nko = split("사과를|책을|편지를|꽃을|빵을|노래를|그림을", KO, "|");
  nkv = split("먹었다|읽었다|보냈다|찾았다|샀다|불렀다|그렸다", KV, "|");
  for (d = 0; d < n; d++) {
    k = 3 + int(rand() * 4);
    korean = rand() < 0.3;
    line = "";
    for (i = 0; i < k; i++) {
      if (korean)
        s = KS[1 + int(rand() * nks)] " " KP[1 + int(rand() * nkp)] " " KO[1 + int(rand() * nko)] " " KV[1 + int(rand() * nkv)] ".";
      else {
        s = S[1 + int(rand() * ns)] " " V[1 + int(rand() * nv)] " " O[1 + int(rand() * no)] " " P[1 + int(rand() * np)] ".";
        s = toupper(substr(s, 1, 1)) substr(s, 2);
      }
      line = line (i ? " " : "") s;
    }
    print line;
    print "";
  }
}' > "$out"
