#!/usr/bin/env bash
# CUDA and mixed-precision check of the CLI on a GPU machine (run through the device tool;
# the figures go into docs/benchmarks.md). Needs the wheels under .whl/ where the machine lacks
# them (pydantic, soundfile, rdkit). Writes logs and the image run's metrics to $OUT.
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
log="$OUT/gpu_check.log"
exec > >(tee "$log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
diffcore plugins
step() { echo "=== $*"; local t0=$EPOCHREALTIME; "$@"; local rc=$?; echo "=== rc=$rc wall=$(python3 -c "print(round($EPOCHREALTIME-$t0,1))") s"; }
R=/tmp/gpu_runs
# the README's main job, on the GPU in bf16 mixed precision
step diffcore train --plugin image-unet --out $R/img --accelerator gpu --precision bf16-mixed
step diffcore sample --run $R/img --out $R/img/samples
step diffcore evaluate --run $R/img --num 1000
cp $R/img/metrics.json "$OUT/image_bf16_metrics.json"; cp $R/img/samples/grid.png "$OUT/image_bf16_grid.png" 2>/dev/null
# fp16 mixed (GradScaler) and DDP on one GPU
step diffcore train --plugin image-unet --out $R/img16 --accelerator gpu --precision 16-mixed --max-steps 100
step diffcore train --plugin image-unet --out $R/ddp --accelerator gpu --devices 1 --strategy ddp --max-steps 50
# the other domains, a few hundred steps in bf16, then sampling on the GPU
step diffcore train --plugin audio-spectrogram --out $R/aud --accelerator gpu --precision bf16-mixed --max-steps 300
step diffcore sample --run $R/aud --num 8 --out $R/aud/samples
step diffcore train --plugin molecule-coords --out $R/mol --accelerator gpu --precision bf16-mixed --max-steps 300
step diffcore sample --run $R/mol --num 4 --out $R/mol/samples
ls $R/aud/samples $R/mol/samples | head -20
# scale-out paths on the GPU (docs/scaling.md): FSDP2 on one GPU, sharded sampling on one device vs
# the CPU path's files, compile with triton
step diffcore train --plugin image-unet --out $R/fsdp --accelerator gpu --devices 1 --strategy fsdp --max-steps 50
step diffcore sample --run $R/fsdp --num 16 --out $R/fsdp/samples
step diffcore sample --run $R/img --num 64 --seed 3 --accelerator gpu --devices 1 --out $R/img/gpu1
step diffcore train --plugin image-unet --out $R/compiled --accelerator gpu --max-steps 100 --set training.compile=true
