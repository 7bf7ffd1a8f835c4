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
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start = time.perf_counter()
    best = (-1.0, 0, None)
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x["train"]), generator=generator)
        for begin in range(0, len(order), config.batch_size):
            idx = order[begin:begin + config.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs more than one sample
            batch = x["train"][idx]
            if config.augment:
                batch = _augment(batch, generator)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = F.cross_entropy(model(to_model_batch(batch.to(device))), y["train"][idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
        val_auc = _auc(y["val"].numpy(), predict_proba(model, x["val"], device))
        if val_auc > best[0]:
            best = (val_auc, epoch, copy.deepcopy(model.state_dict()))
        if progress:
            progress(EpochEvent(epoch, loss.item(), "AUC", val_auc, best[0]))
        warmed_up = epoch > 0.3 * config.epochs  # one-cycle LR: no early stop during the warm-up
        if warmed_up and epoch - best[1] >= config.patience:
            break
    model.load_state_dict(best[2])
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
