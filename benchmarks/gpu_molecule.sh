#!/usr/bin/env bash
# The molecule-coords recipe (torsional diffusion) trained on a GPU machine (run through the
# device tool; the figures go into docs/domains/molecules.md). One call, sized to a short lease:
#   1. the default recipe for PROBE steps on the GPU: its steps/s (the default run's 4000 steps
#      then take 4000 / that);
#   2. a wider, longer variant (WIDE_SET) for as many steps as fit TRAIN_S seconds at the rate
#      its own probe measured; its weights come back under $OUT/wide for evaluation on a CPU
#      (benchmarks/molecules_vs_etkdg.py --run).
# The reference ensembles are built once on the CPU and carried: CACHE (a run's cache/ folder,
# its .sdf files gzipped or not) is copied into each run, so both train on exactly that data
# (the data options in WIDE_SET must be those it was built with). STEPS=N skips the probes.
# Needs the wheels under .whl/ where the machine lacks them (pydantic, soundfile, rdkit).
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT/wide"
CACHE=${CACHE:-.gpucache}
PROBE=${PROBE:-300}
TRAIN_S=${TRAIN_S:-300}
ACC=${ACC:-gpu}
WIDE_SET=${WIDE_SET:-"--set backbone.hidden=128 --set backbone.layers=6 --set training.batch_size=64 --set training.lr_schedule=cosine --set training.warmup_steps=200"}
exec > >(tee "$OUT/gpu_molecule.log") 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
if ! python3 -c "import rdkit, pydantic, soundfile" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
R=/tmp/gpu_mol
common="--plugin molecule-coords --accelerator $ACC --set training.deterministic=false --set training.checkpoint_every=100000 --set training.log_every=10"
train() {  # OUTDIR STEPS [extra args]: copies the cache in, trains, prints steps/s
  local out=$1 steps=$2; shift 2
  mkdir -p "$out/cache"; cp "$CACHE"/*.sdf* "$out/cache/"; gunzip -f "$out"/cache/*.gz 2>/dev/null
  local t0=$EPOCHREALTIME
  diffcore train $common --out "$out" --max-steps "$steps" "$@" || return 1
  python3 - "$out" <<'EOF'
import csv, statistics, sys, yaml
run = sys.argv[1]
bs = yaml.safe_load(open(run + "/config.yaml"))["training"]["batch_size"]
rates = [float(r["samples_per_s"]) for r in csv.DictReader(open(run + "/metrics.csv")) if r.get("samples_per_s")]
print("steps_per_s", round(statistics.median(rates[1:] or rates) / bs, 2) if rates else "?")
EOF
  echo "=== $out: $steps steps, wall $(python3 -c "print(round($EPOCHREALTIME-$t0,1))") s"
}
if [ -z "$STEPS" ]; then  # STEPS=N skips both probes
  train $R/default $PROBE || exit 1
  train $R/wide_probe $PROBE $WIDE_SET || exit 1
  rate=$(grep -o "steps_per_s [0-9.]*" "$OUT/gpu_molecule.log" | tail -1 | cut -d' ' -f2)
  STEPS=$(python3 -c "print(max(100, int(float('${rate:-5}') * $TRAIN_S) // 100 * 100))")
  echo "=== wide: $STEPS steps at ${rate} steps/s"
fi
steps=$STEPS
train $R/wide "$steps" $WIDE_SET || exit 1
cp $R/wide/config.yaml $R/wide/domain_state.json $R/wide/model.safetensors $R/wide/ema.safetensors $R/wide/metrics.csv "$OUT/wide/" 2>/dev/null
ls -la "$OUT/wide"
