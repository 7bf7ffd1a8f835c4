"""A workspace — datasets, models, evaluation results and the map cache — as one object for UIs.

The app, the reports and the CLI read through this (pages stay thin): every map comes from
:func:`trust_core.explain` through the workspace's cache, so browsing after an evaluation is instant.
"""
from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .cache.store import Store
from .data.kinds import DATASETS as DATASET_CLASSES, MULTI_FINDING
from .data.groundtruth import DEFAULT_MASK_RULE
from .layout import Layout, read_index, table_path, workspace_models, workspace_path
from .errors import ConfigError
from .evaluate.outputs import read_config, read_summary
from .models.checkpoint import load
from .models.info import activated, info_of
from .randomization.cascade import StateModels, model_seed, states
from .saliency import explain, explain_for_classes, predicted_classes
from .saliency.registry import FAST_PRESET


GALLERY_ORDERS = {"worst AUPRC first": ("mean AUPRC", True), "most disagreement first": ("disagreement", False),
                  "least SSIM drop first": ("SSIM after randomization", False)}  # order → (column, ascending)


NEGATIVE_NAMES = ("no finding", "normal", "negative", "healthy", "absent")


class Workspace:
    """Read access to a workspace folder (the layout ``trust demo`` writes)."""

    def __init__(self, root: str | Path | None = None):
        self.root = workspace_path(root)
        self.layout = Layout(self.root)
        self.store = Store(self.layout.store, map_storage=self._map_storage())
        self._datasets: dict[str, object] = {}
        self._lock = threading.Lock()
        self._typical: dict = {}  # (model, dataset, n) → the training films' histogram statistics
        self._typical_lock = threading.Lock()

    def _map_storage(self) -> str:
        """The storage the workspace's evaluations kept their maps in (``summary.json``'s ``map_storage``), so
        that the app reads the very maps they scored: 'exact' when every result says so, else the default."""
        import json

        from .cache.codec import DEFAULT_MAP_STORAGE

        said = set()
        for summary in self.layout.summaries():
            try:
                said.add(json.loads(summary.read_text()).get("map_storage", DEFAULT_MAP_STORAGE))
            except (OSError, ValueError, AttributeError):
                continue
        return said.pop() if len(said) == 1 else DEFAULT_MAP_STORAGE

    # -- contents ------------------------------------------------------------------------------------
    @property
    def kinds(self) -> list[str]:
        return [k for k in DATASET_CLASSES if self.layout.dataset(k).is_dir()]

    def findings(self, kind: str) -> list[str]:
        """The findings a multi-finding dataset of the workspace localizes (empty for the other kinds);
        the one its results were computed for first."""
        if kind not in MULTI_FINDING or not self.layout.dataset(kind).is_dir():
            return []
        found = DATASET_CLASSES[kind].available(self.layout.dataset(kind))
        recorded = (self.results_config(kind) or {}).get("dataset", {}).get("finding")
        return ([recorded] if recorded in found else []) + [f for f in found if f != recorded]

    def dataset(self, kind: str, *, classes=None, mask_rule: str | None = None, finding: str | None = None):
        """A dataset of the workspace. Without options, the selection its results were computed with
        (RSNA classes, ground-truth rule, finding; the paper's defaults when there are no results), so
        that the pages show the images the scorecard counted."""
        if kind not in DATASET_CLASSES:
            raise ConfigError(f"unknown dataset kind {kind!r}")
        recorded = (self.results_config(kind) or {}).get("dataset", {})
        kept = DATASET_CLASSES[kind].selection_kwargs(recorded)  # the selection the results were computed with
        chosen = classes is not None or mask_rule is not None  # the caller's own (the Runs page)
        options = {"mask_rule": mask_rule or (None if chosen else recorded.get("mask_rule")) or DEFAULT_MASK_RULE}
        if "classes" in DATASET_CLASSES[kind].SELECTION_ARGS:
            options["classes"] = (kept["classes"] if not chosen and "classes" in kept
                                  else None if classes == "all" else classes or "paper")
        if kind in MULTI_FINDING:
            options["finding"] = finding or (self.findings(kind) or [None])[0]
            if options["finding"] == kept.get("finding"):  # its negatives and reader rules go with that finding
                options.update({key: value for key, value in kept.items() if key != "finding" and value})
        key = (kind, json.dumps(options, sort_keys=True, default=list))
        if key not in self._datasets:
            self._datasets[key] = DATASET_CLASSES[kind](self.layout.dataset(kind), image_size=128, **options)
        return self._datasets[key]

    def index(self) -> list[dict]:
        return read_index(self.root)

    def classifiers(self, kind: str) -> list[str]:
        """The dataset's classifiers of the model index, then the model specs (``models/*.toml``, any
        architecture: README 'Bring your own model'), which serve every dataset."""
        specs = sorted(p.name for p in self.layout.models.glob("*.toml")) if self.layout.models.is_dir() else []
        return [p.name for p in workspace_models(self.root, kind)[0]] + specs

    def add_model(self, name: str, table: dict, *, weights: bytes | None = None,
                  weights_name: str | None = None) -> Path:
        """Add a model spec (and its weights) to ``models/``, checked before anything is written."""
        from .models.spec import add_model

        return add_model(self.layout.models, name, table, weights=weights, weights_name=weights_name)

    def localizers(self, kind: str) -> list[str]:
        return [p.name for p in workspace_models(self.root, kind)[1]]

    def results(self, kind: str, finding: str | None = None) -> dict | None:
        """The dataset's evaluation summary; for a multi-finding dataset only when it is ``finding``'s
        (None when the results were computed for another finding)."""
        summary = self._summary(kind)
        if summary is not None and finding is not None and summary.get("dataset", {}).get("finding") not in (None, finding):
            return None
        return summary

    def analysis(self, kind: str, *, compute: bool = False) -> dict | None:
        """The failure analysis of the dataset's results (``trust analyze``): as stored beside them, or
        computed and stored now when ``compute`` (seconds: it reads the tables and the ground truth)."""
        from .analysis import analyze, read_analysis, write_analysis

        folder = self.layout.results(kind)
        stored = read_analysis(folder)
        if stored is not None or not compute or read_summary(folder) is None:
            return stored
        result = analyze(folder, **self.analysis_sources(kind))
        write_analysis(result, folder)
        return result.summary

    def analysis_sources(self, kind: str) -> dict:
        """Where this workspace keeps the evaluated dataset and main model (``analyze``'s overrides), so that
        an analysis works from any working folder: the results record the paths the evaluation was given."""
        config = self.results_config(kind) or {}
        sources = {}
        if self.layout.dataset(kind).is_dir():
            sources["dataset"] = f"{kind}:{self.layout.dataset(kind)}"
        models = config.get("models") or [{}]
        if not models[0].get("spec") and models[0].get("path"):
            here = self.layout.models / Path(str(models[0]["path"])).name
            if here.is_file():
                sources["model"] = str(here)
        return sources

    def results_finding(self, kind: str) -> str | None:
        """The finding the dataset's stored results are for (multi-finding datasets), else None."""
        return ((self._summary(kind) or {}).get("dataset") or {}).get("finding")

    def _summary(self, kind: str) -> dict | None:
        return read_summary(self.layout.results(kind))

    def results_config(self, kind: str) -> dict | None:
        return read_config(self.layout.results(kind))

    def table(self, kind: str, name: str) -> pd.DataFrame | None:
        path = table_path(self.layout.results(kind), name)
        return pd.read_parquet(path) if path.is_file() else None

    def results_model_index(self, kind: str, model_name: str) -> int | None:
        """Where ``model_name`` (a file of this workspace's models) stands among the models the dataset's
        stored evaluation ran (0: the main model, whose maps the criteria score), or None if it did not run:
        by its weights' digest, which the evaluation recorded (a file `workspace init` renamed — a second
        ``best.pt`` is ``best_2.pt`` — is found too); by file name where a run recorded no digest."""
        models = (self.results_config(kind) or {}).get("models") or []
        digests = [m.get("weights_digest") for m in models]
        if any(digests):
            try:
                path, mtime = self._model_file(model_name)
                mine = _digest_of(path, mtime)
            except Exception:  # not loadable here (a spec whose source is missing…): by name
                mine = None
            if mine in digests:
                return digests.index(mine)
        names = [Path(str(m.get("path") or "")).name for m in models]
        return names.index(model_name) if model_name in names and not digests[names.index(model_name)] else None

    def gallery(self, kind: str, order: str = "worst AUPRC first", finding: str | None = None,
                model: str | None = None) -> pd.DataFrame | None:
        """Per image of the evaluation: AUPRC per method (in the registry's order), their mean and spread
        (method disagreement) and the SSIM at the last randomization state, sorted by one of
        :data:`GALLERY_ORDERS`; the main model's, or ``model``'s where the evaluation ran it (its original
        maps on the utility images, ``utility_by_model``; the SSIM of its own last state where it
        was randomized). None without utility results, or for a model the evaluation did not run."""
        from .saliency import METHODS

        if order not in GALLERY_ORDERS:
            raise ConfigError(f"unknown gallery order {order!r}; choose one of {list(GALLERY_ORDERS)}")
        if finding is not None and self.results_finding(kind) not in (None, finding):
            return None  # the stored results are another finding's
        index = 0 if model is None else self.results_model_index(kind, model)
        if index is None:
            return None
        utility, randomization = self.table(kind, "utility"), self.table(kind, "randomization")
        if index:
            by_model = self.table(kind, "utility_by_model")
            utility = None if by_model is None else by_model[(by_model.model == index) & (by_model.state == "original")]
        if utility is None or not len(utility):
            return None
        gallery = utility.pivot_table(index="image_id", columns="method", values="auprc")
        gallery = gallery[sorted(gallery.columns, key=lambda m: (list(METHODS).index(m) if m in METHODS else len(METHODS), m))]
        gallery["mean AUPRC"] = gallery.mean(axis=1)
        gallery["disagreement"] = gallery.drop(columns="mean AUPRC").std(axis=1)
        if randomization is not None and len(randomization):
            if "model" in randomization:  # this model's own cascade (none for a model that was not randomized)
                randomization = randomization[randomization.model == index]
            if len(randomization):
                last = randomization[randomization.state_index == randomization.state_index.max()]
                gallery["SSIM after randomization"] = last.groupby("image_id").ssim.mean()
        key, ascending = GALLERY_ORDERS[order]
        return gallery.sort_values(key, ascending=ascending) if key in gallery else gallery

    # -- models and maps -----------------------------------------------------------------------------
    def model(self, name: str) -> torch.nn.Module:
        return _load_cached(str(self.layout.model(name)))

    def _model_file(self, name: str) -> tuple[str, float]:
        """A model's file and its modification time (a replaced file is loaded anew)."""
        path = self.layout.model(name)
        return str(path), path.stat().st_mtime

    def state_names(self, name: str) -> list[str]:
        return [s.name for s in states(self.model(name))]

    def state_model(self, name: str, state: str) -> torch.nn.Module:
        """A randomized copy of a model (the shared model is never mutated)."""
        if state == "original":
            return self.model(name)
        return _states(str(self.layout.model(name))).get(state)

    def prediction(self, kind: str, image_id: str, model_name: str, *, finding: str | None = None) -> dict:
        """The model's output for a dataset film: activated scores (softmax, sigmoid; raw for logits heads),
        the predicted class and the head's activation."""
        model = self.model(model_name)
        info = info_of(model)
        prep = info.prep
        x = prep(self.dataset(kind, finding=finding).image(image_id, prep.size, prep.resize))[None]
        # its own copy of the model: a prediction never waits for (nor disturbs) a computation hooking the
        # shared model's layers in another session
        predictor, lock = _predictor(*self._model_file(model_name))
        with lock, torch.no_grad():
            logits = predictor(x.to(next(predictor.parameters()).device)).float()[0].cpu()
        return _scored(logits, info.activation)

    def negative_class(self, name: str, n_classes: int, activation: str) -> int | None:
        """The class that says 'nothing here' (its maps argue against the finding): of a softmax head, the
        one named no finding / normal / negative / healthy / absent / 'no …'; None when there is none."""
        if activation != "softmax":
            return None
        for index in range(n_classes):
            label = self.class_name(name, index).strip().lower()
            if label in NEGATIVE_NAMES or label.startswith("no "):
                return index
        return None

    def class_name(self, name: str, index: int) -> str:
        """An output's name for this model (its spec's classes; the binary datasets' 'no finding' /
        'finding' for the demo's 2-way heads)."""
        info = info_of(self.model(name))
        if info.classes:
            return info.class_name(index)
        if info.activation == "softmax" and index in (0, 1):
            return ("no finding", "finding")[index]
        return info.class_name(index)

    def framing(self, name: str) -> str:
        """The model's resize rule ('stretch' or 'center_crop'): how pages frame the film and its ground
        truth under its maps."""
        return info_of(self.model(name)).prep.resize

    def input_size(self, name: str) -> int:
        return info_of(self.model(name)).size

    def maps(self, kind: str, image_ids: list[str], model_name: str, *, methods=None, preset: str = FAST_PRESET,
             state: str = "original", finding: str | None = None, **overrides):
        """Saliency maps (``SaliencyMaps``) of dataset images, through the workspace cache. A randomized state
        explains the class the trained model explains for each image, as the evaluation does by default
        (``randomization_class='original'``); ``target=`` or a spec'd target class fixes it for every state."""
        model = self.state_model(model_name, state)
        prep = info_of(model).prep
        dataset = self.dataset(kind, finding=finding)
        x = torch.stack([prep(dataset.image(i, prep.size, prep.resize)) for i in image_ids])
        pinned = state != "original" and "target" not in overrides and info_of(model).target is None
        # maps the cache holds are read at once, not behind another session's computation; a randomized state's
        # class (the trained model's prediction) comes from the prediction copy, which no computation hooks
        from .saliency.explain import cached_maps

        classes = None
        if pinned:
            predictor, lock = _predictor(*self._model_file(model_name))
            with lock:
                classes = predicted_classes(predictor, x, precision=overrides.get("precision", "fp32"))
            hit = explain_for_classes(model, x, classes, methods=methods, preset=preset, cache=self.store,
                                      runner=cached_maps, **overrides)
        else:
            hit = cached_maps(model, x, methods=methods, preset=preset, cache=self.store, **overrides)
        if hit is not None:
            return hit
        with self._lock:  # one computation at a time per workspace (app sessions share it)
            if pinned:
                return explain_for_classes(model, x, classes, methods=methods, preset=preset, cache=self.store,
                                           **overrides)
            return explain(model, x, methods=methods, preset=preset, cache=self.store, **overrides)

    def maps_for_image(self, image01: np.ndarray, model_name: str, *, methods=None, preset: str = FAST_PRESET,
                       **overrides):
        """Maps of an arbitrary grayscale image in [0, 1] (an upload), resized to the model input."""
        from .saliency.explain import cached_maps

        model = self.model(model_name)
        prep = info_of(model).prep
        x = prep(prep.film(image01))[None]
        hit = cached_maps(model, x, methods=methods, preset=preset, cache=self.store, **overrides)
        if hit is not None:  # (an upload seen before: read at once)
            return hit
        with self._lock:
            return explain(model, x, methods=methods, preset=preset, cache=self.store, **overrides)

    def prediction_for_image(self, image01: np.ndarray, model_name: str) -> dict:
        """:meth:`prediction` of an arbitrary grayscale image in [0, 1] (an upload)."""
        model = self.model(model_name)
        info = info_of(model)
        x = info.prep(info.prep.film(image01))[None]
        predictor, lock = _predictor(*self._model_file(model_name))  # (see prediction)
        with lock, torch.no_grad():
            logits = predictor(x.to(next(predictor.parameters()).device)).float()[0].cpu()
        return _scored(logits, info.activation)

    def typicality(self, image01: np.ndarray, model_name: str, *, reference: int = 48) -> dict | None:
        """How unlike the model's training films an image is: the Jensen–Shannon distance of its intensity
        histogram (64 bins, at the model's input, framed as the model sees it) to the mean histogram of
        ``reference`` training films, against the largest distance of those films themselves. ``None`` when
        the model's training data are not in this workspace (a model brought from elsewhere)."""
        from scipy.spatial.distance import jensenshannon

        model = self.model(model_name)
        kind = info_of(model).meta.get("dataset_kind")
        if kind not in self.kinds:
            return None
        key = (model_name, kind, reference)
        with self._typical_lock:  # its own lock: reading the films must not stall the maps of other sessions
            if key not in self._typical:
                prep = info_of(model).prep
                dataset = self.dataset(kind)
                ids = dataset.ids(split="train")[:reference]
                if len(ids) < 2:
                    return None
                hists = np.stack([_histogram(dataset.image(i, prep.size, prep.resize)) for i in ids])
                mean = hists.mean(0)
                spread = [float(jensenshannon(h, mean)) for h in hists]
                self._typical[key] = (mean, max(spread), float(np.median(spread)), len(ids))
        mean, largest, median, count = self._typical[key]
        prep = info_of(model).prep
        distance = float(jensenshannon(_histogram(prep.film(image01)), mean))
        return {"distance": distance, "largest_training": largest, "median_training": median, "films": count,
                "dataset": kind, "unlike": distance > largest}


def _scored(logits: torch.Tensor, activation: str) -> dict:
    """A head's activated scores (softmax, sigmoid; raw for logits heads), the predicted class, the activation."""
    scores = activated(logits, activation)
    return {"scores": scores.tolist(), "predicted": int(logits.argmax()), "activation": activation}


def _histogram(film: np.ndarray) -> np.ndarray:
    """Normalized 64-bin intensity histogram of a [0, 1] film."""
    counts, _ = np.histogram(np.clip(np.asarray(film, dtype=np.float64), 0, 1), bins=64, range=(0.0, 1.0))
    return counts / max(1, counts.sum())


@lru_cache(maxsize=16)
def _load_cached(path: str) -> torch.nn.Module:
    return load(path, num_classes=2)  # the datasets are binary


@lru_cache(maxsize=32)
def _digest_of(path: str, mtime: float) -> str:
    """The weights digest of a model file (as the evaluation records it), once per file version."""
    from .cache.store import weights_digest

    return weights_digest(load(path, num_classes=None))


@lru_cache(maxsize=8)
def _states(path: str) -> StateModels:
    base = _load_cached(path)
    return StateModels(base, seed=model_seed(base))


@lru_cache(maxsize=16)
def _predictor(path: str, mtime: float) -> tuple[torch.nn.Module, threading.Lock]:
    """A model's second copy, loaded on its own from the file, for the app's predictions, and the lock its
    callers share: the shared copy may be hooked by another session's map computation at any time."""
    model = load(path, num_classes=2).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, threading.Lock()
