"""Localization baselines: a compact U-Net trained on the dataset's boxes or masks.

The paper's high baselines were a U-Net (SIIM) and a RetinaNet (RSNA): a model trained *to localize*
shows what localization a map can reach (AUPRC) and how repeatable localization is when a model is
retrained with another seed (SSIM). ``trust train-localizer`` trains this compact U-Net on any dataset
so the demo has high baselines too; a folder of score maps the user brings works as well
(:func:`load_score_maps`).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import RadiographDataset
from ..errors import DatasetError
from .checkpoint import save
from .train import fit
from .unet import UNet


def _dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probs = torch.sigmoid(logits)
    inter = (probs * target).sum(dim=(1, 2))
    return (1 - (2 * inter + 1) / (probs.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)).mean()


@torch.no_grad()
def predict_maps(model: nn.Module, images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    """Score maps in [0, 1] (N, S, S) for model inputs (N, 3, S, S)."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model(images[i:i + batch_size].to(device))).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)


def train_localizer(dataset: RadiographDataset, out: str | Path, *, size: int = 128, seed: int = 0,
                    epochs: int = 20, batch_size: int = 16, lr: float = 2e-3, device: str | None = None,
                    progress=None) -> dict:
    """Train the U-Net on the train split's masks (negatives included); keep the best validation Dice."""
    from ..data.transforms import to_model_input

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ids = {s: dataset.ids(split=s) for s in ("train", "val")}
    if not ids["train"] or not any(dataset.label(i) for i in ids["train"]):
        raise DatasetError("the train split needs positive images with boxes or masks to train a localizer")
    x = {s: torch.stack([to_model_input(dataset.image(i, size)) for i in v]) for s, v in ids.items() if v}
    y = {s: torch.from_numpy(np.stack([dataset.mask(i, size) for i in v])).float() for s, v in ids.items() if v}
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = UNet().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    started = time.perf_counter()

    def loss(m, batch, target):
        logits = m(batch)
        return F.binary_cross_entropy_with_logits(logits, target) + _dice_loss(logits, target)

    def validate(m) -> float:
        probs = torch.from_numpy(predict_maps(m, x["val"]))
        return float(2 * (probs * y["val"]).sum() / (probs.sum() + y["val"].sum() + 1e-6))

    best = fit(model, x["train"], y["train"], loss=loss, optimizer=optimizer, generator=generator, device=device,
               epochs=epochs, batch_size=batch_size, validate=validate, metric="Dice", progress=progress)
    meta = {"arch": "unet", "task": "localizer", "seed": seed, "input_size": size, "val_dice": best[0],
            "best_epoch": best[1], "dataset_kind": dataset.kind, "dataset_fingerprint": dataset.fingerprint,
            "train_seconds": round(time.perf_counter() - started, 1)}
    save(model.cpu(), out, arch="unet", meta=meta)
    return meta


def load_localizer(path: str | Path, device: str = "cpu") -> nn.Module:
    """Load a U-Net localizer checkpoint (weights_only)."""
    from .checkpoint import load

    return load(path, arch="unet", device=device)


def load_score_maps(folder: str | Path, image_ids: list[str], size: int, resize: str = "stretch") -> dict[str, np.ndarray]:
    """User-supplied localization score maps over the whole film: ``<image_id>.npy``/``.npz`` (first array)
    or ``.png``; framed by ``resize`` (``center_crop``: their central square) and resized to ``size``."""
    from ..data.images import read_image
    from ..data.transforms import frame

    folder = Path(folder)
    maps = {}
    for image_id in image_ids:
        for suffix in (".npy", ".npz", ".png"):
            path = folder / f"{image_id}{suffix}"
            if path.is_file():
                break
        else:
            continue
        try:
            if suffix == ".npy":
                array = np.load(path, allow_pickle=False)
            elif suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    array = archive[archive.files[0]]
            else:
                import warnings

                from ..data.images import FilmWarning

                with warnings.catch_warnings():  # a score map's scale does not matter: it is min–max normalized
                    warnings.simplefilter("ignore", FilmWarning)
                    array = read_image(path)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read the score map ({exc})", path=path) from None
        if array.ndim != 2 or not np.isfinite(array).all():
            raise DatasetError(f"a score map must be a finite 2-D array, got shape {array.shape}", path=path)
        maps[image_id] = frame(array.astype(np.float32), size, resize)
    return maps
