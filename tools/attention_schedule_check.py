#!/usr/bin/env python3
"""Host models of the schedules of the Hopper attention kernels
(src/ops/cuda/attention_hopper.cu), for changes made without a GPU.

1. The block walk with two or three warpgroups per block
   (SOJU_CUDA_ATT_FWD128, SOJU_CUDA_ATT_FWD192): a
   block walks key tiles from the first warpgroup's first visible key
   (kv_lo, as attn_bounds_kernel computes it) to its last query, and a
   warpgroup skips the tiles outside [its kv_lo, its last query]. Checked:
   every key a query may see lies in a tile its warpgroup computes.
2. The overlapped forward (SOJU_CUDA_ATT_FWD_PIPE): K loaded one tile ahead,
   V one tile behind, O += P_{j-1} V_{j-1} beside S_j, the rescale after it,
   P = 0 against a zeroed V buffer before the first tile. Checked: every
   product reads the tile it needs, no load lands in a buffer read in the
   same step, and the output equals the plain schedule's (fp32 sums, P and V
   rounded to bf16, the conditional rescale) and is near the exact softmax.

3. The warp-specialized forward (SOJU_CUDA_ATT_FWD_WS): the walk of item 1
   from the first visible key rounded down to a multiple of 4, and the ring
   of K/V buffers between a producer and 2-3 consumers (with the overlap of
   item 2, a buffer released one tile later), run as randomly interleaved
   processes on the mbarrier model of item 4. Checked: every read sees the
   tile it needs, no copy lands in a buffer being read, no deadlock; a
   release before the V is read must report errors.
4. The warp-specialized backward (SOJU_CUDA_ATT_BWD_WS, hopper_bwd_ws_kernel):
   blocks of 128 keys walking 64-query tiles up to the last 64-key half's
   q_hi (windows, runs of document ids, unordered ids; checked: every visible
   key/query pair is in exactly one consumer's keys and one tile of its
   block's walk); and its synchronization, run as
   randomly interleaved processes (a producer thread, the bulk copies landing
   at random later times, two consumers) on models of mbarriers (phases,
   parity waits, expected bytes) and named barriers (arrival counts).
   Checked: every tile reads the stage filled for it, no copy lands in a stage
   still being read, no dS^T half is written while the dQ owner of an earlier
   tile reads that buffer, the owner sees both halves of its own tile, (with
   SOJU_CUDA_DQ_BULK) the reducing thread reads the dQ staging of the right
   tile and no owner overwrites it meanwhile, and nothing deadlocks. The same
   model with a synchronization piece removed (one dS buffer, one barrier id,
   an empty barrier released by one consumer, a full wait on the wrong phase,
   no wait for the staging to be free) must report errors.

usage: python3 tools/attention_schedule_check.py   (needs numpy; exits 1 on a mismatch)
"""
import random
import sys

import numpy as np

BLK = 64
SLACK = 8.0  # RESCALE_SLACK


def kv_lo(T, doc, window):
    """attn_bounds_kernel's first visible key per block of 64 queries."""
    runs = doc is not None and all(doc[i] >= doc[i - 1] for i in range(1, T))
    out = []
    for blk in range((T + BLK - 1) // BLK):
        q0, lo = blk * BLK, 0
        if runs:
            lo = next(j for j in range(T) if doc[j] >= doc[q0])
        if window > 0:
            lo = max(lo, q0 - window + 1)
        out.append(lo)
    return out


def visible(q, k, doc, window):
    return k <= q and (window <= 0 or q - k < window) and (doc is None or doc[q] == doc[k])


def check_walk(trials=1500, wgs=2, round4=False):
    """round4: the warp-specialized forward's walk, from the first visible key
    rounded down to a multiple of 4."""
    bad = 0
    for _ in range(trials):
        T = random.randint(1, 500)
        window = random.choice([0, 0, random.randint(1, 300)])
        doc = None
        if random.random() < 0.5:
            d, doc = 0, []
            for _t in range(T):
                d += random.random() < 0.02
                doc.append(d)
        bounded = doc is not None or window > 0
        los = kv_lo(T, doc, window)
        nblk = len(los)
        for blk in range((nblk + wgs - 1) // wgs):
            lo = los[blk * wgs] if bounded else 0
            if round4:
                lo &= ~3
            hi = min((blk + 1) * wgs * BLK, T)
            tiles = [lo + i * BLK for i in range((hi - lo + BLK - 1) // BLK)]
            for wg in range(wgs):
                b = blk * wgs + wg
                if b >= nblk:
                    continue
                q0, qhi, qlo = b * BLK, min(b * BLK + BLK, T), los[b] if bounded else 0
                seen = set()
                for k0 in tiles:
                    if k0 < qhi and k0 + BLK > qlo:
                        seen.update(range(k0, min(k0 + BLK, hi)))
                bad += sum(1 for q in range(q0, qhi) for k in range(T) if visible(q, k, doc, window) and k not in seen)
    return bad


def bf16(x):
    b = np.asarray(x, dtype=np.float32).copy().view(np.uint32)
    b += 0x7FFF + ((b >> 16) & 1)
    b &= 0xFFFF0000
    return b.view(np.float32)


def softmax_tile(s, m, l, scale):
    """attention_common.cuh's softmax_tile for a block of rows: p, m, l, alpha, moved."""
    mx = np.max(s, axis=1) * scale
    move = mx > m + SLACK
    alpha = np.ones_like(m)
    if move.any():
        with np.errstate(invalid="ignore"):
            alpha = np.where(move, np.exp2(m - mx), 1.0).astype(np.float32)
        m = np.where(move, mx, m).astype(np.float32)
        l = l * alpha
    ref = np.where(m == -np.inf, 0, m)
    p = np.exp2(s * scale - ref[:, None]).astype(np.float32)
    return p, m, l + p.sum(1), alpha, move.any()


def check_pipe(trials=300, rows=8, dim=16):
    rng = np.random.default_rng(1)
    schedule_errors, worst_vs_plain, worst_vs_exact = 0, 0.0, 0.0
    scale = 0.125 * 1.4426950408889634
    for _ in range(trials):
        n = random.randint(1, 9)
        S = [(rng.normal(size=(rows, BLK)) * rng.uniform(1, 30) +
              rng.uniform(-5, 40) * np.arange(1, BLK + 1)[None, :] / BLK * (t + 1)).astype(np.float32) for t in range(n)]
        V = [rng.normal(size=(BLK, dim)).astype(np.float32) for _t in range(n)]
        # plain: S, softmax (rescale), O += P V per tile
        m, l, O = np.full(rows, -np.inf, np.float32), np.zeros(rows, np.float32), np.zeros((rows, dim), np.float32)
        for t in range(n):
            p, m, l, alpha, moved = softmax_tile(S[t], m, l, scale)
            O = (O * alpha[:, None] if moved else O) + bf16(p) @ bf16(V[t])
        plain = O / l[:, None]
        # pipelined, with the buffers' contents tracked
        kbuf, vbuf = [0, None], [None, "zero"]
        m, l, O = np.full(rows, -np.inf, np.float32), np.zeros(rows, np.float32), np.zeros((rows, dim), np.float32)
        pa = np.zeros((rows, BLK), np.float32)
        for it in range(n):
            buf = it & 1
            loads = ([("K", buf ^ 1, it + 1)] if it + 1 < n else []) + [("V", buf, it)]
            schedule_errors += kbuf[buf] != it  # S_it reads K_it
            schedule_errors += vbuf[buf ^ 1] != ("zero" if it == 0 else it - 1)  # the owed product reads V_{it-1}
            schedule_errors += sum(1 for kind, b, _t in loads if (kind == "K" and b == buf) or (kind == "V" and b != buf))
            O = O + bf16(pa) @ bf16(np.zeros((BLK, dim), np.float32) if it == 0 else V[it - 1])
            pa, m, l, alpha, moved = softmax_tile(S[it], m, l, scale)
            if moved:
                O = O * alpha[:, None]
            for kind, b, t in loads:  # they land at the step's end (cp.async wait, barrier)
                (kbuf if kind == "K" else vbuf)[b] = t
        schedule_errors += vbuf[(n - 1) & 1] != n - 1
        O = O + bf16(pa) @ bf16(V[n - 1])
        piped = O / l[:, None]
        allS, allV = np.concatenate(S, 1), np.concatenate(V, 0)
        e = np.exp((allS - allS.max(1, keepdims=True)) * 0.125)
        exact = (e @ allV) / e.sum(1, keepdims=True)
        worst_vs_plain = max(worst_vs_plain, float(np.max(np.abs(piped - plain))))
        worst_vs_exact = max(worst_vs_exact, float(np.max(np.abs(piped - exact)) / np.max(np.abs(exact))))
    return schedule_errors, worst_vs_plain, worst_vs_exact


def check_tma_phases(pipe, max_tiles=12):
    """The forward's TMA barriers (attention_hopper.cu, TMA with and without
    PIPE): iteration it arms barrier (it + 1) % 2 with what iteration it + 1
    reads and waits on barrier it % 2 with parity (it / 2) % 2; the prologue
    arms barrier 0 with Q and K_0 (and V_0 without PIPE); PIPE waits once
    more after the loop for the last V. Checked for 1..max_tiles tiles: each
    wait's parity names the phase it gets (phases of a barrier are waited in
    order, never two ahead), that phase holds every tile the step reads, and
    no barrier is re-armed before its last phase was waited."""
    errors = 0
    for n in range(1, max_tiles + 1):
        phases = [[], []]  # per barrier: the items of each armed phase
        waited = [0, 0]    # phases waited so far per barrier

        def arm(b, items):
            nonlocal errors
            errors += waited[b] != len(phases[b])  # its previous phase not yet waited: two ahead
            phases[b].append(set(items))

        def wait(b, parity, needs):
            nonlocal errors
            k = waited[b]
            errors += k >= len(phases[b]) or k % 2 != parity or not needs <= phases[b][k]
            waited[b] += 1

        arm(0, {"Q", "K0"} | (set() if pipe else {"V0"}))
        for it in range(n):
            b = it % 2
            if pipe:
                arm(b ^ 1, ({f"K{it + 1}"} if it + 1 < n else set()) | {f"V{it}"})
            elif it + 1 < n:
                arm(b ^ 1, {f"K{it + 1}", f"V{it + 1}"})
            needs = {f"K{it}"} | ({"Q"} if it == 0 else set())
            needs |= ({f"V{it - 1}"} if it > 0 else set()) if pipe else {f"V{it}"}
            wait(b, (it >> 1) & 1, needs)
        if pipe:
            wait(n % 2, (n >> 1) & 1, {f"V{n - 1}"})
    return errors


def q_hi(T, doc, window):
    """attn_bounds_kernel's one-past-the-last query that can see a key of each block of 64 keys."""
    runs = doc is not None and all(doc[i] >= doc[i - 1] for i in range(1, T))
    out = []
    for blk in range((T + BLK - 1) // BLK):
        k1, hi = min(T, blk * BLK + BLK) - 1, T
        if runs:
            hi = next((j for j in range(k1 + 1, T) if doc[j] > doc[k1]), T)
        if window > 0:
            hi = min(hi, k1 + window)
        out.append(hi)
    return out


def check_ws_walk(trials=400, step=BLK):
    """Blocks of 128 keys (make_kv_block with halves = 2): query tiles of
    `step` rows (64, or 128 for SOJU_CUDA_ATT_BWD_WS=128) from k0 while below
    the last half's q_hi; consumer c owns keys k0 + 64 c ... Every visible pair
    must be computed exactly once."""
    bad = 0
    for _ in range(trials):
        T = random.randint(1, 400)
        window = random.choice([0, random.randint(1, 300)])
        doc = None
        if random.random() < 0.5:  # runs of ids (bounded walks), or unordered ids (whole walks)
            ordered, doc = random.random() < 0.7, []
            for _t in range(T):
                doc.append(len(doc) and doc[-1] + (random.random() < 0.02) if ordered else random.randint(0, 3))
        his = q_hi(T, doc, window)
        nblk = len(his)
        count = {}
        for kb in range((nblk + 1) // 2):
            k0 = kb * 2 * BLK
            qhi = his[min(2 * kb + 1, nblk - 1)]
            nqt = (qhi - k0 + step - 1) // step if qhi > k0 else 0
            for i in range(nqt):
                qs = k0 + i * step
                for c in range(2):
                    for k in range(k0 + 64 * c, min(k0 + 64 * c + 64, T)):
                        for q in range(qs, min(qs + step, T)):
                            if visible(q, k, doc, window):
                                count[(q, k)] = count.get((q, k), 0) + 1
        pairs = [(q, k) for q in range(T) for k in range(T) if visible(q, k, doc, window)]
        bad += sum(1 for pk in pairs if count.get(pk, 0) != 1)
    return bad


class Mbar:
    """An mbarrier: a phase completes when its arrivals and expected bytes are
    all in; a parity wait passes once the phase of that parity has completed."""

    def __init__(self, count):
        self.count, self.pending, self.tx, self.phase = count, count, 0, 0

    def _step(self):
        if self.pending == 0 and self.tx == 0:
            self.phase += 1
            self.pending = self.count

    def arrive(self, expect_bytes=0):
        self.tx += expect_bytes
        self.pending -= 1
        self._step()

    def land(self, nbytes):
        self.tx -= nbytes
        self._step()

    def ready(self, parity):
        return (self.phase & 1) != parity


class Named:
    """A named barrier over two consumers: a generation ends at two arrivals."""

    def __init__(self):
        self.count, self.gen = 0, 0

    def arrive(self):
        g = self.gen
        self.count += 1
        if self.count == 2:
            self.count, self.gen = 0, self.gen + 1
        return g


def ws_sync_errors(n, stages, broken=None, bulk=False):
    """One block of hopper_bwd_ws_kernel with n query tiles, randomly
    interleaved; bulk: the dQ tiles through each consumer's staging to a
    reducing thread (dq_full / dq_free)."""
    err = [0]
    full = [Mbar(1) for _ in range(stages)]
    empty = [Mbar(1 if broken == "one release" else 2) for _ in range(stages)]
    kv_full = Mbar(1)
    named = [Named(), Named()]
    stage_tile = [None] * stages   # the tile whose data a stage holds
    readers = [set() for _ in range(stages)]
    flying = []                    # bulk copies issued, not landed: (stage or -1 for K/V, tile)
    ds_half = [[None, None], [None, None]]  # per dS buffer, the tile each consumer's half holds
    ds_reading = [False, False]
    dq_full, dq_free = [Mbar(1), Mbar(1)], [Mbar(1), Mbar(1)]
    staging, staging_read = [None, None], [False, False]

    def reducer():
        for it in range(n):
            c = it & 1
            yield lambda c=c, it=it: dq_full[c].ready((it >> 1) & 1)
            err[0] += staging[c] != it
            staging_read[c] = True
            yield None  # the bulk reductions read the staging
            err[0] += staging[c] != it
            staging_read[c] = False
            dq_free[c].arrive()

    def producer():
        kv_full.arrive(1)
        flying.append((-1, 0))
        yield from ring_producer(n, stages, full, empty, flying)

    def consumer(c):
        yield lambda: kv_full.ready(0)
        for it in range(n):
            st = it % stages
            parity = ((it // stages) + (broken == "full parity")) & 1
            yield lambda st=st, parity=parity: full[st].ready(parity)
            err[0] += stage_tile[st] != it
            readers[st].add(c)
            yield None  # S^T, dP^T, P^T, dV
            b = 0 if broken == "one dS buffer" else it & 1
            err[0] += ds_reading[b]  # writing a buffer the dQ product reads
            ds_half[b][c] = it
            yield None  # dK
            bar = named[0 if broken == "one barrier id" else it & 1]
            if (it & 1) == c:  # the dQ owner
                g = bar.arrive()
                yield lambda bar=bar, g=g: bar.gen > g
                err[0] += ds_half[b] != [it, it]
                ds_reading[b] = True
                yield None  # the dQ product runs
                err[0] += ds_half[b] != [it, it]
                ds_reading[b] = False
                if bulk:
                    if it >= 2 and broken != "no dq_free wait":
                        yield lambda c=c, it=it: dq_free[c].ready(((it >> 1) - 1) & 1)
                    err[0] += staging_read[c]  # overwriting what the reductions read
                    staging[c] = it
                    dq_full[c].arrive()
            else:
                bar.arrive()
                yield None
            readers[st].discard(c)
            empty[st].arrive()
            yield None

    def land(st, it):
        if st < 0:
            kv_full.land(1)
            return
        err[0] += bool(readers[st])  # landing in a stage still being read
        stage_tile[st] = it
        full[st].land(1)

    procs = [producer(), consumer(0), consumer(1)] + ([reducer()] if bulk else [])
    return run_interleaved(procs, flying, land) + err[0]


def fws_sync_errors(n, stages, cwg, pipe, broken=None):
    """One block of hopper_fwd_ws_kernel with n key tiles, randomly
    interleaved: a producer, the copies landing later, cwg consumers. PIPE:
    iteration it reads K_it and V_{it-1}, releasing buffer it-1 after; the
    last V after the loop."""
    err = [0]
    full = [Mbar(1) for _ in range(stages)]
    empty = [Mbar(cwg) for _ in range(stages)]
    stage_tile = [None] * stages
    readers = [set() for _ in range(stages)]
    flying = []

    def read(c, it):
        st = it % stages
        err[0] += stage_tile[st] != it
        readers[st].add((c, it))

    def release(c, it):
        st = it % stages
        readers[st].discard((c, it))
        empty[st].arrive()

    def consumer(c):
        for it in range(n):
            st = it % stages
            yield lambda st=st, it=it: full[st].ready((it // stages) & 1)
            read(c, it)  # K_it (and, without PIPE, V_it)
            if pipe and it > 0:
                read(c, it - 1)  # V_{it-1}
                if broken == "early release":
                    release(c, it - 1)
            yield None  # the products and the softmax
            if pipe and it > 0:
                err[0] += stage_tile[(it - 1) % stages] != it - 1
                if broken != "early release":
                    release(c, it - 1)
            err[0] += stage_tile[st] != it
            if not pipe:
                release(c, it)
            yield None
        if pipe and n:
            read(c, n - 1)
            yield None
            err[0] += stage_tile[(n - 1) % stages] != n - 1
            release(c, n - 1)

    def land(st, it):
        err[0] += bool(readers[st])  # landing in a stage still being read
        stage_tile[st] = it
        full[st].land(1)

    procs = [ring_producer(n, stages, full, empty, flying)] + [consumer(c) for c in range(cwg)]
    return run_interleaved(procs, flying, land) + err[0]


def ring_producer(n, stages, full, empty, flying):
    """The producer thread's loop over n tiles in a ring of `stages` buffers:
    the k-th filling of a buffer waits for the consumers' release of the
    (k-1)-th (phase k-1 of its empty barrier), arms its full barrier and
    issues the copy; at the end it waits for the last releases."""
    for it in range(n):
        st = it % stages
        if it >= stages:
            yield lambda st=st, it=it: empty[st].ready((it // stages - 1) & 1)
        full[st].arrive(1)
        flying.append((st, it))
        yield None
    for it in range(max(n - stages, 0), n):
        yield lambda it=it: empty[it % stages].ready((it // stages) & 1)


def run_interleaved(procs, flying, land):
    """Runs generator processes (each yields None for a step or a callable that
    says whether it may go on) and lands the issued copies in `flying` (calling
    land(stage, tile)) in a random interleaving, each process at its own speed
    for the run, some very slow, so that one falling far behind the others
    gets explored. Returns 1000 on a deadlock, else 0."""
    waits = [None] * len(procs)
    done = [False] * len(procs)
    speed = [random.choice([1.0, 1.0, 0.3, 0.03]) for _ in procs]
    land_p = random.choice([0.3, 0.05])
    while not all(done) or flying:
        ready = [i for i in range(len(procs)) if not done[i] and (waits[i] is None or waits[i]())]
        if flying and (not ready or random.random() < land_p):
            land(*flying.pop(random.randrange(len(flying))))
            continue
        if not ready:
            return 1000
        i = random.choices(ready, weights=[speed[j] for j in ready])[0]
        try:
            waits[i] = next(procs[i])
        except StopIteration:
            done[i] = True
    return 0


def check_fws_sync(trials=300, broken=None):
    return sum(fws_sync_errors(random.randint(1, 14), random.choice([2, 3, 4]), random.choice([2, 3]),
                               pipe=broken is not None or random.random() < 0.5, broken=broken) for _ in range(trials))


def check_ws_sync(trials=300, broken=None):
    return sum(ws_sync_errors(random.randint(1, 14), random.choice([2, 3, 4]), broken, bulk=random.random() < 0.5)
               for _ in range(trials))


def main():
    random.seed(5)
    missed = check_walk(wgs=2) + check_walk(wgs=3)
    print(f"two- and three-warpgroup block walks: {missed} visible keys outside the computed tiles")
    # (wgs=1: the GQA mode, whose consumers are heads on one query block: they share its walk)
    fws_missed = sum(check_walk(500, wgs=w, round4=True) for w in (1, 2, 3))
    fws_errors, fws_caught = check_fws_sync(), check_fws_sync(broken="early release")
    print(f"warp-specialized forward (query blocks or GQA heads): {fws_missed} visible keys outside the computed "
          f"tiles; {fws_errors} "
          f"synchronization errors in 300 interleaved runs (2-3 consumers, with and without the overlap); "
          f"releasing the buffer before its V is read: {fws_caught} (must be > 0)")
    missed += fws_missed + fws_errors + (fws_caught == 0)
    errors, vs_plain, vs_exact = check_pipe()
    print(f"overlapped forward: {errors} schedule errors; max |pipelined - plain| {vs_plain:.1e}; "
          f"max error against the exact softmax {vs_exact:.1e} of the largest output (bf16 P and V)")
    tma = check_tma_phases(False) + check_tma_phases(True)
    print(f"TMA barrier phases (with and without the overlap, 1-12 tiles): {tma} errors")
    ws_missed, ws_errors = check_ws_walk() + check_ws_walk(200, step=2 * BLK), check_ws_sync()
    caught = {b: check_ws_sync(broken=b)
              for b in ("one dS buffer", "one barrier id", "one release", "full parity", "no dq_free wait")}
    print(f"warp-specialized backward: {ws_missed} visible pairs not computed exactly once; {ws_errors} "
          "synchronization errors in 300 interleaved runs; with a piece removed: "
          + ", ".join(f"{b} {e}" for b, e in caught.items()) + " (each must be > 0)")
    ws_bad = ws_missed or ws_errors or not all(caught.values())
    sys.exit(1 if missed or errors or tma or vs_plain > 0 or vs_exact > 2e-2 or ws_bad else 0)


if __name__ == "__main__":
    main()
