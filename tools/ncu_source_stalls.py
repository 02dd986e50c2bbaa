#!/usr/bin/env python3
"""Where a kernel's warps wait, from Nsight Compute's per-instruction view.

On the GPU machine (ncu there, not here), for one kernel:
  ncu --set full -k regex:hopper_bwd -c 1 -o $OUT/k attn_bench --batch 8 --reps 1
  ncu --import $OUT/k.ncu-rep --page source --csv --print-source sass > $OUT/k_source.csv
then, back on any machine:
  python3 tools/ncu_source_stalls.py k_source.csv [top]

The CSV has one row per SASS instruction; its column names vary between ncu
versions, so they are found by what they contain: the instruction text
("Source"), the warp-state samples ("Sampling ... All" or the first column
with "Sampling"), and per-reason stall columns ("stall_..." or names with
"Stall"). Prints the columns it used, the samples per stall reason, per
opcode, per stretch of code between the synchronizing instructions (HGMMA
waits, barriers, memory barriers: the phases of a tile), and the top
instructions. The phase view is the one that says which part of a tile the
time goes to.
"""
import csv
import re
import sys
from collections import Counter, defaultdict

SYNC = re.compile(r"\b(WARPGROUP\.DEPBAR|WARPGROUP\.ARRIVE|BAR\.SYNC|BAR\.ARV|MEMBAR|DEPBAR|SYNCS\.PHASECHK|HGMMA)\b")


def number(text):
    try:
        return float(str(text).replace(",", "").strip() or 0)
    except ValueError:
        return None


def pick_columns(header):
    src = next((h for h in header if h.strip().lower() in ("source", "sass")), None) or next(
        (h for h in header if "source" in h.lower()), None)
    samples = [h for h in header if "sampling" in h.lower()]
    total = next((h for h in samples if "all" in h.lower()), samples[0] if samples else None)
    reasons = [h for h in header if h != total and (h.lower().startswith("stall") or "stall_" in h.lower())]
    return src, total, reasons


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    with open(sys.argv[1], newline="") as f:
        lines = [l for l in f if l.strip() and not l.startswith("==")]  # ncu's own messages start with ==
    rows = list(csv.reader(lines))
    if not rows:
        sys.exit("empty CSV")
    # the header is the first row naming a source column
    at = next((i for i, r in enumerate(rows) if any("source" in c.lower() for c in r)), 0)
    header, data = rows[at], rows[at + 1:]
    src, total, reasons = pick_columns(header)
    print(f"columns: instruction '{src}', samples '{total}', {len(reasons)} stall-reason columns")
    if src is None or total is None:
        print("header:", header)
        sys.exit("no instruction or sampling column found; adapt pick_columns to the header above")
    si, ti = header.index(src), header.index(total)
    ri = [header.index(r) for r in reasons]
    instr, samples, per_reason = [], [], Counter()
    for r in data:
        if len(r) <= max([si, ti] + ri):
            continue
        n = number(r[ti])
        if n is None:
            continue
        instr.append(r[si].strip())
        samples.append(n)
        for name, i in zip(reasons, ri):
            v = number(r[i])
            if v:
                per_reason[name] += v
    all_samples = sum(samples) or 1.0
    print(f"{len(instr)} instructions, {all_samples:.0f} samples")
    if per_reason:
        print("\nby stall reason:")
        for name, v in per_reason.most_common(12):
            print(f"  {100 * v / all_samples:5.1f}%  {name}")
    by_op = Counter()
    for text, n in zip(instr, samples):
        op = text.split()[0] if text else "?"
        if op.startswith("@"):
            op = text.split()[1] if len(text.split()) > 1 else op
        by_op[op.split(".")[0]] += n
    print("\nby opcode:")
    for op, v in by_op.most_common(12):
        print(f"  {100 * v / all_samples:5.1f}%  {op}")
    # phases: stretches ending at a synchronizing instruction, named by it
    phases = defaultdict(float)
    start, acc = 0, 0.0
    for i, (text, n) in enumerate(zip(instr, samples)):
        acc += n
        if SYNC.search(text) or i == len(instr) - 1:
            phases[(start, i, text[:60])] += acc
            start, acc = i + 1, 0.0
    print("\nby stretch of code (instructions first..last, ending at):")
    for (a, b, end), v in sorted(phases.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * v / all_samples:5.1f}%  {a:5d}..{b:5d}  {end}")
    print(f"\ntop {top} instructions:")
    order = sorted(range(len(instr)), key=lambda i: -samples[i])[:top]
    for i in order:
        print(f"  {100 * samples[i] / all_samples:5.1f}%  {i:5d}  {instr[i][:90]}")


if __name__ == "__main__":
    main()
