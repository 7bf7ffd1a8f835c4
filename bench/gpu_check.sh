#!/usr/bin/env bash
# One short script for a lent GPU: CUDA path checks, then the saliency benchmark on CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY - <<'PY'
import torch
from trust_core import explain
from trust_core.models import build
assert torch.cuda.is_available(), "no CUDA device"
print("device:", torch.cuda.get_device_name(0))
torch.manual_seed(0)
cpu = build("densenet_tiny"); gpu = build("densenet_tiny").cuda(); gpu.load_state_dict(cpu.state_dict())
x = torch.rand(2, 3, 128, 128) * 2 - 1
a = explain(cpu, x, preset="fast"); b = explain(gpu, x.cuda(), preset="fast")
import numpy as np
for m in a:
    print(m, "max |cpu-gpu| =", float(np.nanmax(np.abs(a[m] - b[m]))))
PY
$PY -m trust_core.cli bench saliency --arch densenet121 --size 320 --device cuda
