"""Training binary chest X-ray classifiers (seeded, early stopping on validation AUC)."""
from __future__ import annotations

import copy
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from sklearn.metrics import roc_auc_score

from ..data.datasets import RadiographDataset
from ..data.transforms import to_model_batch
from ..errors import ConfigError, DatasetError
from ..progress import EpochEvent
from .checkpoint import save
from .registry import build, get_architecture


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    seed: int = 0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    image_size: int | None = None  # default: the architecture's input size
    augment: bool = True
    device: str | None = None


@dataclass(frozen=True)
class TrainResult:
    path: Path
    val_auc: float
    test_auc: float | None
    epochs_run: int
    best_epoch: int
    seconds: float


def load_arrays(dataset: RadiographDataset, size: int, ids: list[str]) -> torch.Tensor:
    """Images of ``ids`` at (size, size) as a float tensor (N, 1, size, size) in [0, 1]."""
    return torch.from_numpy(np.stack([dataset.image(i, size) for i in ids]))[:, None]


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small shifts and exposure changes (no flips: the heart's side is anatomy)."""
    n = batch.shape[0]
    shift = torch.randint(-4, 5, (2,), generator=generator).tolist()
    batch = torch.roll(batch, shifts=shift, dims=(2, 3))
    gain = 1 + 0.1 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    bias = 0.05 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    return (batch * gain + bias).clamp(0, 1)


@torch.no_grad()
def predict_proba(model, images01: torch.Tensor, device, batch_size: int = 64) -> np.ndarray:
    """P(positive) for images (N, 1, S, S) in [0, 1]."""
    model.eval()
    out = []
    for start in range(0, len(images01), batch_size):
        logits = model(to_model_batch(images01[start:start + batch_size].to(device)))
        out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
    return torch.cat(out).numpy()


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    if len(set(labels.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: Callable, optimizer, generator: torch.Generator,
        device: torch.device, epochs: int, batch_size: int, validate: Callable[[nn.Module], float], metric: str,
        augment: Callable | None = None, after_step: Callable | None = None, amp: bool = False,
        stop: Callable[[int, int], bool] | None = None,
        progress: Callable[[EpochEvent], None] | None = None) -> tuple[float, int, int]:
    """The training loop the classifiers and the localizers share: seeded shuffles, batches of at least
    two (BatchNorm), optional augmentation and mixed precision, one validation per epoch, the weights of
    the best validation score kept. Returns (best score, its epoch, epochs run); ``model`` ends with the
    best weights."""
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    best = (-1.0, 0, None)
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for begin in range(0, len(order), batch_size):
            idx = order[begin:begin + batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs more than one sample
            batch = x[idx]
            if augment is not None:
                batch = augment(batch)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                value = loss(model, batch.to(device), y[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(value).backward()
            scaler.step(optimizer)
            scaler.update()
            if after_step is not None:
                after_step()
        score = validate(model)
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
        if progress:
            progress(EpochEvent(epoch, value.item(), metric, score, best[0]))
        if stop is not None and stop(epoch, best[1]):
            break
    model.load_state_dict(best[2])
    return best[0], best[1], epoch


def train_classifier(dataset: RadiographDataset, config: TrainConfig, out: str | Path, *,
                     arrays: dict[str, torch.Tensor] | None = None,
                     progress: Callable[[EpochEvent], None] | None = None) -> TrainResult:
    """Train a binary classifier of ``config.arch`` on the dataset's train split.

    Early stopping keeps the weights of the best validation AUC; the test AUC is measured once at the
    end. The checkpoint records architecture, seed, input size, preprocessing, dataset kind and
    fingerprint, validation and test AUC, and software versions.

    ``arrays`` may carry preloaded images keyed by image id at the right size (shared across models).
    """
    spec = get_architecture(config.arch)
    size = config.image_size or spec.input_size
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    split_ids = {s: dataset.ids(split=s) for s in ("train", "val", "test")}
    for split in ("train", "val"):
        labels = {dataset.label(i) for i in split_ids[split]}
        if labels != {0, 1}:
            raise DatasetError(f"the {split} split needs positive and negative images, found labels "
                               f"{sorted(labels)} in {len(split_ids[split])} images")
    if config.epochs < 1 or config.batch_size < 1 or config.lr <= 0:
        raise ConfigError(f"invalid training settings: {config}")

    def images(ids):
        if arrays is not None:
            return torch.stack([arrays[i] for i in ids])
        return load_arrays(dataset, size, ids)

    x = {s: images(ids) for s, ids in split_ids.items() if ids}
    y = {s: torch.tensor([dataset.label(i) for i in ids]) for s, ids in split_ids.items() if ids}

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = build(spec.name, num_classes=2).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, epochs=config.epochs,
        steps_per_epoch=max(1, -(-len(x["train"]) // config.batch_size)))
    start = time.perf_counter()
    best_auc, best_epoch, epoch = fit(
        model, x["train"], y["train"], optimizer=optimizer, generator=generator, device=device,
        epochs=config.epochs, batch_size=config.batch_size, metric="AUC", amp=device.type == "cuda",
        loss=lambda m, batch, target: F.cross_entropy(m(to_model_batch(batch)), target),
        augment=(lambda batch: _augment(batch, generator)) if config.augment else None,
        after_step=schedule.step, progress=progress,
        validate=lambda m: _auc(y["val"].numpy(), predict_proba(m, x["val"], device)),
        # one-cycle LR: no early stop during the warm-up
        stop=lambda e, best_e: e > 0.3 * config.epochs and e - best_e >= config.patience)
    best = (best_auc, best_epoch)
    test_auc = (_auc(y["test"].numpy(), predict_proba(model, x["test"], device))
                if "test" in x else None)
    seconds = time.perf_counter() - start
    meta = {
        "arch": spec.name, "seed": config.seed, "input_size": size, "preprocessing": spec.preprocessing,
        "dataset_kind": dataset.kind, "dataset_root": str(dataset.root),
        "dataset_fingerprint": dataset.fingerprint, "val_auc": best[0], "test_auc": test_auc,
        "best_epoch": best[1], "epochs_run": epoch, "train_seconds": round(seconds, 1),
        "config": {k: v for k, v in asdict(config).items()},
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    path = save(model.cpu(), out, arch=spec.name, meta=meta)
    return TrainResult(path=path, val_auc=best[0], test_auc=test_auc, epochs_run=epoch,
                       best_epoch=best[1], seconds=seconds)
