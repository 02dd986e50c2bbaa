#!/usr/bin/env python3
"""The attention variants to make the default, from attn_bench.sh's raw results.

usage: pick_attention.py RESULTS [MARGIN]

RESULTS holds attn_bench.sh's result lines (its RESULTS=file), one per variant
and shape:
  shape=<s> RESULT soju variant=<default | SW=v[,SW=v...]> fwd_ms=.. bwd_ms=.. out_diff=.. grad_diff=..
For each direction it takes the fastest variant that
  - switches only that direction (SOJU_CUDA_ATT_FWD*; SOJU_CUDA_ATT_BWD* and
    SOJU_CUDA_DQ_BULK), so modes like SOJU_CUDA_WGMMA=0 or
    SOJU_CUDA_DETERMINISTIC=1 are never picked,
  - ran at every shape the default ran at,
  - is right at every shape: its output and its gradients within 2e-2 of the
    default's largest value (a forward's log-sum-exp feeds the backward),
by its time summed over the shapes, and keeps it only when that sum is at
least MARGIN (default 0.02) under the default's. A variant that replaces
the whole attention (SOJU_CUDA_CUDNN: cuDNN's engines, both directions) is
weighed last by its forward plus backward time, against the sum of the two
directions' picks, with the same margin and the same rules; soju's own picks
stay beside it (they serve what cuDNN does not: packed documents, windows).
Prints a '#' line per direction saying why, then one line with the picked
switches (empty: the defaults stay). scripts/gpu_auto.sh runs it; tests/e2e/e2e_pick_attention.sh
checks it.
"""
import sys

TOLERANCE = 2e-2
DIRECTIONS = (  # name, time field, the switches that belong to it
    ("forward", "fwd_ms", ("SOJU_CUDA_ATT_FWD",)),
    ("backward", "bwd_ms", ("SOJU_CUDA_ATT_BWD", "SOJU_CUDA_DQ_BULK")),
)
WHOLE = ("SOJU_CUDA_CUDNN",)  # switches that replace both directions


def read_results(path):
    """variant -> shape -> that line's fields"""
    rows = {}
    for line in open(path):
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        if "variant" in fields and "shape" in fields:
            rows.setdefault(fields["variant"], {})[fields["shape"]] = fields
    return rows


def switches(variant):
    return [] if variant == "default" else variant.split(",")


def pick(rows, margin):
    """(explanation lines, picked switches)"""
    lines, picked = [], []
    if "default" not in rows:
        return ["# no default times: nothing picked"], []
    shapes = sorted(rows["default"])

    def total(variant, key):
        return sum(float(rows[variant][s][key]) for s in shapes)

    def eligible(variant, by_shape, prefixes, name):
        """a candidate of this kind: only these switches, every shape, right everywhere"""
        sw = switches(variant)
        if not sw or not all(s.startswith(prefixes) for s in sw):
            return False  # the default, or a variant that changes something else too
        if any(s not in by_shape for s in shapes):
            lines.append(f"# {name}: {variant} left out (not timed at every shape)")
            return False
        # "not <=": a diff of nan (or inf) is never right, and nan > TOLERANCE is False
        if any(not (float(by_shape[s][d]) <= TOLERANCE) for s in shapes for d in ("out_diff", "grad_diff")):
            lines.append(f"# {name}: {variant} WRONG (differs from the default by more than {TOLERANCE})")
            return False
        return True

    over = f"summed over {' '.join(shapes)}"
    kept_time = {}  # direction -> the time of its pick (the default's when it stays)
    for name, key, prefixes in DIRECTIONS:
        base = total("default", key)
        best, best_time = "default", base
        for variant, by_shape in rows.items():
            if eligible(variant, by_shape, prefixes, name):
                t = total(variant, key)
                if t < best_time:
                    best, best_time = variant, t
        gain = 1 - best_time / base
        if best != "default" and gain >= margin:
            picked += switches(best)
            kept_time[key] = best_time
            lines.append(f"# {name}: {best} {best_time:.4f} ms against the default's {base:.4f} ({over}): "
                         f"-{100 * gain:.1f}%")
        else:
            kept_time[key] = base
            lines.append(f"# {name}: the default stays (fastest right variant {best}, {100 * gain:.1f}% under "
                         f"the default's {base:.4f} ms, {over}; {100 * margin:.0f}% needed)")

    # the whole attention replaced, against the two directions' picks together
    base = kept_time["fwd_ms"] + kept_time["bwd_ms"]
    best, best_time = None, base
    for variant, by_shape in rows.items():
        if eligible(variant, by_shape, WHOLE, "whole attention"):
            t = total(variant, "fwd_ms") + total(variant, "bwd_ms")
            if t < best_time:
                best, best_time = variant, t
    if best and 1 - best_time / base >= margin:
        picked += switches(best)
        lines.append(f"# whole attention: {best} {best_time:.4f} ms forward + backward against "
                     f"{base:.4f} for the picks above ({over}): -{100 * (1 - best_time / base):.1f}%")
    elif best:
        lines.append(f"# whole attention: soju's kernels stay ({best} {100 * (1 - best_time / base):.1f}% under "
                     f"their {base:.4f} ms, {over}; {100 * margin:.0f}% needed)")
    return lines, picked


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lines, picked = pick(read_results(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.02)
    print("\n".join(lines))
    print(" ".join(picked))


if __name__ == "__main__":
    main()
