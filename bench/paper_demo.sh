#!/usr/bin/env bash
# The paper's experiment, timed end to end on the demo's RSNA films (issue 24: "where a GPU is lent, time the
# paper experiment on the demo at 320 px"). Stage by stage, each timed:
#   1. the demo's RSNA tree (480 films of 1024², JPEG Baseline DICOM, rg1 anatomy), written on every core;
#   2. three classifiers at SIZE px: two DenseNet121 replicates (seeds 0, 1) and an InceptionV3 (the second
#      architecture), the demo's training recipe;
#   3. two U-Net localizers (seeds 0, 1: the high baselines), as the demo trains them;
#   4. `trust evaluate` with the paper's preset (arun2021: the eight methods, 459 passes per image-model-state),
#      the paper's four criteria, cascading randomization of both replicates through DenseNet121's 9 states,
#      on LIMIT utility images and SSIM SSIM images (the demo has ≈54 positive test films);
#   5. the evaluation again, on the same cache: what a rerun costs.
# After the first evaluation it prints one line `RESULT paper_demo ...` (the stage times, the passes, seconds per
# image-model-state pair), then times the rerun.
#
#   DEVICE=cuda SIZE=320 bash bench/paper_demo.sh           # on a lent GPU (bench/gpu_check.sh runs it)
#   DEVICE=cpu SIZE=80 EPOCHS=1 LIMIT=1 SSIM=2 N=40 bash bench/paper_demo.sh   # a quick check of the script (2 min)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
[ -x .venv/bin/python ] && [ "$PY" = python3 ] && PY=.venv/bin/python
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-320}
N=${N:-480}
EPOCHS=${EPOCHS:-8}
LIMIT=${LIMIT:-16}
SSIM=${SSIM:-8}
PRECISION=${PRECISION:-fp32}
WORK=${WORK:-/tmp/paper_demo}
LOG=${OUT:-/tmp}/paper_demo.log
rm -rf "$WORK" && mkdir -p "$WORK/models"
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }
now() { date +%s.%N; }
secs() { $PY -c "print(f'{$2 - $1:.1f}')"; }
# tqdm's bars (carriage-return updates) are dropped; every other line reaches the log as it is printed, so a
# step stopped by a timeout still leaves what it said
quiet() { tr '\r' '\n' | grep --line-buffered -v -e '%|' | tee -a "$LOG"; }

t0=$(now)
$PY - "$WORK/rsna" "$N" <<'EOF' 2>&1 | quiet || exit 1
import os, sys, time
from trust_core.demo.films import build_phantom_dataset
started = time.perf_counter()
build_phantom_dataset(sys.argv[1], "rsna", n_images=int(sys.argv[2]), workers=os.cpu_count(), anatomy="rg1")
print(f"data: {sys.argv[2]} films on {os.cpu_count()} cores in {time.perf_counter() - started:.1f} s")
EOF
t1=$(now)

for spec in densenet121:0 densenet121:1 inception_v3:0; do
  arch=${spec%:*}; seed=${spec#*:}
  s=$(now)
  $PY -m trust_core.cli train --dataset "rsna:$WORK/rsna" --arch "$arch" --seed "$seed" --size "$SIZE" \
    --epochs "$EPOCHS" --device "$DEVICE" --out "$WORK/models/${arch}_s${seed}.pt" 2>&1 | quiet || exit 1
  say "train $arch seed $seed: $(secs "$s" "$(now)") s"
done
# the high baselines (repeatability, reproducibility, utility): two U-Net localizers of different seeds, at the
# demo's 64 px for RSNA boxes (trust_core/demo/build.py: LOCALIZER_SIZES)
for seed in 0 1; do
  s=$(now)
  $PY -m trust_core.cli train-localizer --dataset "rsna:$WORK/rsna" --seed "$seed" --size 64 --epochs 12 \
    --device "$DEVICE" --out "$WORK/models/unet_s${seed}.pt" 2>&1 | quiet || exit 1
  say "localizer seed $seed: $(secs "$s" "$(now)") s"
done
t2=$(now)

# one evaluation (a failed one stops the script: pipefail carries its exit status through `quiet`)
evaluate() {
  $PY -m trust_core.cli evaluate --dataset "rsna:$WORK/rsna" --model "$WORK/models/densenet121_s0.pt" \
    --model "$WORK/models/densenet121_s1.pt" --model "$WORK/models/inception_v3_s0.pt" --preset arun2021 \
    --localizer "$WORK/models/unet_s0.pt" --localizer "$WORK/models/unet_s1.pt" --limit "$LIMIT" \
    --ssim-images "$SSIM" --device "$DEVICE" --precision "$PRECISION" \
    --cache "$WORK/cache" --out "$WORK/results" --overwrite 2>&1 | quiet || return 1
  $PY -c "import json, sys; print('stats:', json.dumps(json.load(open(sys.argv[1]))['stats']))" \
    "$WORK/results/summary.json" | tee -a "$LOG"
}
evaluate || exit 1
t3=$(now)
cp "$WORK/results/summary.json" "$WORK/summary_first.json"
[ -n "${OUT:-}" ] && cp "$WORK/results/summary.json" "$OUT/paper_demo_summary.json"

# the figures of the first (uncached) evaluation, printed before the rerun
$PY - "$WORK/summary_first.json" "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(secs "$t2" "$t3")" \
  "$DEVICE" "$SIZE" "$PRECISION" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
path, data_s, train_s, eval_s, device, size, precision = sys.argv[1:]
summary = json.loads(Path(path).read_text())
stats = summary["stats"]
pairs = stats["image_maps"]
for name, criterion in summary["criteria"].items():  # the verdicts, method by method
    print(f"{name:16s}", " ".join(f"{m}={r.get('verdict')}" for m, r in criterion.get("methods", {}).items()))
# evaluate_s: the whole `trust evaluate` process (imports, device start, models, scoring, outputs);
# run_s: the evaluation's own clock (units and scoring), as summary.json records it
per_pair = float(eval_s) / pairs if pairs else float("nan")
print(f"RESULT paper_demo device={device} size={size} precision={precision} data_s={data_s} "
      f"train_s={train_s} evaluate_s={eval_s} run_s={stats['seconds']} pairs={pairs} passes={stats['passes']} "
      f"s_per_pair={per_pair:.3f}")
EOF

# the rerun: every image-model-state from the cache
evaluate || exit 1
t4=$(now)
say "rerun: $(secs "$t3" "$t4") s (the whole process; its stats above: cached_images equals image_maps)"
