#!/usr/bin/env bash
# The CUDA path in one short run, for a session that is lent a GPU: the CUDA tests (CPU as reference),
# then the paper's experiment on the demo at
# 320 px (bench/paper_demo.sh) and the saliency benchmark on the GPU (`trust bench metrics --device cuda`
# was timed in earlier runs: bench/README.md). Everything is logged to $OUT/gpu_check.log
# (or /tmp/gpu_check.log).
#
# The lent machine has python3 with torch, torchvision, scikit-image, scikit-learn, OpenCV and pytest,
# no network. What it lacks travels as wheels in .whl/ (ignored by git), made here with:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl captum==0.9.0 saliency==0.2.1 diskcache==5.6.3 pydicom==3.0.2 \
#     pydicom-data==1.0.0   (the demo's rg1 film)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
LOG=${OUT:-/tmp}/gpu_check.log
: >"$LOG"
status=0
step() { echo "== $* ($(date +%T))" | tee -a "$LOG"; }

# data_store: pydicom-data's module (the demo's rg1 film)
if ! $PY -c "import captum, saliency, diskcache, pydicom, data_store" 2>/dev/null; then
  [ -d .whl ] || { echo "captum/saliency/diskcache/pydicom/pydicom-data missing and no .whl/ folder" | tee -a "$LOG"; exit 3; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | tee -a "$LOG" || { echo "installing .whl/ failed" | tee -a "$LOG"; exit 3; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export OUT=${OUT:-}

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
$PY -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA',
torch.version.cuda, '|', torch.cuda.get_device_name(0), '| CPU threads', torch.get_num_threads())" 2>&1 | tee -a "$LOG"

# Each step is bounded (TERM, then KILL 10 s later) so that the whole run ends inside one 10-minute device call
# (≈9 min at most here).
step "CUDA tests"
timeout -k 10 ${CUDA_TESTS_S:-120} $PY -m pytest -q -s -p no:cacheprovider tests/saliency/test_cuda.py 2>&1 | tee -a "$LOG" || status=1

step "the paper's experiment on the demo at 320 px (CUDA; bench/paper_demo.sh)"
# 8 utility and 6 SSIM images (6: the fewest a verdict takes): 3 × 8–14 + 2 replicates × 9 states × 6 = 132–150
# image-model-states of 459 passes, ≈ 0.9 s each on an H100 in fp32
DEVICE=cuda SIZE=320 EPOCHS=${EPOCHS:-6} LIMIT=${LIMIT:-8} SSIM=${SSIM:-6} \
  timeout -k 10 ${PAPER_DEMO_S:-330} bash bench/paper_demo.sh 2>&1 | tee -a "$LOG" || status=1

step "bench saliency (DenseNet121 at 320, CUDA; the reference was timed in earlier runs: bench/README.md)"
TRUST_BENCH_TRACE=${OUT:-/tmp}/explain_trace.json \
  timeout -k 10 ${BENCH_S:-90} $PY -m trust_core.cli bench saliency --arch densenet121 --size 320 --device cuda \
  ${BENCH_REFERENCE:---skip-reference} 2>&1 \
  | grep -v -e UserWarning -e "warnings.warn" -e "gradient_mask = " -e "_warn_once(" | tee -a "$LOG" || status=1
gzip -f "${OUT:-/tmp}/explain_trace.json" 2>/dev/null

step "done, status $status"
exit $status
