"""``trust bench scale``: its RESULT line (other tools read it) and the slope it fits."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from trust_core.saliency import resolve_methods
from trust_core.bench_scale import fitted_slope

RESULT = re.compile(r"RESULT rss_slope_mb_per_pair=(\S+) peak_rss_gb=(\S+) store_kb_per_map_320=(\S+) "
                    r"baseline_rerun_s=(\S+) check_films_per_s=(\d+)")


def test_the_slope_is_fitted_after_the_first_fifth_of_the_run():
    pairs = list(range(0, 101, 5))
    # 1 GiB while the models load (the first fifth: left out), then 0.5 MB per pair
    rss = [2**30 * (3 if p < 20 else 1) + int(0.5 * 2**20 * p) for p in pairs]
    assert fitted_slope(pairs, rss) == pytest.approx(0.5, rel=1e-9)
    assert fitted_slope(pairs, [2**30] * len(pairs)) == pytest.approx(0.0, abs=1e-12)  # flat
    assert math.isnan(fitted_slope([0, 10], [2**30, 2**31]))  # too few points to fit
    assert math.isnan(fitted_slope([], []))


def test_bench_scale_prints_its_result_line(capsys):
    """The command as the README runs it, on a small phantom tree (24 films) at 32 px."""
    from trust_core.cli import main

    main(["bench", "scale", "--n", "24", "--size", "32"])
    lines = capsys.readouterr().out.strip().splitlines()
    match = RESULT.fullmatch(lines[-1])
    assert match, lines[-1]
    slope, peak, store_kb, baseline_s, check_rate = (float(v) for v in match.groups())
    assert np.isfinite(slope) and 0 < peak < 8
    assert baseline_s < 1 and check_rate > 0
    # the store's figure is the mean of the per-method sizes it lists (each rounded to 1 KB)
    per_method = next(line for line in lines if line.startswith("store, KB per map: "))
    listed = dict(item.split(" ", 1) for item in per_method.removeprefix("store, KB per map: ").split(", "))
    assert list(listed) == resolve_methods(None)  # the paper's eight
    sizes = [float(v) for found in listed.values() for v in found.split("/") if "flagged" not in v]
    assert len(sizes) == 16  # two films, eight methods, none constant
    assert store_kb == pytest.approx(np.mean(sizes), abs=0.5)
    # compact storage: half precision where the exact form exceeds 120 KB: no map near its two float32 forms
    others = [float(v) for m, found in listed.items() if m != "gradcam" for v in found.split("/")
              if "flagged" not in v]
    assert 1 < min(others) and max(sizes) < 320 * 320 * 4 * 2 / 1024 / 2
    # Grad-CAM (the TF1 rule, the paper's) is kept as its coarse map: about a KB
    assert all(float(v) <= 4 for v in listed["gradcam"].split("/"))
    # check read every film of the tree it opened
    films = re.search(r"^dataset: .* \((\d+) films\)$", "\n".join(lines), re.M).group(1)
    assert re.search(rf"^check: {films} films on \d+ worker", "\n".join(lines), re.M)
