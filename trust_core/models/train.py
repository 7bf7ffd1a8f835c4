"""Training binary chest X-ray classifiers (seeded, early stopping on validation AUC)."""
from __future__ import annotations

import copy
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from sklearn.metrics import roc_auc_score

from ..data.datasets import RadiographDataset
from ..errors import CheckpointError, ConfigError, DatasetError
from ..progress import EpochEvent
from .checkpoint import save
from .info import info_of
from .recipes import PAPER_LR, RECIPES
from .registry import build, get_architecture




@dataclass(frozen=True)
class TrainConfig:
    arch: str | None = None  # a registry name, or:
    model: object = None  # a model spec (.toml path or ModelSpec): any architecture
    seed: int = 0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05  # decoupled (AdamW): 1e-4 let the small demo models fit the validation noise
    patience: int = 5
    image_size: int | None = None  # default: the architecture's input size
    augment: bool = True
    device: str | None = None
    init_weights: str | None = None  # start from these weights (e.g. ImageNet's), matching keys only
    recipe: str = "default"  # RECIPES
    # Adebayo et al.'s data randomization test: the train labels randomly permuted (seeded), no augmentation,
    # the weights that best fit those labels kept (train AUC on them): a model that memorized noise
    shuffle_labels: bool = False
    # exponential moving average of the weights (and BatchNorm statistics) per optimizer step, validated and
    # kept instead of the raw weights (None: off). The demo's small, noisy runs otherwise land on a checkpoint
    # that depends on the last bits of the CPU's arithmetic (0.82–0.93 test AUC across CPU families).
    ema: float | None = 0.95


@dataclass(frozen=True)
class TrainResult:
    path: Path
    val_auc: float
    test_auc: float | None
    epochs_run: int
    best_epoch: int
    seconds: float


def load_arrays(dataset: RadiographDataset, size: int, ids: list[str], resize: str = "stretch") -> torch.Tensor:
    """Images of ``ids`` at (size, size) as a float tensor (N, 1, size, size) in [0, 1]."""
    return torch.from_numpy(np.stack([dataset.image(i, size, resize) for i in ids]))[:, None]


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small shifts and exposure changes (no flips: the heart's side is anatomy)."""
    n = batch.shape[0]
    shift = torch.randint(-4, 5, (2,), generator=generator).tolist()
    batch = torch.roll(batch, shifts=shift, dims=(2, 3))
    gain = 1 + 0.1 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    bias = 0.05 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    return (batch * gain + bias).clamp(0, 1)


def positive_score(model, logits: torch.Tensor) -> torch.Tensor:
    """P(finding) from a binary classifier's logits: softmax[:, 1] for a 2-way softmax head (the
    registry's), else the activation of the model's target output (sigmoid for sigmoid/logits heads)."""
    info = info_of(model)
    if info.activation == "softmax":
        return torch.softmax(logits.float(), dim=1)[:, 1]
    return torch.sigmoid(logits.float()[:, info.target or 0])


def binary_loss(model, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The training loss on a binary dataset: cross-entropy for a 2-way softmax head, binary
    cross-entropy on the target output for sigmoid/logits heads."""
    info = info_of(model)
    if info.activation == "softmax":
        return F.cross_entropy(logits, target)
    return F.binary_cross_entropy_with_logits(logits[:, info.target or 0].float(), target.float())


@torch.no_grad()
def predict_proba(model, images01: torch.Tensor, device, batch_size: int = 64) -> np.ndarray:
    """P(positive) for images (N, 1, S, S) in [0, 1]."""
    model.eval()
    prep = info_of(model).prep
    out = []
    for start in range(0, len(images01), batch_size):
        logits = model(prep.batch(images01[start:start + batch_size].to(device)))
        out.append(positive_score(model, logits).cpu())
    return torch.cat(out).numpy()


def _trainable(config: TrainConfig) -> tuple[nn.Module, str | None]:
    """The untrained model of a config (registry or spec), with its registry name (None for a spec)."""
    if config.arch is not None:
        spec = get_architecture(config.arch)
        return build(spec.name, num_classes=2), spec.name
    from .spec import load_spec

    model_spec = config.model
    model = load_spec(replace(model_spec, weights=None))  # the spec's weights are a result, not a start
    info = info_of(model)
    n_out = int(model(info.prep.batch(torch.zeros(1, 1, info.prep.size, info.prep.size))).shape[1])
    if info.activation == "softmax" and n_out != 2:
        raise ConfigError(f"a softmax head trained on a binary dataset needs 2 outputs, this one has {n_out}: "
                          f"set num_classes = 2 in [source_kwargs], or use a sigmoid head with a target",
                          path=model_spec.path)
    return model, info.arch


def init_from(model: nn.Module, path: str | Path) -> dict:
    """Copy the tensors of a weights file (weights_only / safetensors) whose names and shapes fit; the
    rest (typically a 1000-class ImageNet head) keeps its fresh initialization and is listed."""
    from .spec import ModelSpec
    from .spec.load import _state_dict_of

    state = _state_dict_of(ModelSpec(source="init", weights=Path(path)))
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(fitting) < len(own) / 2:
        raise CheckpointError(f"only {len(fitting)} of the model's {len(own)} tensors are in these weights "
                              f"with the right shape (e.g. missing {[k for k in own if k not in fitting][:4]}): "
                              f"are they for this architecture?", path=path)
    model.load_state_dict(fitting, strict=False)
    return {"file": str(path), "loaded": len(fitting),
            "fresh": [k for k in own if k not in fitting], "ignored": [k for k in state if k not in fitting]}


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    if len(set(labels.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: Callable, optimizer, generator: torch.Generator,
        device: torch.device, epochs: int, batch_size: int, validate: Callable[[nn.Module], float], metric: str,
        augment: Callable | None = None, after_step: Callable | None = None, amp: bool = False,
        stop: Callable[[int, int], bool] | None = None, ema: float | None = None,
        progress: Callable[[EpochEvent], None] | None = None) -> tuple[float, int, int]:
    """The training loop the classifiers and the localizers share: seeded shuffles, batches of at least
    two (BatchNorm), optional augmentation and mixed precision, one validation per epoch, the weights of
    the best validation score kept. With ``ema`` (a decay per step), an exponential moving average of the
    weights and BatchNorm statistics (timm's ``ModelEmaV2`` rule, with its warm-up ``(1 + t) / (10 + t)``) is
    what is validated and kept. Returns
    (best score, its epoch, epochs run); ``model`` ends with the best weights."""
    # channels-last on the CPU: oneDNN's faster convolution layout (the U-Net trains 1.3× faster, ResNet 1.4×);
    # CUDA keeps the model's layout (cuDNN is faster with it for these models)
    layout = torch.channels_last if device.type == "cpu" and x.dim() == 4 else torch.contiguous_format
    model.to(memory_format=layout)
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    best = (-1.0, 0, None)
    if ema is not None and not 0 < ema < 1:
        raise ConfigError(f"the weight average's decay must lie in (0, 1), got {ema}")
    shadow = copy.deepcopy(model).eval() if ema is not None else None
    steps = 0
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
            batch = batch.contiguous(memory_format=layout)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                value = loss(model, batch.to(device), y[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(value).backward()
            scaler.step(optimizer)
            scaler.update()
            if after_step is not None:
                after_step()
            if shadow is not None:
                steps += 1
                _update_average(shadow, model, min(ema, (1 + steps) / (10 + steps)))  # warm-up: short runs track
        kept = shadow if shadow is not None else model
        score = validate(kept)
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(kept.state_dict()))
        if progress:
            progress(EpochEvent(epoch, value.item(), metric, score, best[0]))
        if stop is not None and stop(epoch, best[1]):
            break
    model.to(memory_format=torch.contiguous_format)
    model.load_state_dict(best[2])
    return best[0], best[1], epoch


@torch.no_grad()
def _update_average(shadow: nn.Module, model: nn.Module, decay: float) -> None:
    """shadow ← decay · shadow + (1 − decay) · model for floating tensors (weights and BatchNorm statistics);
    integer buffers (BatchNorm's step count) copied."""
    for average, current in zip(shadow.state_dict().values(), model.state_dict().values()):
        if average.dtype.is_floating_point:
            average.mul_(decay).add_(current.detach(), alpha=1 - decay)
        else:
            average.copy_(current)


def train_classifier(dataset: RadiographDataset, config: TrainConfig, out: str | Path, *,
                     arrays: dict[str, torch.Tensor] | None = None,
                     progress: Callable[[EpochEvent], None] | None = None) -> TrainResult:
    """Train a binary classifier of ``config.arch`` on the dataset's train split.

    Early stopping keeps the weights of the best validation AUC; the test AUC is measured once at the
    end. The checkpoint records architecture, seed, input size, preprocessing, dataset kind and
    fingerprint, validation and test AUC, and software versions.

    ``arrays`` may carry preloaded images keyed by image id at the right size (shared across models).
    """
    if config.recipe not in RECIPES:
        raise ConfigError(f"unknown training recipe {config.recipe!r}; choose one of {list(RECIPES)}")
    if (config.arch is None) == (config.model is None):
        raise ConfigError("train needs exactly one of arch (a registry name) and model (a model spec)")
    if config.arch is not None:
        size = config.image_size or get_architecture(config.arch).input_size
    else:
        from .spec import ModelSpec, read_spec
        model_spec = config.model if isinstance(config.model, ModelSpec) else read_spec(config.model)
        config = replace(config, model=model_spec)
        if config.image_size and config.image_size != model_spec.preprocessing.size:
            raise ConfigError(f"--size {config.image_size} contradicts the spec's preprocessing size "
                              f"{model_spec.preprocessing.size}: change the spec")
        size = model_spec.preprocessing.size
    resize = config.model.preprocessing.resize if config.model is not None else "stretch"
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
        return load_arrays(dataset, size, ids, resize)

    x = {s: images(ids) for s, ids in split_ids.items() if ids}
    y = {s: torch.tensor([dataset.label(i) for i in ids]) for s, ids in split_ids.items() if ids}
    fit_labels = y["train"]
    if config.shuffle_labels:
        permutation = torch.randperm(len(fit_labels), generator=torch.Generator().manual_seed(10_007 + config.seed))
        fit_labels = fit_labels[permutation]

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model, arch = _trainable(config)  # built under the seed
    init = init_from(model, config.init_weights) if config.init_weights else None
    model = model.to(device)
    prep = info_of(model).prep
    if config.recipe == "paper":
        optimizer = torch.optim.Adam(model.parameters(), lr=PAPER_LR)
        schedule = None
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, epochs=config.epochs,
            steps_per_epoch=max(1, -(-len(x["train"]) // config.batch_size)))
    start = time.perf_counter()
    if config.shuffle_labels:  # memorize the permuted labels: score and keep the fit to them, never stop early
        validate = lambda m: _auc(fit_labels.numpy(), predict_proba(m, x["train"], device))  # noqa: E731
        stop = None
    else:
        validate = lambda m: _auc(y["val"].numpy(), predict_proba(m, x["val"], device))  # noqa: E731
        # one-cycle LR: no early stop during the warm-up
        stop = ((lambda e, best_e: e - best_e >= config.patience) if config.recipe == "paper" else
                (lambda e, best_e: e > 0.3 * config.epochs and e - best_e >= config.patience))
    best_auc, best_epoch, epoch = fit(
        model, x["train"], fit_labels, optimizer=optimizer, generator=generator, device=device,
        epochs=config.epochs, batch_size=config.batch_size, metric="AUC", amp=device.type == "cuda",
        loss=lambda m, batch, target: binary_loss(m, m(prep.batch(batch)), target),
        augment=(lambda batch: _augment(batch, generator))
        if config.augment and config.recipe != "paper" and not config.shuffle_labels else None,
        after_step=schedule.step if schedule is not None else None, progress=progress,
        validate=validate, stop=stop,
        ema=config.ema if config.recipe != "paper" and not config.shuffle_labels else None)
    shuffled = None
    if config.shuffle_labels:  # its AUC on the real validation labels (≈ 0.5 when nothing real was learned)
        shuffled = {"train_auc_on_shuffled_labels": best_auc, "seed": 10_007 + config.seed}
        best_auc = _auc(y["val"].numpy(), predict_proba(model, x["val"], device))
    best = (best_auc, best_epoch)
    test_auc = (_auc(y["test"].numpy(), predict_proba(model, x["test"], device))
                if "test" in x else None)
    seconds = time.perf_counter() - start
    meta = {
        "arch": arch, "seed": config.seed, "input_size": size,
        "preprocessing": get_architecture(arch).preprocessing if arch else info_of(model).prep.label,
        "recipe": {"name": config.recipe, "description": RECIPES[config.recipe]}, "init_weights": init,
        "dataset_kind": dataset.kind, "dataset_root": str(dataset.root),
        "dataset_fingerprint": dataset.fingerprint, "val_auc": best[0], "test_auc": test_auc,
        "best_epoch": best[1], "epochs_run": epoch, "train_seconds": round(seconds, 1),
        "shuffled_labels": shuffled,
        "config": {**asdict(replace(config, model=None)),
                   "model": str(config.model.path or config.model.source) if config.model is not None else None},
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    # a spec'd model keeps its spec (a registry source too: its preprocessing or head may differ)
    path = save(model.cpu(), out, arch=arch, meta=meta, spec=info_of(model).spec)
    return TrainResult(path=path, val_auc=best[0], test_auc=test_auc, epochs_run=epoch,
                       best_epoch=best[1], seconds=seconds)
