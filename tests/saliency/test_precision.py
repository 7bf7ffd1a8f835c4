"""Numeric modes and the benchmarks' plumbing, on the CPU (the CUDA side is tests/saliency/test_cuda.py)."""
from __future__ import annotations

import math

import torch

from trust_core.bench import bench_metrics, bench_saliency
from trust_core.saliency.engine import _fp32_matmuls, autocast, fp32_mode


def _settings():
    return (torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.rnn.fp32_precision,
            torch.backends.cuda.matmul.fp32_precision)


def test_fp32_mode_sets_ieee_and_restores_the_previous_settings():
    before = _settings()
    with _fp32_matmuls("ieee"):
        assert _settings() == ("ieee", "ieee", "ieee")
    assert _settings() == before
    try:
        with _fp32_matmuls("tf32"):
            assert _settings() == ("tf32", "tf32", "tf32")
            raise RuntimeError("restored on errors too")
    except RuntimeError:
        pass
    assert _settings() == before


def test_modes_are_no_ops_where_they_do_not_apply():
    before = _settings()
    with fp32_mode(torch.device("cpu"), "fp32"), autocast(torch.device("cpu"), "fp32"):
        assert _settings() == before
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")


def test_saliency_benchmark_runs_end_to_end_on_a_tiny_model():
    lines = []
    result = bench_saliency("densenet_tiny", size=48, log=lines.append)
    assert result["passes"] == 459  # the paper preset: 1 + 9 + 25 × 10 + 2 × 99 + 1 (α = 1 shared)
    for key in ("speedup_vs_reference", "efficiency", "xrai_post_speedup"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert set(result["reference_methods"]) == {"grad", "smoothgrad", "ig", "smooth_ig", "xrai", "gbp", "gradcam"}
    if "bf16_min_ssim" in result:
        assert 0.5 < result["bf16_min_ssim"] <= 1.0
    assert lines[-1].startswith("RESULT speedup_vs_reference=")


def test_metrics_benchmark_agrees_with_the_references():
    result = bench_metrics(n=3, size=24, log=lambda _line: None)
    assert result["auprc_max_diff"] < 1e-12 and result["ssim_max_diff"] < 1e-6  # scikit-image: float32 here
