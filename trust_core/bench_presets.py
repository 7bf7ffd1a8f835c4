"""How far the ``fast`` saliency preset is from the paper's ``arun2021`` preset, on the demo workspace.

Most CPU users run ``fast`` (fewer SmoothGrad/Smooth IG samples and XRAI steps). :func:`bench_presets`
measures, per demo dataset:

* **map agreement** — per method, the mean SSIM between the main model's ``fast`` and ``arun2021`` maps
  of the first ``images`` positive test images (images where either map is flagged are left out);
* **verdict agreement** — the share of criterion × method verdicts (pass / fail / inconclusive) that a
  small evaluation reaches identically with both presets.

The figures are written to ``<workspace>/results/preset_fidelity.json`` (read back with
:func:`read_preset_fidelity`) so that the app can show them beside ``fast`` results. The last printed line
is ``RESULT fast_min_ssim=… verdict_agreement=…``.
"""
from __future__ import annotations

import json
import math
import time
from typing import Callable

import numpy as np
import torch

from .metrics import PAPER_DATA_RANGE
from .saliency.registry import FAST_PRESET, PAPER_PRESET

FAST = FAST_PRESET


def _finite_or_none(value):
    """JSON-safe float: NaN/inf → None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _nanmean(values) -> float:
    values = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def method_ssim(maps_a, maps_b, methods=None, *, data_range: float = PAPER_DATA_RANGE) -> dict[str, float]:
    """Per method, the mean SSIM between two sets of maps (``method → (N, H, W)`` arrays) over the images
    where both maps are finite; NaN for a method without such an image."""
    from .metrics import ssim_batch

    out = {}
    for m in (methods if methods is not None else list(maps_a)):
        a = np.asarray(maps_a[m], dtype=np.float32)
        b = np.asarray(maps_b[m], dtype=np.float32)
        ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
        if not ok.any():
            out[m] = float("nan")
            continue
        values = ssim_batch(torch.from_numpy(np.ascontiguousarray(a[ok])), torch.from_numpy(np.ascontiguousarray(b[ok])),
                            data_range=data_range).numpy()
        out[m] = float(np.mean(values))
    return out


def compare_verdicts(fast_summary: dict, paper_summary: dict) -> dict:
    """Agreement of the verdicts of two evaluation summaries, over every criterion × method present (and
    not None) in both: ``{"agree", "total", "disagreements": [[criterion, method, fast, paper], …]}``."""
    agree, total, disagreements, undecided = 0, 0, [], 0
    fast_criteria = fast_summary.get("criteria", {})
    paper_criteria = paper_summary.get("criteria", {})
    for criterion, fast_entry in fast_criteria.items():
        paper_entry = paper_criteria.get(criterion)
        if not fast_entry or not paper_entry:
            continue
        fast_methods = fast_entry.get("methods") or {}
        paper_methods = paper_entry.get("methods") or {}
        for method, fast_method in fast_methods.items():
            paper_method = paper_methods.get(method)
            if fast_method is None or paper_method is None:
                continue
            a, b = fast_method.get("verdict"), paper_method.get("verdict")
            if a is None or b is None:
                continue
            total += 1
            undecided += a == b == "inconclusive"
            if a == b:
                agree += 1
            else:
                disagreements.append([criterion, method, a, b])
    return {"agree": agree, "total": total, "disagreements": disagreements, "both_inconclusive": undecided}


def _preset_maps(model, x: torch.Tensor, methods: list[str], *, device, cache) -> dict[str, dict]:
    """``preset → {method: (N, H, W) maps}`` for ``fast`` and ``arun2021``."""
    from .saliency import explain

    out = {}
    for preset in (FAST, PAPER_PRESET):
        result = explain(model, x, methods=methods, preset=preset, device=device, cache=cache)
        out[preset] = {m: np.asarray(result[m], dtype=np.float32) for m in methods}
    return out


def _format_table(per_dataset: dict, per_method: dict, methods: list[str]) -> list[str]:
    kinds = list(per_dataset)
    width = max([len("method")] + [len(m) for m in methods])
    header = f"{'method':<{width}}  " + "  ".join(f"{k:>7}" for k in kinds) + f"  {'mean':>7}"
    lines = ["SSIM of 'fast' vs 'arun2021' maps (1 = identical; data_range 2, the paper's)", header,
             "-" * len(header)]

    def cell(value):
        return f"{value:7.3f}" if value is not None and math.isfinite(value) else f"{'n/a':>7}"

    for m in methods:
        lines.append(f"{m:<{width}}  " + "  ".join(cell(per_dataset[k]["ssim"].get(m)) for k in kinds)
                     + f"  {cell(per_method.get(m))}")
    return lines


def bench_presets(workspace=None, kinds=("rsna", "siim"), *, images: int = 6, ssim_images: int = 4,
                  baseline_pairs: int = 3, device=None, log: Callable[[str], None] = print,
                  criteria: tuple[str, ...] | None = None) -> dict:
    """Compare the ``fast`` preset with the paper's on the demo workspace (maps and verdicts); write and
    return the figures (see the module docstring).

    ``criteria`` limits the evaluations behind the verdict agreement (default: the paper's four, which every
    demo workspace supports; randomization, with its cascade of model states, is most of the cost). The
    extended criteria can be asked for by name; those whose needs the workspace lacks (data_randomization
    without a shuffled-label model) are then refused by the evaluation with their fix."""
    from .cache.store import Store
    from .demo import DATASETS
    from .layout import Layout, workspace_models, workspace_path
    from .errors import ConfigError
    from .evaluate import EvalConfig, Evaluation
    from .evaluate.criteria import PAPER_CRITERIA
    from .io import atomic_write
    from .models import load
    from .models.info import info_of
    from .saliency import METHODS

    started = time.perf_counter()
    from .io import writable_file

    root = workspace_path(workspace)
    layout = Layout(root)
    writable_file(layout.preset_fidelity, what="the workspace's preset figures")  # before the work, not after it
    store = Store(layout.store)
    methods = list(METHODS)
    criteria = tuple(criteria) if criteria else PAPER_CRITERIA
    per_dataset: dict[str, dict] = {}
    for kind in kinds:
        if kind not in DATASETS:
            raise ConfigError(f"unknown dataset kind {kind!r}; known: {list(DATASETS)}")
        dataset_class = DATASETS[kind]
        label_file = dataset_class.LABELS
        if not (layout.dataset(kind) / label_file).is_file():
            log(f"{kind}: not in the workspace {root}, skipped")
            continue
        classifiers, localizers = workspace_models(root, kind)
        if not classifiers:
            log(f"{kind}: no classifier in the model index, skipped")
            continue
        dataset = dataset_class(layout.dataset(kind), image_size=128)
        ids = dataset.ids(split="test", label=1)[:images]
        if not ids:
            log(f"{kind}: no positive test image, skipped")
            continue

        # 1. map agreement of the main model (replicate A)
        kind_started = time.perf_counter()
        model = load(classifiers[0], num_classes=2)
        prep = info_of(model).prep
        x = torch.stack([prep(dataset.image(i, prep.size, prep.resize)) for i in ids])
        maps = _preset_maps(model, x, methods, device=device, cache=store)
        ssim = method_ssim(maps[FAST], maps[PAPER_PRESET], methods)
        log(f"{kind}: maps of {len(ids)} image(s) with both presets in {time.perf_counter() - kind_started:.0f} s")

        # 2. verdict agreement of a small evaluation with each preset
        summaries = {}
        for preset in (FAST, PAPER_PRESET):
            eval_started = time.perf_counter()
            config = EvalConfig(preset=preset, utility_limit=images, ssim_images=min(ssim_images, max(2, images)),
                                baseline_pairs=baseline_pairs, group=8, device=device, criteria=criteria)
            summaries[preset] = Evaluation(dataset, classifiers, config, localizers=localizers,
                                           cache=store).run().summary
            log(f"{kind}: evaluation with preset {preset!r} in {time.perf_counter() - eval_started:.0f} s")
        verdicts = compare_verdicts(summaries[FAST], summaries[PAPER_PRESET])
        per_dataset[kind] = {"ssim": {m: _finite_or_none(v) for m, v in ssim.items()}, "verdicts": verdicts}

    if not per_dataset:
        raise ConfigError(f"no dataset of {list(kinds)} with models in the workspace {root}; run `trust demo`")
    per_method = {m: _finite_or_none(_nanmean([per_dataset[k]["ssim"].get(m) for k in per_dataset]))
                  for m in methods}
    finite = [v for v in per_method.values() if v is not None]
    fast_min_ssim = min(finite) if finite else None
    agree = sum(d["verdicts"]["agree"] for d in per_dataset.values())
    total = sum(d["verdicts"]["total"] for d in per_dataset.values())
    verdict_agreement = agree / total if total else None
    undecided = sum(d["verdicts"].get("both_inconclusive", 0) for d in per_dataset.values())
    decisive = total - undecided
    result = {"per_dataset": per_dataset, "per_method_ssim": per_method, "fast_min_ssim": fast_min_ssim,
              "verdict_agreement": verdict_agreement, "both_inconclusive": undecided,
              "decisive_agreement": (agree - undecided) / decisive if decisive else None,
              "ssim_data_range": PAPER_DATA_RANGE, "images": images, "criteria": list(criteria),
              "seconds": round(time.perf_counter() - started, 1)}

    out = layout.preset_fidelity
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(result, indent=2, allow_nan=False))

    for line in _format_table(per_dataset, per_method, methods):
        log(line)
    for kind, entry in per_dataset.items():
        v = entry["verdicts"]
        log(f"{kind}: verdicts agree {v['agree']}/{v['total']} ({v.get('both_inconclusive', 0)} of them "
            f"inconclusive under both presets)")
        for criterion, method, fast_verdict, paper_verdict in v["disagreements"]:
            log(f"  {criterion:<16} {method:<15} fast={fast_verdict:<13} arun2021={paper_verdict}")
    log(f"written to {out} ({result['seconds']:.0f} s)")

    def fmt(value):
        return "nan" if value is None else f"{value:.3f}"

    log(f"RESULT fast_min_ssim={fmt(fast_min_ssim)} verdict_agreement={fmt(verdict_agreement)}")
    return result


def read_preset_fidelity(workspace=None) -> dict | None:
    """The figures :func:`bench_presets` wrote for ``workspace`` (None when missing or unreadable)."""
    from .layout import Layout

    path = Layout.of(workspace).preset_fidelity
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
