"""What this machine's processor can do, for choosing precisions (never assume the CPU).

bf16 autocast is fast only where the CPU computes bf16 natively (AVX512-BF16 or AMX): on an AMX Intel
machine a DenseNet121 pass at 320 ran about 3× faster than fp32; on an AMD EPYC with AVX2 only it ran
4.9 s per image against 0.37 s in fp32 — 13× slower (oneDNN emulates bf16 there). So bf16 on a CPU is
refused unless native support is detected, and never a default.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
SLOW_BF16_NOTE = ("bf16 autocast on a CPU without native bf16 was measured 13× slower than fp32 (DenseNet121 at "
                  "320: 4.9 s against 0.37 s per image on an AVX2-only AMD EPYC)")


def cpu_capability() -> str:
    """PyTorch's CPU kernel level: 'AVX2', 'AVX512', 'DEFAULT'…"""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover - very old or exotic builds
        return "unknown"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The processor's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16_native() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16), where bf16 autocast pays."""
    if any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS):
        return True
    return cpu_capability().upper().startswith("AMX")


def cpu_description() -> str:
    native = "native bf16" if cpu_bf16_native() else "no native bf16"
    return f"{platform.processor() or platform.machine()} ({cpu_capability()}, {native})"


def cpu_precisions() -> tuple[str, ...]:
    """The precisions worth offering on this CPU: none slower than fp32."""
    return ("fp32", "bf16") if cpu_bf16_native() else ("fp32",)


def precision_problem(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` should not run on ``device`` (None when it may)."""
    if device.type == "cpu" and precision == "bf16" and not cpu_bf16_native():
        return (f"bf16 is refused on this CPU ({cpu_capability()}, no AVX512-BF16 or AMX): {SLOW_BF16_NOTE}. "
                f"Use fp32 (the exact default), or bf16 on a GPU or an AMX/AVX512-BF16 CPU")
    return None
