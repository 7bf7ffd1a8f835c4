"""``trust bench scale``: does the paper's experiment fit a real-sized dataset? Memory, store, reruns, check.

On a tree of N films (a phantom RSNA tree built here, or ``--dataset KIND:PATH``) it runs a paper-shaped
evaluation — two replicates and another architecture, their cascading randomization, the four criteria —
at a small size, sampling the process's resident memory after every unit, and measures:

``rss_slope_mb_per_pair``
    the slope of resident memory against the image-model-state pairs done (least squares over the run after
    its first fifth, when the models and kernels are loaded): what each further pair costs in memory. Flat
    (≈0) when maps wait on disk (:mod:`~trust_core.evaluate.spool`); the maps of a pair otherwise.
``peak_rss_gb``
    the highest resident memory seen, scoring included.
``store_kb_per_map_320``
    the store's bytes per map (both forms, one method, image and model state) for 320² maps of the paper
    preset, in the default map storage (:mod:`~trust_core.cache.codec`).
``baseline_rerun_s``
    what the average-mask baseline costs a rerun: the screening of the train and validation films and the
    baseline itself, on a freshly opened dataset, once the first run stored it.
``check_films_per_s``
    ``trust check``'s speed on every core (films decoded and ground truth rendered per second).
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FAST_SCALE = dict(n_samples=2, smooth_ig_steps=2, ig_steps=3, xrai_steps=3)


def rss_bytes() -> int:
    """This process's resident memory (Linux ``/proc``; the peak from ``getrusage`` elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class _Sampler:
    """Resident memory every ``every`` seconds in a thread (the peak between progress calls)."""

    def __init__(self, every: float = 0.1):
        self.every, self.peak, self._stop = every, rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def fitted_slope(pairs: list[int], rss: list[int], skip: float = 0.2) -> float:
    """MB of resident memory per pair: least squares over the points after the first ``skip`` of the run."""
    x, y = np.asarray(pairs, float), np.asarray(rss, float) / 2**20
    keep = x >= skip * x.max() if x.size else np.zeros(0, bool)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def store_bytes_per_map(size: int = 320, *, model=None, films=None, storage: str | None = None,
                        log=print) -> float:
    """Mean stored bytes of one map (both forms) at ``size``² for the paper preset and its eight methods:
    ``model`` (default: an untrained densenet_tiny, whose noise-like gradients are the hard case for
    compression) run at ``size`` on 2 ``films`` ((N, 3, S, S) inputs; default: noise). Maps flagged as
    constant or not finite (a few bytes each) are left out of the mean."""
    import torch

    from .cache.codec import DEFAULT_MAP_STORAGE, stored_bytes
    from .cache.store import Store
    from .models.info import tag
    from .models.registry import build
    from .saliency import explain, resolve_methods

    model = tag(model if model is not None else build("densenet_tiny", num_classes=2).eval(), input_size=size)
    if films is None:  # white noise: the least compressible maps
        films = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    per_method: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp, map_storage=storage or DEFAULT_MAP_STORAGE)
        for method in resolve_methods(None):  # one method at a time: the entries each adds are its maps
            before = set(store._cache.iterkeys())
            explain(model, films, methods=[method], cache=store)
            entries = [store.get(key) for key in set(store._cache.iterkeys()) - before]
            per_method[method] = [e for e in entries if isinstance(e, dict) and "packed" in e]
        store.close()
    entries = [e for found in per_method.values() for e in found]
    sizes = [stored_bytes(e["packed"]) for e in entries if e["flag"] is None]
    codecs = sorted({e["packed"]["codec"] for e in entries if e["flag"] is None})
    log(f"store: {len(sizes)} maps of {size}² in {storage or DEFAULT_MAP_STORAGE} storage ({', '.join(codecs)}; "
        f"{len(entries) - len(sizes)} flagged left out): {np.mean(sizes) / 1024:.0f} KB each "
        f"(min {min(sizes) / 1024:.0f}, max {max(sizes) / 1024:.0f})")
    log("store, KB per map: " + ", ".join(
        f"{method} " + "/".join(f"{stored_bytes(e['packed']) / 1024:.0f}" + ("" if e["flag"] is None else " (flagged)")
                                for e in found)
        for method, found in per_method.items()))
    return float(np.mean(sizes))


def bench_scale(dataset: str | None = None, *, films: int = 400, size: int = 64, workers: int | None = None,
                log=print) -> dict:
    """Build (or open) a tree, run a paper-shaped evaluation on it and print the ``RESULT`` line."""
    import torch

    from .cache.store import Store
    from .data.check import check_films
    from .data.kaggle import RSNADataset
    from .data.kinds import open_dataset
    from .demo.films import build_phantom_dataset
    from .evaluate import EvalConfig, Evaluation
    from .saliency.registry import FAST_PRESET
    from .evaluate.baseline import average_mask, stored_baseline
    from .evaluate.films import screen_for_evaluation
    from .models import TrainConfig, train_classifier

    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if dataset is None:
            started = time.perf_counter()
            build_phantom_dataset(tmp / "rsna", "rsna", n_images=films, seed=0, workers=workers)
            log(f"built a phantom RSNA tree of {films} films (1024², DICOM) in {time.perf_counter() - started:.0f} s")

            def opened():
                return RSNADataset(tmp / "rsna", image_size=size, split_file=tmp / "splits.csv")
        else:
            def opened():
                return open_dataset(dataset, image_size=size)
        ds = opened()
        log(f"dataset: {ds.root} ({len(ds.ids())} films)")

        started = time.perf_counter()
        report = check_films(ds, workers=workers)
        check_rate = report.checked / (time.perf_counter() - started)
        log(f"check: {report.checked} films on {workers} worker(s): {check_rate:.0f} films/s, "
            f"{len(report.problems)} problem(s)")

        models = []
        for arch, seed in (("densenet_tiny", 0), ("densenet_tiny", 1), ("resnet_tiny", 0)):
            config = TrainConfig(arch=arch, seed=seed, epochs=1, batch_size=16, image_size=size)
            models.append(train_classifier(ds, config, tmp / f"{arch}_{seed}.pt").path)
        log(f"models: {len(models)} trained for one epoch at {size} px")

        ds = opened()
        started = time.perf_counter()  # the baseline on a first run: every train/val header, every mask
        ds.screen(ds.ids(split="train") + ds.ids(split="val"), films=False)
        average_mask(ds, size)
        baseline_first_s = time.perf_counter() - started
        ds = opened()
        screen_for_evaluation(ds)
        config = EvalConfig(preset=FAST_PRESET, overrides=FAST_SCALE, ssim_images=100, group=4)
        evaluation = Evaluation(ds, models, config, cache=Store(tmp / "store"))
        units = evaluation.units()
        total_pairs = sum(len(u.image_ids) for u in units)
        points: list[tuple[int, int]] = []
        done_pairs = [0]

        def progress(done, total, what):
            done_pairs[0] = sum(len(u.image_ids) for u in units[:done])
            points.append((done_pairs[0], rss_bytes()))

        log(f"evaluation: {len(units)} units, {total_pairs} image-model-state pairs at {size} px")
        started = time.perf_counter()
        with _Sampler() as sampler:
            evaluation.run(progress=progress)
        seconds = time.perf_counter() - started
        slope = fitted_slope([p for p, _ in points], [r for _, r in points])
        log(f"evaluation: {seconds:.0f} s; resident memory {points[0][1] / 2**30:.2f} → {points[-1][1] / 2**30:.2f} GB "
            f"over the run, peak {sampler.peak / 2**30:.2f} GB")

        rerun = opened()  # a rerun: the stored baseline and the films it left out, no header read
        started = time.perf_counter()
        found = stored_baseline(rerun, size)
        rerun.exclude({i: why for i, (why, _reason) in (found[1] if found else {}).items()})
        average_mask(rerun, size)
        baseline_s = time.perf_counter() - started
        log(f"average-mask baseline over {len(rerun.ids(split='train')) + len(rerun.ids(split='val'))} films: "
            f"{baseline_first_s:.2f} s on the first run, {baseline_s:.3f} s on a rerun"
            + ("" if found else " (not stored: the dataset folder is read-only)"))

        from .models.preprocessing import paper_preprocessing

        prep = paper_preprocessing(320, "stretch")
        from .models import load

        trained = load(models[0], num_classes=2)  # the run's first model (trained at its size) at 320
        per_map = store_bytes_per_map(320, model=trained, log=log,
                                      films=torch.stack([prep(rerun.image(i, 320)) for i in rerun.ids(label=1)[:2]]))

    result = {"rss_slope_mb_per_pair": slope, "peak_rss_gb": sampler.peak / 2**30,
              "store_kb_per_map_320": per_map / 1024, "baseline_rerun_s": baseline_s,
              "check_films_per_s": check_rate}
    log("RESULT " + " ".join(f"{k}={v:.3f}" if k != "check_films_per_s" else f"{k}={v:.0f}"
                             for k, v in result.items()))
    return result
