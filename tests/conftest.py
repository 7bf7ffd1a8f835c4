"""Shared fixtures: small phantom datasets written as real DICOM files, tiny models."""
from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest
import torch

os.environ.setdefault("PYTHONHASHSEED", "0")
# pytest-xdist runs the suite in parallel processes (`make test`: one per core): the cores are shared
# between them, so that two workers do not each spread over every core
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))
warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory):
    """A tiny demo-like workspace: 24 RSNA and 24 SIIM phantom DICOMs in the Kaggle layouts."""
    from trust_core.demo.films import build_phantom_dataset

    root = tmp_path_factory.mktemp("phantom")
    build_phantom_dataset(root / "rsna", "rsna", n_images=24, seed=3, positive_fraction=0.5, workers=1)
    build_phantom_dataset(root / "siim", "siim", n_images=24, seed=3, positive_fraction=0.5, workers=1)
    return root


@pytest.fixture(scope="session")
def rsna(phantom_root):
    from trust_core.data import RSNADataset
    return RSNADataset(phantom_root / "rsna", image_size=64)


@pytest.fixture(scope="session")
def siim(phantom_root):
    from trust_core.data import SIIMDataset
    return SIIMDataset(phantom_root / "siim", image_size=64)


class TinyNet(torch.nn.Module):
    """A small CNN whose ReLUs are modules (captum can guide them); ``functional=True`` uses F.relu."""

    def __init__(self, functional: bool = False, n_classes: int = 3):
        super().__init__()
        self.functional = functional
        self.conv1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(6, 8, 3, padding=1, stride=2)
        self.relu2 = torch.nn.ReLU()
        self.features = torch.nn.Identity()  # Grad-CAM target: the last feature map
        self.fc = torch.nn.Linear(8, n_classes)

    def forward(self, x):
        relu = torch.nn.functional.relu
        x = relu(self.conv1(x)) if self.functional else self.relu1(self.conv1(x))
        x = relu(self.conv2(x)) if self.functional else self.relu2(self.conv2(x))
        x = self.features(x)
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def tiny_images():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 32, 32, generator=generator) * 2 - 1


APP_LIGHT = dict(n_samples=2, smooth_ig_steps=2, ig_steps=3, xrai_steps=3)


@pytest.fixture(scope="session")
def app_workspace(tmp_path_factory, phantom_root):
    """A tiny but complete workspace (datasets, models, localizers, results) for app and report tests."""
    from trust_core.cache import Store
    from trust_core.data import RSNADataset
    from trust_core.evaluate import EvalConfig, evaluate
    from trust_core.models import TrainConfig, train_classifier
    from trust_core.models.localizer import train_localizer
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(phantom_root / "rsna", root / "rsna")
    dataset = RSNADataset(root / "rsna", image_size=64)
    (root / "models").mkdir()
    index = []
    for arch, seed, role in (("densenet_tiny", 0, "replicate A"), ("densenet_tiny", 1, "replicate B"),
                             ("resnet_tiny", 0, "other architecture")):
        name = f"rsna_{arch}_s{seed}.pt"
        result = train_classifier(dataset, TrainConfig(arch=arch, seed=seed, epochs=1, batch_size=8, image_size=64),
                                  root / "models" / name)
        index.append({"file": name, "arch": arch, "dataset": "rsna", "seed": seed, "role": role, "input_size": 64,
                      "val_auc": result.val_auc, "test_auc": result.test_auc})
    for seed in (0, 1):
        name = f"rsna_unet_s{seed}.pt"
        meta = train_localizer(dataset, root / "models" / name, size=64, seed=seed, epochs=1)
        index.append({"file": name, "arch": "unet", "dataset": "rsna", "seed": seed, "role": "localizer",
                      "input_size": 64, "val_dice": meta["val_dice"], "val_auc": None, "test_auc": None})
    (root / "models" / "index.json").write_text(json.dumps({"models": index}))
    models = [root / "models" / e["file"] for e in index if e["role"] != "localizer"]
    localizers = [root / "models" / e["file"] for e in index if e["role"] == "localizer"]
    # the paper's four and the newer criteria that read the same maps (as the demo does)
    criteria = ("utility", "randomization", "repeatability", "reproducibility", "pointing_game", "energy_pointing_game",
                "spearman", "hog", "emprt")
    evaluate(dataset, models, EvalConfig(preset="fast", overrides=APP_LIGHT, ssim_images=3, baseline_pairs=2, group=4,
                                         criteria=criteria),
             localizers=localizers, cache=Store(root / "store"), out=root / "results" / "rsna")
    return root
