#!/usr/bin/env bash
# Pixel vs latent diffusion on shapes64 on one GPU (run through the device tool; the figures go
# into docs/domains/image.md). The same number of diffusion steps for both (batch 64, bf16 mixed);
# the pixel run trains beside the autoencoder + latent runs on the same GPU. Needs the wheels under
# .whl/ where the machine lacks them (pydantic). Writes logs, metrics and grids to $OUT.
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_latent.log") 2>&1
STEPS=${STEPS:-3000}; AE_STEPS=${AE_STEPS:-3000}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
step() { echo "=== $*"; local t0=$EPOCHREALTIME; "$@"; local rc=$?; echo "=== rc=$rc wall=$(python3 -c "print(round($EPOCHREALTIME-$t0,1))") s"; }
R=/tmp/gl; D=(--set data.dataset=shapes64); T=(--accelerator gpu --precision bf16-mixed --no-progress --set training.batch_size=64 --set training.preview_num=0)
( step diffcore train --plugin image-unet --out $R/px "${D[@]}" "${T[@]}" --max-steps $STEPS \
    --set 'backbone.channel_mult=[1,2,2,2]' --set 'backbone.attention_resolutions=[8]' > "$OUT/pixel_train.log" 2>&1 ) &
step diffcore train-autoencoder --plugin image-unet --out $R/ae "${D[@]}" --max-steps $AE_STEPS --batch-size 64 --accelerator cuda --no-progress
cp $R/ae/metrics.json "$OUT/ae_metrics.json"
step diffcore train --plugin image-unet --out $R/ld "${D[@]}" "${T[@]}" --max-steps $STEPS --set latent.autoencoder=$R/ae
wait; cat "$OUT/pixel_train.log" | grep "==="
for r in ld px; do
  step diffcore sample --run $R/$r --num 64 --steps 20 --out $R/$r/s64
  step diffcore evaluate --run $R/$r --num 480 --steps 20
  cp $R/$r/metrics.json "$OUT/${r}_metrics.json"; cp $R/$r/s64/samples.png "$OUT/${r}_samples.png" 2>/dev/null
done
