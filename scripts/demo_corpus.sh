#!/usr/bin/env bash
# A small corpus the project makes itself, for the demo and the tests on a
# machine without ../shared/data: short English and Korean "stories" built
# from word lists. Deterministic for a given awk.
#
#   bash scripts/demo_corpus.sh OUT.txt [N_DOCS]
#       N_DOCS mixed stories (about 30% Korean), blank-line-separated.
#   bash scripts/demo_corpus.sh --raw DIR [N_DOCS]
#       the raw inputs of recipes/demo-data.yaml:
#       DIR/en.txt           English stories, blank-line-separated
#       DIR/ko_wiki.txt      Korean stories, one per line
#       DIR/ko_comments.txt  noisy Korean comments, one per line, with the junk the
#                            pipeline must remove: runs of repeated characters,
#                            jamo-only lines, spam, phone numbers and e-mails,
#                            very short lines and exact duplicates
set -euo pipefail
raw=0
if [ "${1:-}" = "--raw" ]; then raw=1; shift; fi
out=$1
n=${2:-6000}
if [ $raw = 1 ]; then mkdir -p "$out"; fi
awk -v n="$n" -v raw="$raw" -v out="$out" '
function english(   k, i, s, line) {
  k = 3 + int(rand() * 4);
  line = "";
  for (i = 0; i < k; i++) {
    s = S[1 + int(rand() * ns)] " " V[1 + int(rand() * nv)] " " O[1 + int(rand() * no)] " " P[1 + int(rand() * np)] ".";
    line = line (i ? " " : "") toupper(substr(s, 1, 1)) substr(s, 2);
  }
  return line;
}
function korean(   k, i, line) {
  k = 3 + int(rand() * 4);
  line = "";
  for (i = 0; i < k; i++)
    line = line (i ? " " : "") KS[1 + int(rand() * nks)] " " KP[1 + int(rand() * nkp)] " " KO[1 + int(rand() * nko)] " " KV[1 + int(rand() * nkv)] ".";
  return line;
}
function comment(   r, c) {
  r = rand();
  if (r < 0.03) return "ㅋㅋㅋㅋㅋㅋㅋㅋ ㅠㅠㅠㅠ ㅋㅋ";
  if (r < 0.05) return "최고의 토토사이트 추천 먹튀검증 완료 지금 가입하면 보너스 " int(rand() * 100) "만원";
  if (r < 0.08) return "굿";
  c = CS[1 + int(rand() * ncs)] " " CA[1 + int(rand() * nca)] " " CV[1 + int(rand() * ncv)];
  if (rand() < 0.5) c = c " " CS[1 + int(rand() * ncs)] " " CA[1 + int(rand() * nca)] " " CV[1 + int(rand() * ncv)];
  c = c T[1 + int(rand() * nt)];
  r = rand();
  if (r < 0.02) c = c " 문의는 010-" 1000 + int(rand() * 9000) "-" 1000 + int(rand() * 9000) " 으로";
  else if (r < 0.03) c = c " 연락 fan" int(rand() * 1000) "@example.com";
  return c;
}
BEGIN {
  srand(7);
  ns = split("the cat|the old dog|a small bird|the farmer|my sister|the king|a young girl|the baker|our teacher|the fox", S, "|");
  nv = split("sees|finds|carries|paints|loves|follows|watches|builds|sells|remembers", V, "|");
  no = split("a red apple|the green door|a wooden boat|the quiet river|an old map|the tall tower|a warm loaf|the silver key|a blue kite|the empty cup", O, "|");
  np = split("in the garden|by the sea|at the market|near the hill|in the morning|under the bridge|after the rain|before dinner", P, "|");
  nks = split("고양이가|강아지가|농부가|선생님이|아이가|할머니가|여우가|왕이", KS, "|");
  nkp = split("공원에서|시장에서|바닷가에서|학교에서|숲속에서|집에서", KP, "|");
  nko = split("사과를|책을|편지를|꽃을|빵을|노래를|그림을", KO, "|");
  nkv = split("먹었다|읽었다|보냈다|찾았다|샀다|불렀다|그렸다", KV, "|");
  ncs = split("이 드라마|주인공 연기|오늘 방송|작가님 전개|엄마 역 배우|마지막 장면|이번 회|음악", CS, "|");
  nca = split("진짜|너무|정말|완전|좀|역시", CA, "|");
  ncv = split("재밌다|지루하다|최고다|별로다|답답하다|감동이다|웃기다|슬프다", CV, "|");
  nt = split("|!!!!!!!!!!|ㅋㅋㅋㅋㅋㅋㅋ|ㅠㅠㅠㅠㅠㅠ|...|^^||", T, "|");
  if (!raw) {
    printf "" > out;
    for (d = 0; d < n; d++) {
      print (rand() < 0.3 ? korean() : english()) > out;
      print "" > out;
    }
    exit;
  }
  en = out "/en.txt"; wiki = out "/ko_wiki.txt"; com = out "/ko_comments.txt";
  printf "" > en; printf "" > wiki; printf "" > com;
  for (d = 0; d < n; d++) {
    if (rand() < 0.6) { print english() > en; print "" > en }
    else print korean() > wiki;
  }
  for (d = 0; d < n; d++) {
    c = comment();
    kept[d] = c;
    print c > com;
    if (d > 10 && rand() < 0.08) print kept[int(rand() * d)] > com; # a repost
  }
}'
