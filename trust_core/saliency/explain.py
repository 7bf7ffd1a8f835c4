"""``explain``: the eight saliency maps of a batch of images, batched, shared, cached."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import threading
import warnings
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import numpy as np
import torch
from torch.profiler import record_function

from ..cache.store import Store, digest_array, make_key, model_fingerprint, weights_digest
from ..errors import SaliencyError
from ..hardware import precision_problem
from ..models.info import info_of, tag
from .engine import PathSet, autocast, fp32_mode, frozen_eval, run_paths
from .postprocess import minmax_maps, normalize_maps
from .registry import METHODS, PAPER_PRESET, PRESETS, method_params, resolve_methods, resolve_params
from .xrai import SegmentParams, cached_labels, segment_masks, xrai_rank

CODE_VERSION = "saliency-2"  # 2: Guided Grad-CAM min–max only, Grad-CAM upsampling rules, noise per model, XRAI post-processing
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


class SaliencyMaps(dict):
    """``method → float32 (N, H, W)`` maps in [0, 1] (NaN where a map could not be normalized).

    Attributes
    ----------
    flags : method → per-image reason (None when the map is valid).
    raw : method → raw attributions ((N, 3, H, W), or (N, H, W) for Grad-CAM/XRAI/Guided Grad-CAM) for
        the images computed in this call (cached maps carry no raw attributions).
    params : every resolved parameter, including the preset name.
    method_params : method → the parameters its maps depend on.
    targets : (N,) explained class per image.
    stats : method → per-image dict of diagnostics (XRAI: ``negative_fraction``, the share of pixels
        whose gain density is negative before post-processing).
    passes : forward+backward passes this call ran.
    from_cache : method → per-image bool.
    """

    def __init__(self, maps, *, flags, raw, params, method_params, targets, passes, from_cache, precision,
                 stats=None):
        super().__init__(maps)
        self.flags = flags
        self.stats = stats or {}
        self.raw = raw
        self.params = params
        self.method_params = method_params
        self.targets = targets
        self.passes = passes
        self.from_cache = from_cache
        self.precision = precision

    @property
    def preset(self) -> str:
        return self.params["preset"]

    @property
    def preset_label(self) -> str:
        return PRESETS[self.preset].label


def _resolve_layer(model: torch.nn.Module, params: dict) -> torch.nn.Module:
    """The Grad-CAM layer: the ``gradcam_layer`` parameter, else the model's own (registry entry or spec)."""
    path = params["gradcam_layer"] or info_of(model).gradcam_layer
    if path is None:
        raise SaliencyError("Grad-CAM needs a target layer and this model does not name one: pass "
                            "gradcam_layer='dotted.module.path' (or gradcam_layer in its model spec)")
    try:
        layer = model.get_submodule(path)
    except AttributeError:
        raise SaliencyError(f"the model has no layer {path!r} for Grad-CAM; pass gradcam_layer= with one "
                            f"of its convolutional blocks (`trust inspect --model ...` lists them)") from None
    return layer


def _check_images(model: torch.nn.Module, images) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise SaliencyError(f"images must be a tensor (N, 3, H, W), got {type(images).__name__}")
    if images.dim() == 3:
        images = images[None]
    info = info_of(model)
    channels = info.prep.channels
    if images.dim() != 4 or images.shape[1] != channels:
        raise SaliencyError(f"images must have shape (N, {channels}, H, W) ({info.prep.label}: see the model's "
                            f"preprocessing); got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise SaliencyError("no image given")
    if not torch.isfinite(images).all():
        raise SaliencyError("the images contain NaN or infinite values")
    size = info.input_size
    if size is not None and tuple(images.shape[2:]) != (size, size):
        raise SaliencyError(f"this {info.arch or ''} model expects {size}×{size} inputs, got "
                            f"{images.shape[2]}×{images.shape[3]}")
    return images.float()


def _noise(image: torch.Tensor, n_samples: int, spread: float, seed: int, model_key: str = "") -> torch.Tensor:
    """SmoothGrad noise for one image (S, C, H, W): σ = spread × (max − min), seeded by the image's
    content and ``model_key`` (the digest of the model's weights when ``noise_per_model``).

    Seeding by content (not by batch position) makes maps independent of how images are batched and
    lets SmoothGrad and Smooth IG share the same draws whenever they run together or apart; the model
    key gives every model state (original, randomized, replicate, other architecture) its own draws,
    as the paper's fresh ``np.random.normal`` calls did, while staying reproducible.
    """
    text = f"{seed}:{digest_array(image)}" + (f":{model_key}" if model_key else "")
    digest = hashlib.sha256(text.encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    stdev = spread * float(image.max() - image.min())
    return torch.randn((n_samples, *image.shape), generator=generator) * stdev


_LAYOUTS: "OrderedDict[int, tuple]" = OrderedDict()  # id(model) → (weakref, state signature, copy)
_LAYOUTS_KEPT = 8
_LAYOUTS_LOCK = threading.Lock()


def _state_signature(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    return tuple((id(t), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


def compute_model(model: torch.nn.Module, device: torch.device, precision: str) -> torch.nn.Module:
    """The module the passes run on: on CPUs, a channels-last copy of a convolutional model (oneDNN is
    faster with it: DenseNet121 at 320, batch 8, measured 239 vs 263 ms per image in fp32 and 103 vs
    177 ms in bf16); on GPUs the model itself (cuDNN was slower in channels-last for DenseNet121 at 320
    on an H100, batch 128: fp32 2.03 vs 1.53 ms per image, tf32 1.14 vs 0.97, bf16 0.83 vs 0.67). The
    copy is made once per model state (kept for the last few models) and the caller's model is never
    modified."""
    convolutional = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    if not convolutional or device.type == "cuda":
        return model
    signature = _state_signature(model)
    with _LAYOUTS_LOCK:
        entry = _LAYOUTS.get(id(model))
        if entry is not None and entry[0]() is model and entry[1] == signature:
            _LAYOUTS.move_to_end(id(model))
            return entry[2]
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    tag(fast, channels_last=True)
    with _LAYOUTS_LOCK:
        _LAYOUTS[id(model)] = (weakref.ref(model), signature, fast)
        while len(_LAYOUTS) > _LAYOUTS_KEPT:
            _LAYOUTS.popitem(last=False)
    return fast


def default_batch_size(device: torch.device, image_shape, precision: str = "fp32") -> int:
    """Passes per chunk. CPUs (measured on this project's 2-core AMX CPU, DenseNet121 at 320, in the
    channels-last layout the engine uses): fp32 costs about the same per image at any batch (226 ms at
    4, 239 at 8, 310 at 2), bf16 is best at 8 (103 ms; 114 at 16, 132 at 32). GPUs want large batches
    (H100, fp32: 1.62 ms per image at 64, 1.53 at 128, 1.84 at 32) within their memory: DenseNet121 at
    320 peaked at 16.2 GiB for 64 images, so 0.375 GiB per image (1.5 × that) is budgeted within 60 %
    of the free memory (PyTorch's cached blocks counted as free, so that the batch, and the shapes
    cuDNN has already planned for, stay the same from call to call), 16 to 128."""
    pixels = int(np.prod(image_shape[-2:]))
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # PyTorch's own cache
        budget = int(min(128, max(16, 0.6 * free / (0.375 * 2**30))))
    else:
        budget = 8 if precision != "fp32" else 4
    return max(1, min(4 * budget, budget * (320 * 320) // pixels))


def _run(pool: ThreadPoolExecutor | None, fn) -> Future:
    """``fn`` in ``pool`` (beside the GPU passes), or at once when there is no pool."""
    if pool is not None:
        return pool.submit(fn)
    done: Future = Future()
    done.set_result(fn())
    return done


def _xrai_map(image: torch.Tensor, attrs: list[torch.Tensor], labels: Future, params: dict,
              seg_params: SegmentParams) -> torch.Tensor:
    """XRAI of one image from its IG attributions (one per baseline) and its segmentation, on the
    image's device."""
    attr = torch.stack(attrs).mean(0).max(dim=0).values  # mean over baselines, channel max
    with record_function("saliency.xrai.segments"):
        masks = segment_masks(image.permute(1, 2, 0).cpu().numpy(), seg_params, device=image.device,
                              labels=labels.result())
    with record_function("saliency.xrai.rank"):
        return xrai_rank(attr, masks, algorithm=params["xrai_algorithm"], area_threshold=params["xrai_area_threshold"],
                         min_pixel_diff=params["xrai_min_pixel_diff"]).float()


def compute(model, x: torch.Tensor, methods: list[str], params: dict, *, device: torch.device,
            batch_size: int, precision: str, model_key: str = "") -> tuple[dict, dict, dict, torch.Tensor, int, dict]:
    """Compute maps for all images of ``x`` (already on ``device``); no cache. ``model_key`` seeds the
    noise with the model state (see :func:`_noise`)."""
    n = x.shape[0]
    need = set(methods)
    for m in methods:
        need |= set(METHODS[m].depends_on)
    layer = _resolve_layer(model, params) if need & {"gradcam", "guided_gradcam"} else None

    paths = PathSet()
    plain: dict[int, int] = {}
    if need & {"grad", "ig", "xrai", "gradcam"}:
        plain = {i: paths.add(end_index=i, image=i, alphas=[1.0], plain=True) for i in range(n)}

    def integration(steps: int, i: int, end_index: int, start: float, share: bool):
        alphas = torch.linspace(0, 1, steps, dtype=torch.float64)
        shared = share and i in plain and alphas[-1] == 1.0
        return paths.add(end_index=end_index, image=i, start=start,
                         alphas=alphas[:-1] if shared else alphas), shared

    # Constant baselines in the model's input space: IG's is given on the paper's [-1, 1] scale (−1 black)
    # and mapped through the model's preprocessing (the same float for the paper's; per channel for others).
    prep = info_of(model).prep
    ig_baseline = prep.from_paper_scale(params["ig_baseline"])
    if isinstance(ig_baseline, torch.Tensor):
        ig_baseline = ig_baseline.to(x.device)
    ig_paths = {}
    if "ig" in need:
        ig_paths = {i: integration(params["ig_steps"], i, i, ig_baseline, True) for i in range(n)}
    # CPU work that depends on the images alone runs beside the passes on a GPU: the noisy copies
    # (drawn on the CPU, so that the maps do not depend on the device) and XRAI's segmentation.
    pool = ThreadPoolExecutor(2, thread_name_prefix="saliency-cpu") if device.type == "cuda" else None
    noisy_rows: dict[int, list[int]] = {}
    noisy = None
    if need & {"smoothgrad", "smooth_ig"}:
        for i in range(n):
            noisy_rows[i] = list(range(n + i * params["n_samples"], n + (i + 1) * params["n_samples"]))
        clean = x.cpu()

        def noisy_copies():
            key = model_key if params["noise_per_model"] else ""
            return torch.cat([clean[i][None] + _noise(clean[i], params["n_samples"], params["noise_spread"],
                                                       params["seed"], key) for i in range(n)])
        noisy = _run(pool, noisy_copies)
    sig_paths = {}
    if "smooth_ig" in need:
        sig_paths = {i: [integration(params["smooth_ig_steps"], i, row, ig_baseline, False)[0]
                         for row in noisy_rows[i]] for i in range(n)}
    sg_paths = {}
    if "smoothgrad" in need:
        for i in range(n):
            if sig_paths and float(paths.alphas[sig_paths[i][0]][-1]) == 1.0:
                sg_paths[i] = sig_paths[i]  # α = 1 of each Smooth IG path is a SmoothGrad sample
            else:
                sg_paths[i] = [paths.add(end_index=row, image=i, alphas=[1.0]) for row in noisy_rows[i]]
    xrai_paths = {}
    if "xrai" in need:
        for i in range(n):
            if params["xrai_baselines"] == "image_min_max" and prep.paper:
                baselines = (float(x[i].min()), float(x[i].max()))  # PAIR's: the array's min and max
            elif params["xrai_baselines"] == "image_min_max":  # per channel: the film's own black and white
                baselines = (x[i].amin((1, 2), keepdim=True), x[i].amax((1, 2), keepdim=True))
            else:  # black and white of the model's input space
                baselines = tuple(v.to(x.device) if isinstance(v, torch.Tensor) else v
                                  for v in (prep.value(0.0), prep.value(1.0)))
            xrai_paths[i] = [(b, *integration(params["xrai_steps"], i, i, b, True)) for b in baselines]
    gbp_paths = {}
    if "gbp" in need:
        gbp_paths = {i: paths.add(end_index=i, image=i, alphas=[1.0], guided=True) for i in range(n)}

    seg_params = SegmentParams(scales=params["xrai_scales"], sigma=params["xrai_sigma"],
                               min_size=params["xrai_min_size"], resize=params["xrai_resize"],
                               dilation_radius=params["xrai_dilation_radius"])
    # XRAI segments the film: a model's normalization must not change its segments (every channel is an
    # affine map of the grey film, and the segmentation min–max normalizes: the first channel, replicated
    # as the paper's three identical channels, gives the paper's segments for any normalization).
    films = x if prep.paper else x[:, :1].expand(-1, 3, -1, -1)
    segmenting = {}
    if "xrai" in need:
        segmenting = {i: _run(pool, partial(cached_labels, films[i].permute(1, 2, 0).cpu().numpy(), seg_params))
                      for i in range(n)}
    if pool is not None:
        pool.shutdown(wait=False)

    targets = None
    if params["target"] != "predicted":
        targets = torch.full((n,), int(params["target"]), dtype=torch.long)
    elif not plain:
        with torch.no_grad(), fp32_mode(device, precision), autocast(device, precision):
            targets = model(x).float().argmax(1)
    with record_function("saliency.passes"):
        out = run_paths(model, x, paths, n_images=n, targets=targets, device=device, batch_size=batch_size,
                        precision=precision, gradcam_layer=layer,
                        gradcam_interpolation=params["gradcam_interpolation"], bank_extra=noisy)
    bank_tensor = out.bank

    raw: dict[str, torch.Tensor] = {}
    if "grad" in need:
        raw["grad"] = torch.stack([out.endpoints[plain[i]] for i in range(n)])
    if "ig" in need:
        raw["ig"] = torch.stack([
            (x[i] - ig_baseline) * (out.sums[p] + (out.endpoints[plain[i]] if shared else 0))
            / params["ig_steps"] for i, (p, shared) in ig_paths.items()])
    if "smooth_ig" in need:
        maps = []
        for i in range(n):
            noisy = bank_tensor[noisy_rows[i]]  # the same noisy copies the paths ended at
            ig = (noisy - ig_baseline) * out.sums[sig_paths[i]] / params["smooth_ig_steps"]
            maps.append((ig * ig if params["magnitude"] else ig).mean(0))
        raw["smooth_ig"] = torch.stack(maps)
    del bank_tensor
    if "smoothgrad" in need:
        grads = [out.endpoints[sg_paths[i]] for i in range(n)]
        raw["smoothgrad"] = torch.stack([(g * g if params["magnitude"] else g).mean(0) for g in grads])
    if "gbp" in need:
        raw["gbp"] = torch.stack([out.endpoints[gbp_paths[i]] for i in range(n)])
    if "gradcam" in need:
        raw["gradcam"] = out.cams
    if "xrai" in need:
        raw["xrai"] = torch.stack([
            _xrai_map(films[i], [(x[i] - b) * (out.sums[p] + (out.endpoints[plain[i]] if shared else 0))
                                 / params["xrai_steps"] for b, p, shared in xrai_paths[i]],
                      segmenting[i], params, seg_params)
            for i in range(n)])

    with record_function("saliency.normalize"):
        result_maps, flags = _normalized(raw, need, params, n)
    stats = {}
    if "xrai" in need:
        negative = (raw["xrai"] < 0).flatten(1).float().mean(1).cpu().tolist()
        stats["xrai"] = [{"negative_fraction": float(f)} for f in negative]
    return result_maps, flags, raw, out.targets.cpu(), out.passes, stats


def _normalized(raw: dict, need: set, params: dict, n: int) -> tuple[dict, dict]:
    """Post-processed maps and their flags. Guided Grad-CAM: the product of the normalized Guided
    Backprop and Grad-CAM maps, min–max only (the authors' scripts: no second percentile clip). XRAI:
    PAIR's grayscale visualization (abs, clip, rescale) or, with ``xrai_postprocess='minmax'``, plain
    min–max of the gain density."""
    result_maps, flags = {}, {}
    for key in sorted(need, key=list(METHODS).index):
        if key == "guided_gradcam":
            continue
        if key == "xrai" and params["xrai_postprocess"] == "minmax":
            result_maps[key], flags[key] = minmax_maps(raw[key])
        else:
            result_maps[key], flags[key] = normalize_maps(raw[key], params["percentile"])
    if "guided_gradcam" in need:
        product = result_maps["gbp"] * result_maps["gradcam"]  # NaN propagates from either factor
        raw["guided_gradcam"] = product
        result_maps["guided_gradcam"], flags["guided_gradcam"] = minmax_maps(torch.nan_to_num(product, nan=0.0))
        for i in range(n):
            upstream = flags["gbp"][i] or flags["gradcam"][i]
            if upstream:
                flags["guided_gradcam"][i] = f"from its factors: {upstream}"
                result_maps["guided_gradcam"][i] = float("nan")
    return result_maps, flags


def _compute_within_memory(model, x, methods, params, *, device, batch_size, precision, model_key=""):
    """:func:`compute`; on running out of device memory with the default batch, again with half of it
    (down to 1). With a batch the caller chose, a clear error instead."""
    size = batch_size or default_batch_size(device, x.shape, precision)
    while True:
        try:
            return compute(model, x, methods, params, device=device, batch_size=size, precision=precision,
                           model_key=model_key)
        except torch.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if batch_size is not None or size == 1:
                raise SaliencyError(f"out of {device.type.upper()} memory with {size} passes per chunk: pass a "
                                    f"smaller batch_size (--batch-size), or free the device") from None
            size //= 2
            warnings.warn(f"out of {device.type.upper()} memory: retrying with {size} passes per chunk",
                          RuntimeWarning, stacklevel=3)


def explain(model: torch.nn.Module, images, methods=None, preset: str = PAPER_PRESET, device=None, *,
            batch_size: int | None = None, precision: str = "fp32", cache: Store | None = None,
            **overrides) -> SaliencyMaps:
    """Saliency maps of ``images`` for ``model``, exactly as protocol.md section 2 defines them.

    Parameters
    ----------
    model : classifier returning logits (N, K). It is never modified (a copy is moved if ``device``
        differs from the model's device).
    images : (N, 3, H, W) or (3, H, W) model inputs in [-1, 1] (see ``trust_core.data.to_model_input``).
    methods : method keys (default: all eight, see ``trust_core.METHODS``).
    preset : 'arun2021' (the paper) or 'fast' (interactive; not the paper's values).
    device : where to compute (default: the model's device).
    batch_size : forward+backward passes per chunk (memory bound).
    precision : 'fp32' (default, exact: IEEE fp32 on GPUs too, where PyTorch would otherwise run
        convolutions in TF32), 'tf32' (CUDA tensor cores for float32), 'bf16' or 'fp16' autocast.
        Reduced precisions change the maps slightly: ``trust bench saliency`` reports their SSIM to fp32.
    cache : a :class:`~trust_core.cache.Store`; maps found there are not recomputed.
    **overrides : any preset parameter (``n_samples=50``, ``target=1``, ``gradcam_layer='layer3'``…).

    Returns
    -------
    SaliencyMaps (a dict ``method → (N, H, W)`` float32 array, plus provenance attributes).

    Raises
    ------
    SaliencyError, ConfigError
        Wrong image shape or values, unknown method/preset/parameter, missing Grad-CAM layer, target
        class out of range, unsupported precision.
    """
    methods = resolve_methods(methods)
    if info_of(model).target is not None and "target" not in overrides:  # a spec'd model's target class
        overrides["target"] = info_of(model).target
    params = resolve_params(preset, **overrides)
    if precision not in PRECISIONS:
        raise SaliencyError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model_device = next(model.parameters()).device
    device = torch.device(device) if device is not None else model_device
    if precision in ("fp16", "tf32") and device.type != "cuda":
        raise SaliencyError(f"{precision} is for CUDA devices; use fp32 (the exact default) on CPUs")
    problem = precision_problem(precision, device)
    if problem:
        raise SaliencyError(problem)
    x = _check_images(model, images)
    if device != model_device:
        model = copy.deepcopy(model).to(device)
    with frozen_eval(model):
        if params["target"] != "predicted":
            with torch.no_grad():
                n_classes = model(x[:1].to(device)).shape[1]
            if params["target"] >= n_classes:
                raise SaliencyError(f"target class {params['target']} is out of range: the model has "
                                    f"{n_classes} outputs")
        if {"gradcam", "guided_gradcam"} & set(methods):
            _resolve_layer(model, params)
        per_method = {m: method_params(m, params) for m in methods}
        noisy = any(METHODS[m].uses_noise for m in methods) and params["noise_per_model"]
        weights = weights_digest(model) if cache is not None or noisy else ""
        keys: dict[tuple[str, int], str] = {}
        found: dict[tuple[str, int], dict] = {}
        if cache is not None:
            keys = _map_keys(x, model_fingerprint(model, weights), per_method, precision)
            hits = cache.get_many(list(keys.values()))
            found = {k: hits[key] for k, key in keys.items() if key in hits}
        absent = [keys[k] for k in keys if k not in found]
        # Claim the missing entries (released however this ends); wait for those another process or
        # session is computing.
        with cache.computing(absent) if cache is not None else contextlib.nullcontext({}) as arrived:
            found.update({k: arrived[key] for k, key in keys.items() if key in arrived})
            return _fill(model, x, methods, params, per_method, found, keys, cache, device=device,
                         batch_size=batch_size, precision=precision, weights=weights)


def _map_keys(x: torch.Tensor, fingerprint: str, per_method: dict, precision: str) -> dict[tuple[str, int], str]:
    """The cache key of every (method, image): image content, model state, method parameters, precision
    and code version."""
    digests = [digest_array(x[i]) for i in range(x.shape[0])]
    return {(m, i): make_key(kind="map", image=digests[i], model=fingerprint, method=m, params=per_method[m],
                             precision=precision, code=CODE_VERSION)
            for m in per_method for i in range(x.shape[0])}


def _fill(model, x, methods, params, per_method, found, keys, cache, *, device, batch_size, precision,
          weights) -> SaliencyMaps:
    """The maps of every image: those ``found`` in the cache, the rest computed (and stored)."""
    n = x.shape[0]
    todo = sorted({i for m in methods for i in range(n) if (m, i) not in found})
    missing = [m for m in methods if any((m, i) not in found for i in todo)]
    maps = {m: np.full((n, *x.shape[2:]), np.nan, dtype=np.float32) for m in methods}
    flags = {m: [None] * n for m in methods}
    targets = np.full(n, -1, dtype=np.int64)
    stats: dict[str, list] = {m: [None] * n for m in methods if m == "xrai"}
    raw: dict[str, np.ndarray] = {}
    passes = 0
    for (m, i), entry in found.items():
        maps[m][i], flags[m][i], targets[i] = entry["map"], entry["flag"], entry["target"]
        if m in stats:
            stats[m][i] = entry.get("stats")
    if todo:
        sub = x[todo].to(device)
        with record_function("saliency.compute"):
            computed, sub_flags, sub_raw, sub_targets, passes, sub_stats = _compute_within_memory(
                compute_model(model, device, precision), sub, missing, params, device=device,
                batch_size=batch_size, precision=precision, model_key=weights)
        computed = {m: computed[m].cpu().numpy() for m in missing}  # one copy per method
        for j, i in enumerate(todo):
            targets[i] = int(sub_targets[j])
            for m in missing:
                maps[m][i] = computed[m][j]
                flags[m][i] = sub_flags[m][j]
                if m in stats:
                    stats[m][i] = sub_stats[m][j]
                if cache is not None and (m, i) not in found:
                    cache.set(keys[(m, i)], {"map": maps[m][i], "flag": flags[m][i],
                                             "target": targets[i], "params": per_method[m],
                                             "stats": stats[m][i] if m in stats else None})
        raw = {m: v.detach().cpu().numpy() for m, v in sub_raw.items() if m in methods}
    from_cache = {m: [(m, i) in found for i in range(n)] for m in methods}
    return SaliencyMaps(maps, flags=flags, raw=raw, params=params, method_params=per_method,
                        targets=targets, passes=passes, from_cache=from_cache, precision=precision,
                        stats=stats)
