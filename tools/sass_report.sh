#!/bin/bash
# Registers, spills and main-loop size of the kernels in one CUDA source file,
# for kernel work on a machine without a GPU (see tools/sass_loops.py).
#   bash tools/sass_report.sh src/ops/cuda/attention_hopper.cu [name-filter] [arch...]
# Needs nvcc; cuobjdump and nvdisasm come from the CUDA toolkit or, where it lacks
# them, from NVIDIA's PyPI wheels (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm),
# unpacked under .cache/cuobjdump.
set -euo pipefail
src=$1
filter=${2:-}
shift $(($# < 2 ? $# : 2))
archs=${*:-sm_90a sm_80}
root=$(cd "$(dirname "$0")/.." && pwd)
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUOBJDUMP=$(command -v cuobjdump || true)
[ -z "$CUOBJDUMP" ] && [ -x /usr/local/cuda/bin/cuobjdump ] && CUOBJDUMP=/usr/local/cuda/bin/cuobjdump
if [ -z "$CUOBJDUMP" ]; then
    # cuobjdump -sass runs nvdisasm: both come from their PyPI wheels
    cache=$root/.cache/cuobjdump
    if [ ! -x "$cache/bin/cuobjdump" ] || [ ! -x "$cache/bin/nvdisasm" ]; then
        mkdir -p "$cache/bin"
        for tool in cuobjdump nvdisasm; do
            python3 -m pip download --quiet --no-deps "nvidia-cuda-$tool" -d "$cache/wheels" >&2
            python3 -m zipfile -e "$(ls "$cache"/wheels/nvidia_cuda_${tool}-*.whl | head -1)" "$cache/x" >&2
            cp "$(find "$cache/x" -name "$tool" -type f | head -1)" "$cache/bin/$tool"
            chmod +x "$cache/bin/$tool"
        done
    fi
    CUOBJDUMP=$cache/bin/cuobjdump
    export PATH=$cache/bin:$PATH
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gencode=""
for a in $archs; do gencode="$gencode -gencode arch=compute_${a#sm_},code=$a"; done
# the flags of the CMake build (CMakeLists.txt, CUDA part)
"$NVCC" -O3 -std=c++17 --use_fast_math -DSOJU_WGMMA $gencode -Xptxas -v -I "$root/include" -I "$root/src" \
    -c "$src" -o "$tmp/k.o" 2> "$tmp/ptxas.txt" || { cat "$tmp/ptxas.txt"; exit 1; }
for a in $archs; do
    echo "== $a"
    # ptxas: one 'Compiling entry function' line, then the stack/spill line, then 'Used N registers'
    awk -v arch="$a" -v f="$filter" '
        /Compiling entry function/ { match($0, /function .[^ ]*. for .[^ ]*./); s = substr($0, RSTART + 9);
                                     split(s, w, "'"'"'"); name = w[2]; ar = w[4]; next }
        /spill stores/ { spill = $5 " B spill stores"; next }
        /Used [0-9]+ registers/ { if (ar == arch && index(name, f)) { match($0, /Used [0-9]+ registers/);
                                  print "  " name ": " substr($0, RSTART + 5, RLENGTH - 15) " registers, " spill } }
    ' "$tmp/ptxas.txt"
    "$CUOBJDUMP" -sass -arch "$a" "$tmp/k.o" | python3 "$root/tools/sass_loops.py" "$filter" | sed 's/^/  /'
done
# ptxas's own performance warnings (C75xx: wgmma serialized for lack of registers, and the like)
grep -E "\(C75[0-9]+\)" "$tmp/ptxas.txt" | grep -F -- "$filter" | sed 's/^ptxas info *: /  ptxas: /' || true
