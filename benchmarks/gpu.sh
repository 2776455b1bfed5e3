#!/usr/bin/env bash
# GPU training-step benchmark (one H100/H200): ViT-B/16 ChannelMAE (groups single and
# satmae) against the plain reference MAE, 224 px, 12 bands, batch 256, bf16 autocast,
# decoder 512 wide x 8 blocks (configs/pretrain_sentinel2.yaml), torch.compile off and
# on. Reports images/s, GFLOP/step, MFU (achieved FLOP/s / --peak-tflops), peak memory
# and the issue's part-3 checks (SDPA, fused AdamW, no host sync, graph breaks).
#
# Run from the repository root with a Python that has torch and timm (geomae need not
# be installed; only torch, timm and geomae.models are imported, not the data stack):
#
#   bash benchmarks/gpu.sh            # on the GPU machine (about 3-5 minutes)
#   bash benchmarks/gpu.sh --smoke    # same code path on CPU with micro dims
#
# Environment: PYTHON (python), BATCH (256), PEAK_TFLOPS (989: H100 SXM / H200 dense
# bf16), TIME_LIMIT (420 s: hard stop, partial results are kept), OUT (output folder,
# default benchmarks/results). Writes $OUT/gpu_mae_step.json and .log, prints a table last.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python}
OUT_DIR=${OUT:-benchmarks/results}
JSON="$OUT_DIR/gpu_mae_step.json"
LOG="$OUT_DIR/gpu_mae_step.log"
mkdir -p "$OUT_DIR"
rm -f "$JSON"

if [[ "${1:-}" == "--smoke" ]]; then
  RUN=(--smoke)
else
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
  "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
  RUN=(--device cuda --sizes base --img-size 224 --patch-size 16 --batch-size "${BATCH:-256}"
       --decoder-dims 512,8,16 --warmup 3 --rounds 5 --steps 5)
fi

status=0
timeout "${TIME_LIMIT:-420}" "$PYTHON" benchmarks/mae_step.py "${RUN[@]}" \
  --groups single,satmae --amp bf16 --compile both --checks --no-tables \
  --peak-tflops "${PEAK_TFLOPS:-989}" --json-out "$JSON" 2>&1 | tee "$LOG" || status=$?
if [[ $status -ne 0 ]]; then
  echo "mae_step.py exited with status $status (124 = TIME_LIMIT reached); partial results follow"
fi

"$PYTHON" - "$JSON" <<'EOF'
import json
import sys
from pathlib import Path

path = Path(sys.argv[1])
if not path.exists():
    sys.exit(f"no results in {path}")
res = json.loads(path.read_text())
env = res["env"]
print(f"\n{env.get('gpu', env['cpu'])} | torch {env['torch']} | timm {env['timm']} | {env['date']}")
cfg = res["config"]
print(
    f"{','.join(cfg['sizes'])} {cfg['img_size']}px/p{cfg['patch_size']}, batch {cfg['batch_size']}, "
    f"amp {cfg['amp']}, {res['bands']} bands, median of {cfg['rounds']} x {cfg['steps']} steps"
)
print(f"{'model':<24}{'img/s':>9}{'ms/step':>9}{'GFLOP/img':>10}{'MFU':>7}{'peak GiB':>9}{'vs ref':>8}")
for r in res["results"]:
    mem = "n/a" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb'] / 1024:.1f}"
    ratio = r.get("ratio_vs_reference")
    print(
        f"{r['model']:<24}{r['img_s']:>9.1f}{r['ms_per_step']:>9.1f}"
        f"{r['gflop_per_step'] / cfg['batch_size']:>10.1f}{r.get('mfu', 0):>7.3f}{mem:>9}"
        f"{'' if ratio is None else format(ratio, '.3f'):>8}"
    )
print(f"results: {path}")
EOF
exit $status
