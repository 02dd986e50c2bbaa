/* Peak float32 throughput of this CPU, for the MFU estimate
 *   MFU = (training FLOPs per token x tokens per second) / peak FLOP/s.
 *
 * peak = threads x clock x vector lanes x FMA units x 2 (an FMA is two FLOPs).
 * Lanes come from the instruction set (AVX-512: 16 floats, AVX2: 8, else 4);
 * two FMA units per core is what current x86 server and desktop cores have.
 * The clock is the base frequency the kernel reports, or the "cpu MHz" line.
 * It is an estimate: `soju pretrain --peak-tflops` overrides it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soju/train.h"

static double read_khz(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    double v = 0;
    if (fscanf(f, "%lf", &v) != 1) v = 0;
    fclose(f);
    return v;
}

static double cpu_hz(void) {
    double khz = read_khz("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency");
    if (khz <= 0) khz = read_khz("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    if (khz > 0) return khz * 1e3;
    FILE *f = fopen("/proc/cpuinfo", "r");
    double mhz = 0;
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "cpu MHz", 7)) {
                const char *c = strchr(line, ':');
                if (c) mhz = atof(c + 1);
                break;
            }
        fclose(f);
    }
    return mhz > 0 ? mhz * 1e6 : 2.5e9;
}

static int simd_lanes(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
#endif
    return 4;
}

double soju_cpu_peak_flops(int threads) {
    if (threads <= 0) threads = soju_num_threads();
    return (double)threads * cpu_hz() * simd_lanes() * 2 /* FMA units */ * 2 /* FLOPs per FMA */;
}
