"""Benchmarks that print ratios measured side by side in one run (absolute times here are noise).

``trust bench saliency``: (a) our ``explain``, all eight methods, paper preset, fp32; (b) the reference
pipeline earlier work used — PAIR ``saliency.core`` with a torch ``call_model_function`` for gradient,
SmoothGrad, IG, Smooth IG and XRAI, captum for Guided Backprop and Grad-CAM — one method after another;
(c) the floor: the forward+backward passes (a) needs × the best per-image time of a batched
forward+backward measured now; (d) (a) in bf16 with its fidelity (SSIM per method against fp32).

``trust bench metrics``: batched AUPRC/SSIM against per-image scikit-learn/scikit-image loops.
"""
from __future__ import annotations

import copy
import os
import time

import numpy as np
import torch
from .saliency.registry import FAST_PRESET


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _timed(fn):
    _sync()
    started = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - started


def _best_of(fn, repeats: int, before=None):
    """(output, best seconds) of ``repeats`` runs; ``before`` runs untimed ahead of each."""
    best, out = float("inf"), None
    for _ in range(repeats):
        if before is not None:
            before()
        out, elapsed = _timed(fn)
        best = min(best, elapsed)
    return out, best


def _pass_time(model, x, batch_sizes=None, precision="fp32", repeats=2, log=None) -> float:
    """Best seconds per image of a forward+backward w.r.t. the input (parameters frozen), over batch
    sizes and over both memory layouts (contiguous, and channels-last as the engine uses on CPUs)."""
    from .saliency.engine import autocast, fp32_mode, frozen_eval
    from .saliency.device import compute_model

    if batch_sizes is None:
        batch_sizes = (1, 8, 32, 64, 128) if x.device.type == "cuda" else (1, 4, 8, 16, 32)
    best = float("inf")
    fast = compute_model(model, x.device, precision)
    if fast is model:  # the engine keeps this model's layout (GPUs): the floor tries channels-last too
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    for candidate, layout in ((model, torch.contiguous_format), (fast, torch.channels_last)):
        per_batch = {}
        with frozen_eval(candidate), fp32_mode(x.device, precision):
            for batch in batch_sizes:
                inputs = x.repeat(batch, 1, 1, 1).contiguous(memory_format=layout)
                elapsed = float("inf")
                for attempt in range(repeats + 1):  # first is warm-up
                    xb = inputs.clone(memory_format=layout).requires_grad_(True)
                    _sync()
                    started = time.perf_counter()
                    with autocast(x.device, precision):
                        out = candidate(xb)
                    torch.autograd.grad(out.float()[:, 0].sum(), xb)
                    _sync()
                    if attempt:
                        elapsed = min(elapsed, (time.perf_counter() - started) / batch)
                per_batch[batch] = elapsed
                best = min(best, elapsed)
        if log is not None:
            name = "contiguous" if layout is torch.contiguous_format else "channels-last"
            log(f"    per-image pass, {precision}, {name}: "
                + ", ".join(f"batch {b} {t * 1000:.2f} ms" for b, t in per_batch.items()))
    return best


def reference_pipeline(model, x: torch.Tensor, target: int, gradcam_layer) -> dict[str, float]:
    """Seconds per method of the PAIR + captum pipeline on one image (C, H, W), on the model's device
    (PAIR passes NumPy batches: each call moves them to the device and the gradients back)."""
    import saliency.core as pair
    from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam

    device = next(model.parameters()).device

    def call(x_batch, call_model_args=None, expected_keys=None):
        xb = torch.as_tensor(np.asarray(x_batch), dtype=torch.float32, device=device)
        xb = xb.permute(0, 3, 1, 2).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(xb)[:, target].sum(), xb)
        return {pair.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).cpu().numpy()}

    image = x.permute(1, 2, 0).cpu().numpy()
    baseline = -np.ones_like(image)
    times = {}
    _, times["grad"] = _timed(lambda: pair.GradientSaliency().GetMask(image, call))
    _, times["smoothgrad"] = _timed(lambda: pair.GradientSaliency().GetSmoothedMask(
        image, call, stdev_spread=0.15, nsamples=25, magnitude=True))
    _, times["ig"] = _timed(lambda: pair.IntegratedGradients().GetMask(image, call, x_baseline=baseline, x_steps=10,
                                                                       batch_size=20))
    _, times["smooth_ig"] = _timed(lambda: pair.IntegratedGradients().GetSmoothedMask(
        image, call, stdev_spread=0.15, nsamples=25, magnitude=True, x_baseline=baseline, x_steps=10, batch_size=20))
    _, times["xrai"] = _timed(lambda: pair.XRAI().GetMask(image, call, batch_size=20))
    xb = x[None].clone().to(device)
    _, times["gbp"] = _timed(lambda: GuidedBackprop(model).attribute(xb, target=target))
    _, times["gradcam"] = _timed(lambda: LayerAttribution.interpolate(
        LayerGradCam(model, gradcam_layer).attribute(xb, target=target, relu_attributions=True),
        tuple(x.shape[1:]), interpolate_mode="bilinear"))
    return times


def xrai_post(image_hwc: np.ndarray, attr: np.ndarray, device: str = "cpu") -> tuple[float, float]:
    """Seconds of XRAI's post-IG work (segmentation + ranking): PAIR's, ours (no memoization, masks and
    ranking on ``device``); best of 3."""
    from saliency.core import xrai as pair_xrai

    from .saliency import xrai as ours

    def reference():
        segments = pair_xrai._get_segments_felzenszwalb(image_hwc)
        return pair_xrai.XRAI._xrai(attr=attr, segs=segments, area_perc_th=1.0, min_pixel_diff=50)[0]

    def mine():
        ours._LABEL_CACHE.clear()
        masks = ours.segment_masks(image_hwc, ours.SegmentParams(), device=device)
        return ours.xrai_rank(torch.from_numpy(attr).to(device), masks).cpu().numpy()

    # Best of three for each, alternating (a single timing of ~0.5 s swings ±20% on a shared machine).
    ref_time = our_time = float("inf")
    for _ in range(3):
        ref_map, elapsed = _timed(reference)
        ref_time = min(ref_time, elapsed)
        our_map, elapsed = _timed(mine)
        our_time = min(our_time, elapsed)
    if not np.allclose(ref_map, our_map, rtol=1e-4, atol=1e-6):
        raise AssertionError("XRAI maps differ from PAIR's in the benchmark")
    return ref_time, our_time


def bench_saliency(arch: str = "densenet121", size: int | None = None, device: str = "cpu",
                   batch_size: int | None = None, skip_reference: bool = False, log=print,
                   model_spec=None) -> dict:
    """See the module docstring. On CUDA every side is timed best of 2 (the first run includes the
    device's warm-up), the reference runs on the GPU too, and tf32 is measured besides bf16."""
    from .metrics import ssim_batch
    from .models import build, get_architecture
    from .saliency import explain
    from .models.info import tag
    from .saliency.engine import fp32_mode
    from .saliency.registry import PAPER_PRESET
    from .saliency.explain import _resolve_layer
    from .saliency.xrai import _LABEL_CACHE

    torch.manual_seed(0)
    cuda = torch.device(device).type == "cuda"
    repeats = 2 if cuda else 1
    if model_spec is not None:  # any model: a spec (.toml), a .pt2 program or a checkpoint
        from .models import load
        from .models.info import info_of

        model = load(model_spec, num_classes=None).to(device)
        arch, size = info_of(model).name, info_of(model).prep.size
        log(f"model: {model_spec} ({arch}, {info_of(model).prep.label})")
    else:
        spec = get_architecture(arch)
        size = size or spec.input_size
        model = build(arch).to(device)
        tag(model, input_size=size, meta={"input_size": size})
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    gray = np.clip(0.5 + 0.3 * np.sin(7 * xx) * np.cos(5 * yy) + 0.05 * rng.normal(size=(size, size)), 0, 1)
    if model_spec is not None:
        x = info_of(model).prep(gray.astype(np.float32)).to(device)
    else:
        x = torch.from_numpy((gray * 2 - 1).astype(np.float32))[None].expand(3, -1, -1).contiguous().to(device)
    if cuda:
        log(f"device: {torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}")
    explain(model, x[None], methods=["grad"])  # warm-up (allocator, kernels)

    def run(precision):  # XRAI's segmentation memo is cleared: every run segments afresh
        return _best_of(lambda: explain(model, x[None], preset=PAPER_PRESET, batch_size=batch_size,
                                        precision=precision), repeats, before=_LABEL_CACHE.clear)

    ours, t_ours = run("fp32")
    log(f"(a) ours, 8 methods, arun2021, fp32: {t_ours:.2f} s, {ours.passes} forward+backward passes")
    if cuda:
        log(f"    peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if cuda:  # where the host time of one run goes (the profiler's own overhead included)
        from torch.profiler import ProfilerActivity, profile

        trace = os.environ.get("TRUST_BENCH_TRACE")  # a path: the run's CPU+CUDA timeline (Chrome trace)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trace else [])
        _LABEL_CACHE.clear()
        with profile(activities=activities) as prof:
            _, t_profiled = _timed(lambda: explain(model, x[None], preset=PAPER_PRESET, batch_size=batch_size))
        sections = sorted((e for e in prof.key_averages() if e.key.startswith("saliency.") and e.cpu_time_total > 0),
                          key=lambda e: e.key)  # (the CUDA activity adds empty device-side rows)
        log(f"    profiled run {t_profiled:.2f} s: " + ", ".join(f"{e.key} {e.cpu_time_total / 1e3:.0f} ms"
                                                         for e in sections))
        if trace:
            prof.export_chrome_trace(trace)
    per_pass = _pass_time(model, x[None], log=log)
    if cuda:  # the layouts at the tensor-core precisions, for the record
        for precision in ("tf32", "bf16"):
            _pass_time(model, x[None], batch_sizes=(64, 128), precision=precision, log=log)
    floor = ours.passes * per_pass
    log(f"(c) floor: {ours.passes} passes × {per_pass * 1000:.2f} ms = {floor:.2f} s")
    result = {"arch": arch, "size": size, "device": device, "ours_s": t_ours, "passes": ours.passes,
              "floor_s": floor, "efficiency": floor / t_ours}
    # (e) what each named method set costs: passes shared between methods, forward-only passes beside
    from .saliency.methods import SETS, method_set
    for name in SETS:
        if name == "paper":
            done, seconds = ours, t_ours
        else:
            _LABEL_CACHE.clear()
            done, seconds = _timed(lambda: explain(model, x[None], methods=name, preset=PAPER_PRESET,
                                                   batch_size=batch_size))
        log(f"(e) set {name} ({len(method_set(name))} methods): {done.passes} forward+backward passes, "
            f"{done.forwards} forward-only passes, {seconds:.2f} s")
        result[f"passes_{name}"], result[f"forwards_{name}"] = done.passes, done.forwards
    if not skip_reference:
        layer = _resolve_layer(model, ours.params)
        best = None
        with fp32_mode(torch.device(device), "fp32"):  # like for like: IEEE fp32 on GPUs too
            for _ in range(repeats):
                times = reference_pipeline(model, x, int(ours.targets[0]), layer)
                if best is None or sum(times.values()) < sum(best.values()):
                    best = times
        t_ref = sum(best.values())
        log("(b) reference (PAIR + captum): " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items())
            + f" → {t_ref:.2f} s")
        result.update(reference_s=t_ref, reference_methods=best, speedup_vs_reference=t_ref / t_ours)
    from .hardware import cpu_bf16_native, cpu_description
    capability = "CUDA " + torch.cuda.get_device_name(device) if cuda else cpu_description()
    result["hardware"] = capability
    if cuda:
        low_precisions = ["tf32", "bf16"]
    elif cpu_bf16_native():
        low_precisions = ["bf16"]
    else:
        low_precisions = []
        log(f"(d) bf16 not measured on this CPU: {capability}; the engine refuses it here (measured 13× slower "
            f"than fp32 on an AVX2-only AMD EPYC)")
    for precision in low_precisions:
        low, t_low = run(precision)
        fidelity = {}
        for m in ours:
            a, b = ours[m], low[m]
            fidelity[m] = (float(ssim_batch(torch.from_numpy(a), torch.from_numpy(b), data_range=1.0)[0])
                           if np.isfinite(a).all() and np.isfinite(b).all() else float("nan"))
        log(f"(d) {precision} on {capability}: {t_low:.2f} s ({t_ours / t_low:.2f}× fp32); SSIM to fp32 (data_range 1): "
            + ", ".join(f"{k} {v:.3f}" for k, v in fidelity.items()))
        result.update({f"{precision}_s": t_low, f"{precision}_speedup": t_ours / t_low,
                       f"{precision}_ssim": fidelity, f"{precision}_min_ssim": min(fidelity.values())})
    # XRAI ranks a 2-D attribution: IG's, channel maximum, as XRAI itself does (not the piecewise-constant
    # XRAI output, whose tied segments PAIR's float32 and our float64 gains can order differently).
    attr = ours.raw["ig"][0].max(0)
    ref_post, our_post = xrai_post(x.permute(1, 2, 0).cpu().numpy(), attr.astype(np.float32), device)
    log(f"XRAI post-IG (segmentation + ranking): PAIR {ref_post:.3f} s, ours {our_post:.3f} s")
    if cuda:
        from .saliency.xrai import SegmentParams, segment_masks, xrai_rank

        masks = segment_masks(x.permute(1, 2, 0).cpu().numpy(), SegmentParams(), device=device)
        attr_t = torch.from_numpy(attr.astype(np.float32)).to(device)
        _, t_rank = _best_of(lambda: xrai_rank(attr_t, masks), 3)
        log(f"    of which our ranking alone, {masks.shape[0]} masks on {device}: {t_rank * 1000:.1f} ms")
    result.update(xrai_post_ref_s=ref_post, xrai_post_ours_s=our_post, xrai_post_speedup=ref_post / our_post)
    if cuda:  # for the record: cuDNN's autotuner, which the engine does not turn on
        torch.backends.cudnn.benchmark = True
        try:
            _, t_tuned = run("fp32")
            tuned_pass = _pass_time(model, x[None], batch_sizes=(128,))
        finally:
            torch.backends.cudnn.benchmark = False
        log(f"(e) fp32 with cudnn.benchmark on (not the default): ours {t_tuned:.2f} s, best pass "
            f"{tuned_pass * 1000:.2f} ms")
    log(f"hardware: {capability}")
    keys = ["speedup_vs_reference", "efficiency", "bf16_speedup", "bf16_min_ssim", "xrai_post_speedup"]
    if cuda:
        keys[4:4] = ["tf32_speedup", "tf32_min_ssim"]
    log("RESULT " + " ".join(f"{k}={result[k]:.3f}" if isinstance(result.get(k), float) else f"{k}=n/a"
                             for k in keys))
    return result


def bench_metrics(n: int = 64, size: int = 320, device: str = "cpu", log=print) -> dict:
    """Batched AUPRC/SSIM on ``device`` (host→device copies of the maps and the copy back included)
    against scikit-learn/scikit-image per-image loops."""
    from skimage.metrics import structural_similarity
    from sklearn.metrics import auc, precision_recall_curve

    from .metrics import auprc_batch, ssim_batch

    rng = np.random.default_rng(0)
    maps = rng.random((n, size, size)).astype(np.float32)
    other = np.clip(maps + rng.normal(0, 0.1, maps.shape), 0, 1).astype(np.float32)
    masks = rng.random((n, size, size)) > 0.9

    def loop_auprc():
        out = []
        for m, k in zip(maps, masks):
            p, r, _ = precision_recall_curve(k.ravel(), m.ravel())
            out.append(auc(r, p))
        return np.array(out)

    def batched_auprc():
        return auprc_batch(torch.from_numpy(maps).to(device), torch.from_numpy(masks).to(device)).cpu().numpy()

    def batched_ssim():
        return ssim_batch(torch.from_numpy(maps).to(device), torch.from_numpy(other).to(device)).cpu().numpy()

    repeats = 2 if torch.device(device).type == "cuda" else 1  # the first GPU call warms up
    ref_a, t_ref_a = _timed(loop_auprc)
    our_a, t_our_a = _best_of(batched_auprc, repeats)
    ref_s, t_ref_s = _timed(lambda: np.array([structural_similarity(a, b, data_range=2.0) for a, b in zip(maps, other)]))
    our_s, t_our_s = _best_of(batched_ssim, repeats)
    result = {"auprc_speedup": t_ref_a / t_our_a, "auprc_max_diff": float(np.abs(ref_a - our_a).max()),
              "ssim_speedup": t_ref_s / t_our_s, "ssim_max_diff": float(np.abs(ref_s - our_s).max())}
    log(f"AUPRC: sklearn loop {t_ref_a:.3f} s, batched on {device} {t_our_a:.3f} s; SSIM: scikit-image loop "
        f"{t_ref_s:.3f} s, batched on {device} {t_our_s:.3f} s ({n} maps of {size}²)")
    log("RESULT " + " ".join(f"{k}={v:.3g}" for k, v in result.items()))
    return result


def bench_engines(workspace=None, kind: str = "rsna", *, images: int = 8, log=print) -> dict:
    """The same evaluation (demo models, fast preset, fresh caches) on the local engine and on Ray with
    1 and 2 workers; ratios of wall times."""
    import tempfile

    from .cache.store import Store
    from .demo import DATASETS
    from .evaluate import EvalConfig, Evaluation
    from .evaluate.distributed import ray_executor

    from .layout import Layout, workspace_models

    layout = Layout.of(workspace)
    classifiers, _ = workspace_models(layout.root, kind)
    dataset = DATASETS[kind](layout.dataset(kind), image_size=128)
    config = EvalConfig(preset=FAST_PRESET, utility_limit=images, ssim_images=min(images, 5), group=2,
                        criteria=("utility", "randomization"))
    times = {}
    for label, executor in (("local", None), ("ray1", ray_executor(workers=1)), ("ray2", ray_executor(workers=2))):
        with tempfile.TemporaryDirectory() as tmp:
            evaluation = Evaluation(dataset, classifiers[:1], config, cache=Store(tmp))
            _, times[label] = _timed(lambda: evaluation.run(executor=executor))
        log(f"{label}: {times[label]:.1f} s")
    result = {"ray1_vs_local": times["local"] / times["ray1"], "ray2_vs_ray1": times["ray1"] / times["ray2"],
              "ray2_vs_local": times["local"] / times["ray2"]}
    log("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in result.items()))
    return result
