#!/usr/bin/env python3
"""Static look at compiled CUDA kernels, for kernel work on a machine without a GPU.

Reads `cuobjdump -sass` output and prints, for each kernel whose name contains
the filter, the size of its main loop: the conditional backward branch (a
loop's latch) whose range holds the most tensor-core instructions (HMMA /
HGMMA), the shortest such range when there are several, with the instructions
in that range and how many of them touch local memory (register spills, LDL /
STL). Unconditional branches back count only when no conditional one spans a
tensor instruction: a wait on an mbarrier polls from code placed after the
kernel's end, whose unconditional branch back spans the loop and more.

A change that adds instructions or spills to the main loop of an issue-bound
kernel usually costs time; one that only moves code outside it usually does not.
It is a guide for choosing what to time on a GPU, not a timing.

usage: cuobjdump -sass -arch sm_90a X.o | tools/sass_loops.py [name-filter]
"""
import re
import sys


def kernels(text):
    for part in re.split(r"\n\s+Function : ", text)[1:]:
        name = part.split("\n", 1)[0].strip()
        ins = [(int(m.group(1), 16), m.group(2).strip()) for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", part)]
        yield name, ins


def main_loop(ins):
    best = None
    for addr, text in ins:
        m = re.search(r"BRA (?:`\(.*?\) )?0x([0-9a-f]+)", text)
        if not m or int(m.group(1), 16) >= addr:
            continue
        lo = int(m.group(1), 16)
        body = [t for a, t in ins if lo <= a <= addr]
        mma = sum(1 for t in body if "HMMA" in t or "HGMMA" in t)
        local = sum(1 for t in body if re.search(r"\b(LDL|STL)\b", t))
        key = (text.startswith("@") and mma > 0, mma, -len(body))
        if best is None or key > best[0]:
            best = (key, len(body), mma, local)
    return best


def main():
    filt = sys.argv[1] if len(sys.argv) > 1 else ""
    for name, ins in kernels(sys.stdin.read()):
        if filt not in name:
            continue
        local = sum(1 for _, t in ins if re.search(r"\b(LDL|STL)\b", t))
        loop = main_loop(ins)
        where = f"main loop {loop[1]} instructions ({loop[2]} tensor, {loop[3]} local-memory)" if loop else "no loop"
        print(f"{name}: {len(ins)} instructions, {local} local-memory; {where}")


if __name__ == "__main__":
    main()
