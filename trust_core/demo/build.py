"""The embedded demo workspace: phantom RSNA/SIIM datasets and trained demo classifiers.

``trust demo`` builds, under one workspace folder (default ``cache/demo``)::

    rsna/stage_2_train_labels.csv, rsna/stage_2_train_images/*.dcm, rsna/splits.csv, …
    siim/train-rle.csv, siim/dicom-images-train/<study>/<series>/<ImageId>.dcm, siim/splits.csv
    models/<dataset>_<arch>_s<seed>.pt and models/index.json

per dataset: two replicates of one architecture (repeatability) and one of another
(reproducibility). Every step is skipped when its output already exists (idempotent).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..data.kaggle import RSNADataset, SIIMDataset
from ..data.findings import NIHDataset
from ..data.kinds import open_dataset
from .films import build_nih_phantom, build_phantom_dataset
from ..layout import ANALYSIS_FILE, Layout, read_index, workspace_models, write_index
from ..models.registry import get_architecture
from ..models.train import TrainConfig, load_arrays, train_classifier
from ..progress import epoch_bar, unit_bar
from ..saliency.registry import FAST_PRESET

# the demo's datasets by kind: their classes own the layouts (the label file, ``LABELS``, is written last)
DATASETS = {cls.kind: cls for cls in (RSNADataset, SIIMDataset)}
# An NIH ChestX-ray14-style set with two findings, assessed with the RSNA-trained models (external films,
# as a researcher would test a model on another hospital's data) for the finding their task matches.
TRANSFER = {"nih": ("rsna", "Infiltrate", NIHDataset.LABELS)}
MIN_TEST_AUC = 0.85


@dataclass(frozen=True)
class DemoModel:
    arch: str
    seed: int
    role: str


DEMO_MODELS = (
    DemoModel("densenet_tiny", 0, "replicate A"),
    DemoModel("densenet_tiny", 1, "replicate B"),
    DemoModel("resnet_tiny", 0, "other architecture"),
)


def demo_anatomy(layout: Layout, asked: str | None) -> str:
    """The anatomy of a demo workspace's films: the one it was built with (``demo.json``; a workspace with
    films but no record predates the choice: ``phantom``), else ``asked``, else ``rg1``. Asking for another
    anatomy than a workspace's films have is refused (completing it would mix the two)."""
    from .anatomy import ANATOMIES
    from ..errors import ConfigError
    from ..io import atomic_write

    record = layout.root / "demo.json"
    built = None
    if record.is_file():
        built = json.loads(record.read_text()).get("anatomy")
    elif any((layout.dataset(kind) / cls.LABELS).is_file() for kind, cls in DATASETS.items()):
        built = "phantom"
    if built and asked and asked != built:
        raise ConfigError(f"{layout.root} holds demo films on the {built!r} anatomy; build the {asked!r} demo "
                          f"into another folder (--workspace DIR) or delete this one first")
    anatomy = built or asked or ANATOMIES[0]
    if anatomy not in ANATOMIES:
        raise ConfigError(f"unknown anatomy {anatomy!r}; choose one of {', '.join(ANATOMIES)}")
    if not record.is_file():
        layout.root.mkdir(parents=True, exist_ok=True)
        atomic_write(record, json.dumps({"anatomy": anatomy}).encode())
    return anatomy


def build_demo(workspace: str | Path | None = None, *, n_images: int = 480, seed: int = 0,
               epochs: int = 40, evaluate: bool = True, anatomy: str | None = None,
               log: Callable[[str], None] = print) -> list[dict]:
    """Build (or complete) the demo workspace, its films on ``anatomy`` (``rg1``, the default: the real
    chest film of pydicom-data, deformed and re-exposed; ``phantom``: fully synthetic; an existing
    workspace keeps its own, see :func:`demo_anatomy`); return the model index."""
    from tqdm import tqdm

    layout = Layout.of(workspace)
    anatomy = demo_anatomy(layout, anatomy)
    models_dir = layout.models
    models_dir.mkdir(parents=True, exist_ok=True)
    index = {entry["file"]: entry for entry in read_index(layout.root)}
    for kind, dataset_class in DATASETS.items():
        data_root = layout.dataset(kind)
        if not (data_root / dataset_class.LABELS).is_file():
            started = time.perf_counter()
            with tqdm(total=n_images, desc=f"{anatomy} {kind.upper()} images", unit="img") as bar:
                build_phantom_dataset(data_root, kind, n_images=n_images, seed=seed,
                                      progress=bar.update, anatomy=anatomy)
            log(f"{kind}: wrote {n_images} DICOMs in {time.perf_counter() - started:.0f} s")
        dataset = dataset_class(data_root)
        arrays_by_size: dict[int, dict] = {}
        for spec in DEMO_MODELS:
            name = f"{kind}_{spec.arch}_s{spec.seed}.pt"
            if name in index and (models_dir / name).is_file():
                continue
            size = get_architecture(spec.arch).input_size
            if size not in arrays_by_size:
                ids = dataset.ids()
                arrays_by_size[size] = dict(zip(ids, load_arrays(dataset, size, ids)))
            with epoch_bar(epochs, f"train {kind} {spec.arch} seed {spec.seed}") as step:
                # Full one-cycle schedule (no early stop); the best validation epoch is kept.
                result = train_classifier(dataset, TrainConfig(arch=spec.arch, seed=spec.seed,
                                                               epochs=epochs, patience=epochs),
                                          models_dir / name, arrays=arrays_by_size[size], progress=step)
            verdict = "ok" if (result.test_auc or 0) >= MIN_TEST_AUC else f"BELOW {MIN_TEST_AUC}"
            log(f"{name}: test AUC {result.test_auc:.3f} ({verdict}), val AUC {result.val_auc:.3f}, "
                f"{result.epochs_run} epochs, {result.seconds:.0f} s")
            index[name] = {"file": name, "arch": spec.arch, "dataset": kind, "seed": spec.seed,
                           "role": spec.role, "input_size": size, "val_auc": result.val_auc,
                           "test_auc": result.test_auc, "dataset_fingerprint": dataset.fingerprint}
            write_index(layout.root, list(index.values()))
        _build_localizers(dataset, kind, models_dir, index, log)
        write_index(layout.root, list(index.values()))
    for kind, (source, _finding, label_file) in TRANSFER.items():
        data_root = layout.dataset(kind)
        if not (data_root / label_file).is_file():
            started = time.perf_counter()
            with tqdm(total=n_images // 2, desc=f"{anatomy} {kind.upper()} images", unit="img") as bar:
                build_nih_phantom(data_root, n_images=n_images // 2, seed=seed, progress=bar.update,
                                  anatomy=anatomy)
            log(f"{kind}: wrote {n_images // 2} PNGs in {time.perf_counter() - started:.0f} s")
        for entry in index.values():  # the source dataset's models serve this one too
            if entry["dataset"] == source:
                entry["also"] = sorted(set(entry.get("also", [])) | {kind})
        write_index(layout.root, list(index.values()))
    if evaluate:
        evaluate_demo(layout.root, log=log)
    return sorted(index.values(), key=lambda e: e["file"])


LOCALIZER_SEEDS = (0, 1)
# The localizer (high baseline) must not be understated by its resolution. Measured on the demo
# (bench/fidelity.py, 12 epochs, AUPRC on test positives and SSIM of two seeds, at the classifiers' 128 px):
# RSNA boxes: 64 px 0.873 / 0.924 against 128 px 0.778 / 0.871 — the lower resolution costs nothing
# (and a quarter of the time); SIIM masks: 64 px 0.837 / 0.910 against 128 px 0.852 / 0.929 — so SIIM's
# is trained and predicts at the classifiers' input size.
LOCALIZER_SIZES = {"rsna": 64, "siim": 128}
# the paper's four, and the newer criteria that read the same maps (no pass of their own): the app's
# "beyond the paper" toggle shows them
# 8 SSIM images: a verdict needs at least MIN_PAIRED_N (6) paired images, with room for a flagged map
DEMO_EVAL = dict(preset=FAST_PRESET, utility_limit=16, ssim_images=8, group=8,
                 criteria=("utility", "randomization", "repeatability", "reproducibility", "pointing_game",
                           "energy_pointing_game", "spearman", "hog", "emprt"))


def _build_localizers(dataset, kind: str, models_dir: Path, index: dict, log) -> None:
    from ..models.localizer import train_localizer

    for seed in LOCALIZER_SEEDS:
        name = f"{kind}_unet_s{seed}.pt"
        if name in index and (models_dir / name).is_file():
            continue
        epochs = 12
        with epoch_bar(epochs, f"localizer {kind} seed {seed}") as step:
            meta = train_localizer(dataset, models_dir / name, size=LOCALIZER_SIZES[kind], seed=seed,
                                   epochs=epochs, progress=step)
        log(f"{name}: val Dice {meta['val_dice']:.3f}")
        index[name] = {"file": name, "arch": "unet", "dataset": kind, "seed": seed, "role": "localizer",
                       "input_size": LOCALIZER_SIZES[kind], "val_dice": meta["val_dice"], "val_auc": None, "test_auc": None,
                       "dataset_fingerprint": dataset.fingerprint}


def evaluate_demo(workspace: str | Path | None = None, *, log: Callable[[str], None] = print) -> None:
    """Score the demo datasets (preset 'fast', a small subset) into ``results/<dataset>/``."""
    from ..cache.store import Store
    from ..evaluate import EvalConfig, Evaluation, write_outputs

    layout = Layout.of(workspace)
    store = Store(layout.store)
    for kind in [*DATASETS, *TRANSFER]:
        out = layout.results(kind)
        if not layout.dataset(kind).is_dir():
            continue
        if _current_results(out):
            _analyze(out, kind, log)  # results from an earlier build: only the failure analysis, if it is missing
            continue
        classifiers, localizers = workspace_models(layout.root, kind)
        if kind in TRANSFER:
            dataset = open_dataset(f"{kind}:{layout.dataset(kind)}", finding=TRANSFER[kind][1], image_size=128)
        else:
            dataset = DATASETS[kind](layout.dataset(kind), image_size=128)
        evaluation = Evaluation(dataset, classifiers, EvalConfig(**DEMO_EVAL), localizers=localizers, cache=store)
        units = evaluation.units()
        with unit_bar(len(units), f"evaluate {kind} (fast preset)") as progress:
            result = evaluation.run(progress=progress)
        write_outputs(result, out)
        log(f"{kind}: evaluated {result.stats['image_maps']} image-states in {result.stats['seconds']:.0f} s "
            f"→ {out}")
        _analyze(out, kind, log)


def _analyze(out: Path, kind: str, log: Callable[[str], None]) -> None:
    """The failure analysis beside the results (``trust analyze``; seconds), for the app's Why it fails page."""
    from ..analysis import read_analysis
    from ..workspace import Workspace

    if read_analysis(out) is not None:
        return
    summary = Workspace(out.parents[1]).analysis(kind, compute=True)  # <ws>/results/<kind>
    log(f"{kind}: failure analysis of {summary['n_images']} images in {summary['timings']['total_s']:.1f} s "
        f"→ {out / ANALYSIS_FILE}")


def _current_results(folder: Path) -> bool:
    """Results exist, were scored by the current evaluation code and hold every criterion the demo scores
    (older ones are recomputed: the maps come from the cache)."""
    from ..evaluate.outputs import read_summary
    from ..evaluate.run import EVAL_CODE_VERSION

    summary = read_summary(folder)
    if summary is None:
        return False
    return summary.get("code_version") == EVAL_CODE_VERSION and set(DEMO_EVAL["criteria"]) <= set(summary["criteria"])
