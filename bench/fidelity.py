"""How much the fidelity choices move the demo's numbers (issue: fidelity), measured side by side.

    .venv/bin/python bench/fidelity.py [--workspace cache/demo] [--images 24] [--ssim-images 10]

On each demo dataset, with the demo's classifiers (fast preset, a subset of test positives):

(a) noise per model state vs one draw per image shared by every model: randomization, repeatability and
    reproducibility SSIM of SmoothGrad and Smooth IG;
(b) XRAI post-processing 'abs' (PAIR's, the default) vs 'minmax': mean AUPRC, and the share of negative
    XRAI pixels;
(c) Grad-CAM upsampling 'tf1_legacy' (the default) vs 'bilinear': Grad-CAM and Guided Grad-CAM AUPRC;
(d) the localizer (high baseline) trained and predicting at 64 px (the demo's) vs at the classifiers'
    128 px: its AUPRC and the SSIM between two seeds;
(e) Guided Grad-CAM's old second percentile clip against the authors' min–max (random-init ResNet18 at 320).

Last line: ``RESULT noise_ssim_drop=<largest drop in mean SSIM from per-model noise>
xrai_minmax_auprc_delta=<mean AUPRC change> legacy_vs_bilinear_auprc_delta=<Grad-CAM>
localizer_128_auprc_delta=<AUPRC(128) − AUPRC(64)>``.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def evaluate(kind, root, methods, criteria, store, images, ssim_images, localizers=(), **overrides):
    from trust_core.demo import DATASETS
    from trust_core.layout import Layout, workspace_models
    from trust_core.evaluate import EvalConfig, Evaluation
    from trust_core.saliency.registry import FAST_PRESET

    classifiers, demo_localizers = workspace_models(root, kind)
    dataset = DATASETS[kind](Layout(root).dataset(kind), image_size=128)
    config = EvalConfig(methods=tuple(methods), preset=FAST_PRESET, criteria=tuple(criteria), overrides=overrides,
                        utility_limit=images, ssim_images=ssim_images, group=8)
    return Evaluation(dataset, classifiers, config, localizers=list(localizers or demo_localizers),
                      cache=store).run().summary


def main() -> None:
    from trust_core.cache import Store
    from trust_core.demo import DATASETS
    from trust_core.layout import Layout, workspace_models, workspace_path

    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--ssim-images", type=int, default=10)
    parser.add_argument("--skip-localizer", action="store_true")
    args = parser.parse_args()
    root = workspace_path(args.workspace)
    layout = Layout(root)
    store = Store(layout.store)
    started = time.perf_counter()
    report: dict = {}
    drops, xrai_deltas, cam_deltas, loc_deltas = [], [], [], []
    for kind in DATASETS:
        if not layout.dataset(kind).is_dir():
            continue
        out = report[kind] = {}
        run = lambda methods, criteria, **kw: evaluate(kind, root, methods, criteria, store, args.images,
                                                       args.ssim_images, **kw)
        # (a) noise per model state
        noisy = ("smoothgrad", "smooth_ig")
        crit = ("randomization", "repeatability", "reproducibility")
        per_model, shared = run(noisy, crit), run(noisy, crit, noise_per_model=False)
        out["noise"] = {}
        for c in crit:
            for m in noisy:
                a, b = per_model["criteria"][c]["methods"][m], shared["criteria"][c]["methods"][m]
                if a is None or b is None:
                    continue
                out["noise"][f"{c}/{m}"] = {"per_model": a["mean"], "shared": b["mean"],
                                            "verdict_per_model": a["verdict"], "verdict_shared": b["verdict"]}
                drops.append(b["mean"] - a["mean"])
                print(f"{kind} (a) {c:<16} {m:<11} mean SSIM: shared noise {b['mean']:.3f} → per model "
                      f"{a['mean']:.3f} ({a['mean'] - b['mean']:+.3f}); verdict {b['verdict']} → {a['verdict']}")
        # (b) XRAI post-processing
        xa, xm = run(("xrai",), ("utility",)), run(("xrai",), ("utility",), xrai_postprocess="minmax")
        ea, em = xa["criteria"]["utility"]["methods"]["xrai"], xm["criteria"]["utility"]["methods"]["xrai"]
        out["xrai"] = {"abs": ea["mean"], "minmax": em["mean"], "negative_fraction": ea.get("negative_fraction_mean"),
                       "verdict_abs": ea["verdict"], "verdict_minmax": em["verdict"]}
        xrai_deltas.append(em["mean"] - ea["mean"])
        print(f"{kind} (b) XRAI AUPRC: abs {ea['mean']:.3f} ({ea['verdict']}), minmax {em['mean']:.3f} "
              f"({em['verdict']}); negative XRAI pixels {100 * (ea.get('negative_fraction_mean') or 0):.1f} %")
        # (c) Grad-CAM upsampling
        cams = ("gbp", "gradcam", "guided_gradcam")
        legacy, bilinear = run(cams, ("utility",)), run(cams, ("utility",), gradcam_interpolation="bilinear")
        out["gradcam_upsampling"] = {}
        for m in ("gradcam", "guided_gradcam"):
            a, b = legacy["criteria"]["utility"]["methods"][m], bilinear["criteria"]["utility"]["methods"][m]
            out["gradcam_upsampling"][m] = {"tf1_legacy": a["mean"], "bilinear": b["mean"]}
            cam_deltas.append(a["mean"] - b["mean"])
            print(f"{kind} (c) {m:<15} AUPRC: tf1_legacy {a['mean']:.3f}, bilinear {b['mean']:.3f}")
        # (d) localizer resolution
        if not args.skip_localizer:
            from trust_core.models.localizer import train_localizer
            dataset = DATASETS[kind](layout.dataset(kind), image_size=128)
            _classifiers, small = workspace_models(root, kind)
            large = []
            for seed in (0, 1):
                path = layout.bench / f"{kind}_unet128_s{seed}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.is_file():
                    train_localizer(dataset, path, size=128, seed=seed, epochs=12)
                large.append(path)
            crit = ("utility", "repeatability")
            at64, at128 = run(("grad",), crit, localizers=small), run(("grad",), crit, localizers=large)
            u64 = at64["criteria"]["utility"]["baselines"]["localizer"]["mean"]
            u128 = at128["criteria"]["utility"]["baselines"]["localizer"]["mean"]
            r64 = at64["criteria"]["repeatability"]["baseline"]["mean"]
            r128 = at128["criteria"]["repeatability"]["baseline"]["mean"]
            out["localizer"] = {"auprc_64": u64, "auprc_128": u128, "ssim_64": r64, "ssim_128": r128}
            loc_deltas.append(u128 - u64)
            print(f"{kind} (d) localizer AUPRC at 64 px {u64:.3f}, at 128 px {u128:.3f}; SSIM of two seeds "
                  f"{r64:.3f} vs {r128:.3f}")
    # (e) Guided Grad-CAM: the old rule (a second percentile clip of the product) against the authors'
    # (min–max only), on a random-init ResNet18 at 320
    import torch

    from trust_core import explain
    from trust_core.models import build
    from trust_core.saliency.postprocess import normalize_maps
    torch.manual_seed(0)
    model = build("resnet18").eval()
    x = torch.rand(4, 3, 320, 320) * 2 - 1
    maps = explain(model, x, methods=["gbp", "gradcam", "guided_gradcam"])
    old, _ = normalize_maps(torch.from_numpy(maps["gbp"] * maps["gradcam"]))
    moved = float(np.nanmax(np.abs(old.numpy() - maps["guided_gradcam"])))
    report["guided_gradcam_old_rule_max_change"] = moved
    print(f"(e) Guided Grad-CAM, random-init ResNet18 at 320: the old second clip moved the map by up to {moved:.3f}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    layout.bench.mkdir(parents=True, exist_ok=True)
    (layout.bench / "fidelity.json").write_text(json.dumps(report, indent=2))
    fmt = lambda v: f"{v:.3f}" if v is not None else "n/a"
    print(f"RESULT noise_ssim_drop={fmt(max(drops) if drops else None)} "
          f"xrai_minmax_auprc_delta={fmt(float(np.mean(xrai_deltas)) if xrai_deltas else None)} "
          f"legacy_vs_bilinear_auprc_delta={fmt(float(np.mean(cam_deltas)) if cam_deltas else None)} "
          f"localizer_128_auprc_delta={fmt(float(np.mean(loc_deltas)) if loc_deltas else None)}")


if __name__ == "__main__":
    main()
