"""``explain``: the saliency maps of a batch of images, batched, shared, cached (:func:`cached_maps`: the same
from the cache alone)."""
from __future__ import annotations

import contextlib
import copy
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from torch.profiler import record_function

from ..cache.codec import DEFAULT_MAP_STORAGE, MAP_STORAGES, PREDICTED_FORM, decode_entries, pack
from ..cache.store import Store, digest_array, make_key, model_fingerprint, weights_digest
from ..errors import SaliencyError
from ..hardware import precision_problem
from ..models.info import info_of
from .device import PRECISIONS, compute_model, default_batch_size
from .engine import autocast, fp32_mode, frozen_eval, run_paths
from .methods import PAPER_SET, Plan
from .postprocess import NON_FINITE, minmax_maps, normalize_maps, unclipped_maps
from .maps import SaliencyMaps
from .registry import METHODS, PAPER_PRESET, method_params, resolve_methods, resolve_params

CODE_VERSION = "saliency-2"  # 2: Guided Grad-CAM min–max only, Grad-CAM upsampling rules, noise per model, XRAI post-processing
# (a method's own rule changes go into its key through ``Method.revision``; an entry without the unclipped map,
# written before the criteria read it, is recomputed and replaced)


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


def plan_order(methods) -> list[str]:
    """``methods`` with their dependencies, each after the methods it reuses (``after``, ``depends_on``),
    otherwise in registry order."""
    need = set(methods)
    for m in methods:
        need |= set(METHODS[m].depends_on)
    ordered: list[str] = []

    def visit(key, trail=()):
        if key in ordered:
            return
        if key in trail:
            raise SaliencyError(f"saliency methods {list(trail)} depend on each other in a cycle")
        for before in METHODS[key].after + METHODS[key].depends_on:
            if before in need:
                visit(before, trail + (key,))
        ordered.append(key)

    for key in sorted(need, key=list(METHODS).index):
        visit(key)
    return ordered


def _plugin_call(method, part: str, fn, *args):
    """A method's plan/assemble/combine call; anything it raises becomes a SaliencyError naming it."""
    try:
        return fn(*args)
    except (SaliencyError, torch.OutOfMemoryError):
        raise
    except Exception as error:
        raise SaliencyError(f"saliency method {method.key!r} ({method.source}) failed in its {part} part: "
                            f"{type(error).__name__}: {error}") from error


def _check_raw(method, raw, x: torch.Tensor) -> torch.Tensor:
    """A method's raw attribution must be (N, C, H, W) like the images or a 2-D map per image (N, H, W)."""
    n, c, h, w = x.shape
    if not isinstance(raw, torch.Tensor) or tuple(raw.shape) not in ((n, c, h, w), (n, h, w)):
        shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
        raise SaliencyError(f"saliency method {method.key!r} ({method.source}) returned {shape}; a method must "
                            f"return ({n}, {c}, {h}, {w}) attributions or ({n}, {h}, {w}) maps for {n} images "
                            f"of {c}×{h}×{w}")
    return raw


class Computed(NamedTuple):
    maps: dict  # method → (N, H, W) normalized maps
    unclipped: dict  # method → (N, H, W) maps before the percentile clip (|a| / max |a|), NaN where flagged
    flags: dict  # method → per-image reason or None
    raw: dict  # method → raw attributions
    targets: torch.Tensor  # (N,) explained class
    passes: int  # forward+backward passes
    stats: dict  # method → per-image diagnostics
    forwards: int  # forward-only passes (occlusion, Score-CAM)
    upsampled_from: dict  # method → (N, h, w) map its raw map upsamples (``Method.upsampled_from``)


def compute(model, x: torch.Tensor, methods: list[str], params: dict, *, device: torch.device,
            batch_size: int, precision: str, model_key: str = "") -> Computed:
    """Compute maps for all images of ``x`` (already on ``device``); no cache. Every method plans its points
    on one shared engine (in :func:`plan_order`), the engine runs them once, and each method assembles
    its raw attribution. ``model_key`` seeds the noise with the model state (see ``methods.base.noise``)."""
    order = plan_order(methods)
    # CPU work that depends on the images alone runs beside the passes on a GPU: the noisy copies (drawn
    # on the CPU, so that the maps do not depend on the device) and XRAI's segmentation.
    pool = ThreadPoolExecutor(2, thread_name_prefix="saliency-cpu") if device.type == "cuda" else None
    run = Plan(model, x, params, device=device, precision=precision, batch_size=batch_size, model_key=model_key,
               pool=pool)
    if any(METHODS[m].needs_layer for m in order):
        run.layer = _resolve_layer(model, params)
    run.keep_layer = any(METHODS[m].keeps_layer for m in order)
    if any(METHODS[m].plain for m in order):
        run.use_plain()  # first: the plain points fix the targets
    try:
        return _planned_run(run, order, model, x, params, device=device, batch_size=batch_size, precision=precision)
    finally:
        if pool is not None:
            pool.shutdown(wait=False)


def _planned_run(run, order, model, x, params, *, device, batch_size, precision) -> Computed:
    """Plan every method on ``run``, run the engine once, assemble and post-process."""
    n = x.shape[0]
    for key in order:
        method = METHODS[key]
        if method.plan is not None:
            before = len(run.paths.image)
            run.planned[key] = _plugin_call(method, "plan", method.plan, run)
            if method.group != PAPER_SET:  # run after the paper's points, in chunks of their own: the
                run.paths.mark_late(before)  # paper's chunks (and so their maps) are the same with or without

    targets = None
    if params["target"] != "predicted":
        targets = torch.full((n,), int(params["target"]), dtype=torch.long)
    elif not run.plain:
        with torch.no_grad(), fp32_mode(device, precision), autocast(device, precision):
            targets = model(x).float().argmax(1)
    with record_function("saliency.passes"):
        out = run_paths(model, x, run.paths, n_images=n, targets=targets, device=device, batch_size=batch_size,
                        precision=precision, gradcam_layer=run.layer,
                        gradcam_interpolation=params["gradcam_interpolation"], bank_extra=run.noisy,
                        keep_layer=run.keep_layer)
    run.targets = out.targets

    raw: dict[str, torch.Tensor] = {}
    for key in order:
        method = METHODS[key]
        if method.assemble is not None:
            with record_function(f"saliency.assemble.{key}"):
                raw[key] = _check_raw(method, _plugin_call(method, "assemble", method.assemble, run, out,
                                                           run.planned.get(key)), x)
    out.bank = None

    with record_function("saliency.normalize"):
        result_maps, flags, unclipped = {}, {}, {}
        for key in sorted(order, key=list(METHODS).index):
            method = METHODS[key]
            if method.assemble is None:
                continue
            rule = method.postprocess_rule(params)
            result_maps[key], flags[key] = (minmax_maps(raw[key]) if rule == "minmax"
                                            else normalize_maps(raw[key], params["percentile"]))
            unclipped[key] = result_maps[key] if rule == "minmax" else _flagged(unclipped_maps(raw[key]), flags[key])
            if method.group != PAPER_SET:  # name the method whose numbers are not finite
                flags[key] = [f"{f} from method {key!r}" if f == NON_FINITE else f for f in flags[key]]
        for key in order:  # methods built from normalized maps (Guided Grad-CAM)
            method = METHODS[key]
            if method.combine is not None:
                raw[key], result_maps[key], flags[key] = _plugin_call(method, "combine", method.combine, run,
                                                                      result_maps, flags)
                unclipped[key] = result_maps[key]  # combined maps are min–max only
    stats = {key: METHODS[key].stats(raw[key]) for key in order if METHODS[key].stats is not None}
    coarse = {}
    for key in order:
        method = METHODS[key]
        if method.upsampled_from is not None and method.assemble is not None:
            try:  # a hint only: a method whose hint fails keeps its maps in the other forms
                found = _plugin_call(method, "upsampled_from", method.upsampled_from, run, out, run.planned.get(key))
            except SaliencyError as error:
                warnings.warn(str(error), RuntimeWarning, stacklevel=2)
                continue
            if isinstance(found, torch.Tensor) and found.dim() == 3 and found.shape[0] == n and found.numel() > 0:
                coarse[key] = found.detach().float()
    return Computed(result_maps, unclipped, flags, raw, out.targets.cpu(), out.passes + run.passes, stats,
                    run.forwards, coarse)


def _flagged(maps: torch.Tensor, reasons) -> torch.Tensor:
    """``maps`` with NaN where the clipped map is flagged: a flag covers both forms of an image's map."""
    bad = torch.tensor([r is not None for r in reasons], device=maps.device)
    return torch.where(bad[:, None, None], torch.full_like(maps, float("nan")), maps)


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
            map_storage: str | None = None, **overrides) -> SaliencyMaps:
    """Saliency maps of ``images`` for ``model``, exactly as protocol.md section 2 defines them.

    Parameters
    ----------
    model : classifier returning logits (N, K). It is never modified (a copy is moved if ``device``
        differs from the model's device).
    images : (N, 3, H, W) or (3, H, W) model inputs in [-1, 1] (see ``trust_core.data.to_model_input``).
    methods : method keys or a set name (default: the paper's eight; see ``trust_core.METHODS``).
    preset : 'arun2021' (the paper) or 'fast' (interactive; not the paper's values).
    device : where to compute (default: the model's device).
    batch_size : forward+backward passes per chunk (memory bound).
    precision : 'fp32' (default, exact: IEEE fp32 on GPUs too, where PyTorch would otherwise run
        convolutions in TF32), 'tf32' (CUDA tensor cores for float32), 'bf16' or 'fp16' autocast.
        Reduced precisions change the maps slightly: ``trust bench saliency`` reports their SSIM to fp32.
    cache : a :class:`~trust_core.cache.Store`; maps found there are not recomputed.
    map_storage : the form the maps are kept in (:mod:`trust_core.cache.codec`): 'compact' (exact up to
        120 KB a map, half precision beyond) or 'exact'. Default: the cache's (its ``map_storage``), else the maps as computed. Given
        or taken from the cache, the maps returned are those the store gives back, computed now or read.
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
        if any(METHODS[m].needs_layer for m in methods):
            _resolve_layer(model, params)
        per_method, weights, storage, keys, found = _lookup(model, x, methods, params, precision, cache, map_storage)
        absent = [keys[k] for k in keys if k not in found]
        # Claim the missing entries (released however this ends); wait for those another process or
        # session is computing.
        with cache.computing(absent) if cache is not None else contextlib.nullcontext({}) as arrived:
            found.update({k: arrived[key] for k, key in keys.items() if key in arrived and "packed" in arrived[key]})
            return _fill(model, x, methods, params, per_method, found, keys, cache, device=device,
                         batch_size=batch_size, precision=precision, weights=weights, storage=storage)


def _lookup(model, x, methods, params, precision, cache, map_storage):
    """What :func:`explain` reads before it computes: each method's parameters, the weights' digest (it seeds
    the noise), the storage, each (method, image)'s cache key and the entries the cache holds. It reads the
    model's weights and layer names only: no forward pass, no hook, no mode switch."""
    per_method = {m: method_params(m, params) for m in methods}
    noisy = any(METHODS[m].uses_noise for m in methods) and params["noise_per_model"]
    weights = weights_digest(model) if cache is not None or noisy else ""
    storage = map_storage or (cache.map_storage if cache is not None else None)
    if storage is not None and storage not in MAP_STORAGES:
        raise SaliencyError(f"map_storage must be one of {MAP_STORAGES}, got {storage!r}")
    keys: dict[tuple[str, int], str] = {}
    found: dict[tuple[str, int], dict] = {}
    if cache is not None:
        keys = _map_keys(x, model_fingerprint(model, weights), per_method, precision, storage)
        hits = cache.get_many(list(keys.values()))
        found = {k: hits[key] for k, key in keys.items() if key in hits and "packed" in hits[key]}
    return per_method, weights, storage, keys, found


def cached_maps(model: torch.nn.Module, images, methods=None, preset: str = PAPER_PRESET, *, cache: Store,
                precision: str = "fp32", map_storage: str | None = None, **overrides) -> SaliencyMaps | None:
    """The maps :func:`explain` would give when ``cache`` holds every one of them, else None — read without
    running, hooking or switching the model, so that one app session reads the cache while another computes
    on the same model (the app answers from here before it queues for a computation). A Grad-CAM layer the
    model lacks, or a target class out of range, is left to :func:`explain` to report."""
    methods = resolve_methods(methods)
    if info_of(model).target is not None and "target" not in overrides:
        overrides["target"] = info_of(model).target
    params = resolve_params(preset, **overrides)
    if precision not in PRECISIONS:
        raise SaliencyError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    x = _check_images(model, images)
    per_method, weights, storage, keys, found = _lookup(model, x, methods, params, precision, cache, map_storage)
    decoded = decode_entries(found)
    if len(found) < len(keys) or not keys:
        return None
    device = next(model.parameters()).device
    return _fill(model, x, methods, params, per_method, found, keys, cache, device=device, batch_size=None,
                 precision=precision, weights=weights, storage=storage, decoded=decoded)


def _map_keys(x: torch.Tensor, fingerprint: str, per_method: dict, precision: str,
              storage: str | None = None) -> dict[tuple[str, int], str]:
    """The cache key of every (method, image): image content, model state, method parameters, precision,
    the form the map is kept in (named only when it is not the default: compact keys are those the store
    always had, whose entries of the former raw format are recomputed, never read; maps that may be kept as
    the coarse map they upsample add that form's name: code written before it cannot read it, and must not find
    it) and code version."""
    digests = [digest_array(x[i]) for i in range(x.shape[0])]
    kept = {} if (storage or DEFAULT_MAP_STORAGE) == DEFAULT_MAP_STORAGE else {"storage": storage}
    form = {m: {"form": PREDICTED_FORM["name"]} if _keeps_coarse(m, per_method[m], storage) else {} for m in per_method}
    return {(m, i): make_key(kind="map", image=digests[i], model=fingerprint, method=m, params=per_method[m],
                             precision=precision, code=CODE_VERSION, **kept, **form[m],
                             **({"revision": METHODS[m].revision} if METHODS[m].revision else {}))
            for m in per_method for i in range(x.shape[0])}


def _keeps_coarse(method: str, params: dict, storage: str | None) -> bool:
    """Whether ``method``'s maps may be kept as the coarse map they upsample (:mod:`trust_core.cache.codec`):
    compact storage, a method that gives its coarse map, an upsampling rule the codec repeats."""
    return ((storage or DEFAULT_MAP_STORAGE) == "compact" and METHODS[method].upsampled_from is not None
            and params.get("gradcam_interpolation") in PREDICTED_FORM["rules"])


def _fill(model, x, methods, params, per_method, found, keys, cache, *, device, batch_size, precision,
          weights, storage, decoded: dict | None = None) -> SaliencyMaps:
    """The maps of every image: those ``found`` in the cache (``decoded``: already decoded), the rest computed
    (and stored)."""
    n = x.shape[0]
    decoded = decode_entries(found) if decoded is None else decoded
    todo = sorted({i for m in methods for i in range(n) if (m, i) not in found})
    missing = [m for m in methods if any((m, i) not in found for i in todo)]
    maps = {m: np.full((n, *x.shape[2:]), np.nan, dtype=np.float32) for m in methods}
    unclipped = {m: np.full((n, *x.shape[2:]), np.nan, dtype=np.float32) for m in methods}
    flags = {m: [None] * n for m in methods}
    kept = {m: [None] * n for m in methods}
    targets = np.full(n, -1, dtype=np.int64)
    stats: dict[str, list] = {m: [None] * n for m in methods if METHODS[m].stats is not None}
    raw: dict[str, np.ndarray] = {}
    passes = forwards = 0
    for (m, i), entry in found.items():
        (maps[m][i], unclipped[m][i]), flags[m][i], targets[i] = decoded[m, i], entry["flag"], entry["target"]
        kept[m][i] = entry["packed"]["codec"]
        if m in stats:
            stats[m][i] = entry.get("stats")
    if todo:
        sub = x[todo].to(device)
        with record_function("saliency.compute"):
            done = _compute_within_memory(compute_model(model, device, precision), sub, missing, params,
                                          device=device, batch_size=batch_size, precision=precision,
                                          model_key=weights)
        computed, sub_flags, sub_raw, sub_targets, sub_stats = done.maps, done.flags, done.raw, done.targets, done.stats
        passes, forwards = done.passes, done.forwards
        computed = {m: computed[m].cpu().numpy() for m in missing}  # one copy per method
        sub_unclipped = {m: (computed[m] if done.unclipped[m] is done.maps[m] else done.unclipped[m].cpu().numpy())
                         for m in missing}
        coarse = {m: done.upsampled_from[m].cpu().numpy() for m in missing if m in done.upsampled_from}
        for j, i in enumerate(todo):
            targets[i] = int(sub_targets[j])
            for m in missing:
                if (m, i) in found:
                    continue
                same = sub_unclipped[m] is computed[m]  # min–max-only methods: one array
                flags[m][i] = sub_flags[m][j]
                if m in stats:
                    stats[m][i] = sub_stats[m][j]
                if storage is None:
                    maps[m][i], unclipped[m][i] = computed[m][j], sub_unclipped[m][j]
                    continue
                # the maps as the store keeps them, whether stored now or read back later
                packed, (maps[m][i], unclipped[m][i]) = pack(
                    computed[m][j], None if same else sub_unclipped[m][j], storage=storage,
                    percentile=params["percentile"],
                    upsampled=((per_method[m]["gradcam_interpolation"], coarse[m][j])
                               if m in coarse and _keeps_coarse(m, per_method[m], storage) else None))
                kept[m][i] = packed["codec"]
                if cache is not None:
                    cache.set(keys[(m, i)], {"packed": packed, "flag": flags[m][i], "target": targets[i],
                                             "params": per_method[m], "stats": stats[m][i] if m in stats else None})
        raw = {m: v.detach().cpu().numpy() for m, v in sub_raw.items() if m in methods}
    from_cache = {m: [(m, i) in found for i in range(n)] for m in methods}
    return SaliencyMaps(maps, flags=flags, raw=raw, params=params, method_params=per_method,
                        targets=targets, passes=passes, from_cache=from_cache, precision=precision,
                        stats=stats, forwards=forwards, unclipped=unclipped, kept=kept)


def predicted_classes(model: torch.nn.Module, images, *, device=None, precision: str = "fp32") -> torch.Tensor:
    """(N,) the class ``model`` predicts for each image (argmax of its logits), computed as :func:`explain`
    computes its targets (the same compute copy, precision and autocast)."""
    x = _check_images(model, images)
    model_device = next(model.parameters()).device
    device = torch.device(device) if device is not None else model_device
    if device != model_device:
        model = copy.deepcopy(model).to(device)
    with frozen_eval(model), torch.no_grad(), fp32_mode(device, precision), autocast(device, precision):
        return compute_model(model, device, precision)(x.to(device)).float().argmax(1).cpu()
