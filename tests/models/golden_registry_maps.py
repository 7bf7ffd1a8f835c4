"""Writes tests/models/data/registry_maps.npz: the maps and cache keys of the demo architectures (seeded
random weights) on two phantom films, for test_spec's bit-identity test. It was run once with the code
*before* model specs existed (commit 7315dd2), so that the test compares today's registry path with that
code's output:

    git worktree add /tmp/old 7315dd2 && PYTHONPATH=/tmp/old python tests/models/golden_registry_maps.py OUT.npz
"""
from __future__ import annotations

import sys

import numpy as np
import torch


def golden_inputs(size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:size, :size] / size
    films = []
    for k in range(2):
        base = 0.5 + 0.25 * np.sin((5 + k) * xx) * np.cos((4 + k) * yy) + 0.04 * rng.normal(size=(size, size))
        films.append(np.clip(base, 0, 1).astype(np.float32))
    return np.stack(films)


def compute(arch: str, films: np.ndarray):
    from trust_core.cache.store import model_fingerprint
    from trust_core.data.transforms import to_model_input
    from trust_core.models import build
    from trust_core.models.info import tag
    from trust_core.saliency import explain
    from trust_core.saliency.explain import _map_keys
    from trust_core.saliency.registry import method_params, resolve_methods, resolve_params

    torch.manual_seed(11)
    model = build(arch)
    tag(model, input_size=films.shape[-1])
    x = torch.stack([to_model_input(f) for f in films])
    maps = explain(model, x, preset="fast")
    params = resolve_params("fast")
    keys = _map_keys(x, model_fingerprint(model), {m: method_params(m, params) for m in resolve_methods(None)},
                     "fp32")
    return maps, [keys[k] for k in sorted(keys)]


THREADS = 2  # torch threads: a CPU convolution's summation order follows them, so the test computes with these


if __name__ == "__main__":
    torch.set_num_threads(THREADS)
    films = golden_inputs()
    out = {"films": films, "cpu": np.array(torch.backends.cpu.get_cpu_capability()), "threads": np.array(THREADS)}
    for arch in ("densenet_tiny", "resnet_tiny"):
        maps, keys = compute(arch, films)
        for m, v in maps.items():
            out[f"{arch}/{m}"] = v
        out[f"{arch}/targets"] = maps.targets
        out[f"{arch}/keys"] = np.array(keys)
    np.savez_compressed(sys.argv[1], **out)
    print("wrote", sys.argv[1])
