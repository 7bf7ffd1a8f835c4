"""Every numeric flag refuses out-of-range values with ``error: …`` and exit 2 (never a silent slice)."""
import pytest

from trust_core.cli import main

BASE = {"maps": ["maps", "--dataset", "rsna:/nowhere", "--model", "m.pt", "--out", "o"],
        "evaluate": ["evaluate", "--dataset", "rsna:/nowhere", "--model", "m.pt", "--out", "o"],
        "train": ["train", "--dataset", "rsna:/nowhere", "--arch", "resnet_tiny", "--out", "m.pt"],
        "train-localizer": ["train-localizer", "--dataset", "rsna:/nowhere", "--out", "u.pt"],
        "demo": ["demo"], "bench": ["bench", "metrics"]}


@pytest.mark.parametrize("command, flag, value, message", [
    ("maps", "--limit", "-1", "must be > 0"), ("maps", "--limit", "0", "must be > 0"),
    ("maps", "--group", "0", "must be > 0"), ("maps", "--batch-size", "-3", "must be > 0"),
    ("evaluate", "--ssim-images", "1", "must be ≥ 2"), ("evaluate", "--baseline-pairs", "0", "must be > 0"),
    ("evaluate", "--data-range", "nan", "must be > 0.0"), ("evaluate", "--data-range", "-2", "must be > 0.0"),
    ("evaluate", "--gpus-per-worker", "-1", "must be ≥ 0.0"), ("evaluate", "--workers", "0", "must be > 0"),
    ("evaluate", "--threads-per-worker", "x", "expected an integer"),
    ("train", "--epochs", "0", "must be > 0"), ("train", "--lr", "0", "must be > 0.0"),
    ("train", "--batch-size", "1", "must be ≥ 2"), ("train", "--size", "8", "must be ≥ 32"),
    ("train-localizer", "--epochs", "-5", "must be > 0"), ("demo", "--images", "3", "must be ≥ 8"),
    ("bench", "--n", "0", "must be > 0"), ("evaluate", "--ssim-seed", "-1", "must be ≥ 0"),
    ("train", "--seed", "-3", "must be ≥ 0"), ("train-localizer", "--seed", "x", "expected an integer"),
])
def test_numeric_flags_refuse_out_of_range_values(command, flag, value, message, capsys):
    assert main(BASE[command] + [flag, value]) == 2
    err = capsys.readouterr().err
    assert f"error: trust {command}: argument {flag}: {message}" in err and "Traceback" not in err
