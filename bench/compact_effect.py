"""What compact map storage moves at 320 px, under its real 120 KB budget (issue 24, item 3), side by side.

    .venv/bin/python bench/compact_effect.py [--films 80] [--images 8] [--ssim-images 6]

A phantom RSNA tree; two densenet_tiny replicates and a resnet_tiny trained for one epoch at 320 px; the same
evaluation (every criterion but data randomization, which needs a shuffled-label model; cascading
randomization of both replicates; the ``fast`` preset's step counts) run twice on fresh stores: with
``--map-storage exact`` and with the default compact storage. Every number of the two ``summary.json`` is
compared, and every text (verdicts, reasons) must be equal.

Last line: ``RESULT maps=<maps scored> half_precision=<of them kept in half precision> values=<numbers
compared> max_moved=<largest |compact − exact|> verdicts_changed=<count>``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def differences(a, b, where="criteria", texts=None) -> list[tuple[str, float]]:
    """Every number of two summaries side by side (NaN against NaN: equal); differing texts go to ``texts``."""
    out = []
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                texts.append((f"{where}.{key}", key in a, key in b))
                continue
            out += differences(a[key], b[key], f"{where}.{key}", texts)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for k, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{where}[{k}]", texts)
    elif isinstance(a, float) and isinstance(b, float):
        out.append((where, 0.0 if np.isnan(a) and np.isnan(b) else abs(a - b)))
    elif a != b:
        texts.append((where, a, b))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--films", type=int, default=80)
    parser.add_argument("--images", type=int, default=8, help="test positives scored for utility")
    parser.add_argument("--ssim-images", type=int, default=6)
    args = parser.parse_args(argv)

    from trust_core.bench_scale import FAST_SCALE
    from trust_core.cache import Store
    from trust_core.data.kaggle import RSNADataset
    from trust_core.demo.films import build_phantom_dataset
    from trust_core.evaluate import EvalConfig, evaluate
    from trust_core.evaluate.criteria import CRITERIA
    from trust_core.models import TrainConfig, train_classifier
    from trust_core.saliency.registry import FAST_PRESET

    size = 320
    criteria = tuple(k for k in CRITERIA if k != "data_randomization")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_phantom_dataset(tmp / "rsna", "rsna", n_images=args.films, seed=0)
        dataset = RSNADataset(tmp / "rsna", image_size=size, split_file=tmp / "splits.csv")
        models = []
        started = time.perf_counter()
        for arch, seed in (("densenet_tiny", 0), ("densenet_tiny", 1), ("resnet_tiny", 0)):
            config = TrainConfig(arch=arch, seed=seed, epochs=1, batch_size=16, image_size=size)
            models.append(train_classifier(dataset, config, tmp / f"{arch}_{seed}.pt").path)
        print(f"models: {len(models)} trained for one epoch at {size} px in {time.perf_counter() - started:.0f} s")
        summaries, kept = {}, None
        for storage in ("exact", "compact"):
            config = EvalConfig(preset=FAST_PRESET, overrides=FAST_SCALE, criteria=criteria, utility_limit=args.images,
                                ssim_images=args.ssim_images, baseline_pairs=10, map_storage=storage)
            started = time.perf_counter()
            result = evaluate(dataset, models, config, cache=Store(tmp / f"store_{storage}", map_storage=storage))
            summaries[storage] = result.summary
            if storage == "compact":
                kept = result.summary["maps_kept"]
            print(f"{storage}: {time.perf_counter() - started:.0f} s, maps kept {result.summary['maps_kept']}")
    texts: list = []
    compared = differences(summaries["compact"]["criteria"], summaries["exact"]["criteria"], texts=texts)
    moved = sorted(compared, key=lambda x: -x[1])
    verdicts = [t for t in texts if t[0].endswith("verdict")]
    print(f"{len(compared)} values compared; largest moves: " + ", ".join(f"{w} {d:.2e}" for w, d in moved[:5]))
    print(f"{sum(d > 1e-3 for _, d in compared)} beyond 1e-3; texts differing: {texts[:10]}")
    result = {"maps": kept["maps"], "half_precision": kept["half_precision"], "values": len(compared),
              "max_moved": moved[0][1] if moved else 0.0, "verdicts_changed": len(verdicts)}
    print(f"RESULT maps={result['maps']} half_precision={result['half_precision']} values={result['values']} "
          f"max_moved={result['max_moved']:.2e} verdicts_changed={result['verdicts_changed']}")
    return result


if __name__ == "__main__":
    main()
