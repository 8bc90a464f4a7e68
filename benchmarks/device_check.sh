#!/usr/bin/env bash
# Issue 18's device check: one command on one H100/H200 (about 10 minutes), or at a toy size on any
# machine (the test suite runs the toy size on the CPU so the script cannot rot).
#
#   benchmarks/device_check.sh OUT                      # GPU: the whole check
#   DEVICE_CHECK_TOY=1 benchmarks/device_check.sh OUT   # toy size, CPU
#
# 1. `lplabel bench accuracy --dataset tiny-imagenet --preset gpu` at IPC 10 (and 50 on the GPU):
#    200 classes, 300 epochs, bf16 Lite0 teacher at 224 px, ResNet-18-style students at 64 px;
# 2. the relabeler against the teacher's pure forward (benchmarks/bench_relabel.py: an ImageNet
#    ResNet-18 at 224 px, bf16, the same batch);
# 3. the loader's paths on the sweep's stores (benchmarks/device_loader_check.py).
# Everything is written under OUT (machine.txt, the sweeps' folders and logs, relabel-*.md,
# loader.md); commit what you report with the GPU named.
set -euo pipefail
OUT=${1:?usage: benchmarks/device_check.sh OUT}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
if [ "${DEVICE_CHECK_TOY:-0}" = 1 ]; then
  DEV=cpu
  IPCS=(1)
  BENCH=(--classes 2 --epochs 2 --seeds 1 --test-limit 2
         --settings full,lpqld-k10-keep1in2-rans,lpl-k10-int8-tail-keep1in2)
  RELABEL=(--images 8 --classes 10 --size 32 --batch-size 4 --epochs 1 --rounds 1 --forward-seconds 0.3
           --skip-legacy)
  LOADER=(--epochs 1 --image-size 64 --stores full,lpqld-k10-keep1in2)
else
  DEV=cuda
  IPCS=(10 50)
  BENCH=()
  RELABEL=(--images 10000 --size 224 --batch-size 256 --epochs 2 --amp --rounds 1)
  LOADER=(--epochs 2 --image-size 64)
fi
{
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  nvidia-smi -L 2>/dev/null || echo "gpu: none (nvidia-smi not found)"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} > "$OUT/machine.txt"
for ipc in "${IPCS[@]}"; do
  t0=$(date +%s)
  $PY -m lplabel bench accuracy --dataset tiny-imagenet --preset gpu --device "$DEV" --ipc "$ipc" \
      --out "$OUT/gpu-ipc$ipc" --no-progress "${BENCH[@]}" > "$OUT/gpu-ipc$ipc.log" 2>&1
  echo "bench accuracy --preset gpu --ipc $ipc: $(( $(date +%s) - t0 )) s wall" | tee -a "$OUT/machine.txt"
done
$PY "$HERE/bench_relabel.py" --device "$DEV" --results "$OUT" "${RELABEL[@]}" > "$OUT/relabel.log" 2>&1
$PY "$HERE/device_loader_check.py" "$OUT/gpu-ipc${IPCS[0]}" --device "$DEV" --out "$OUT/loader.md" "${LOADER[@]}" \
    > "$OUT/loader.log" 2>&1
echo "device check done: $OUT"
