"""A tiny but complete workspace (datasets, models, localizers, results) for the app tests."""
import json
import shutil

import pytest

from trust_core.cache import Store
from trust_core.evaluate import EvalConfig, evaluate
from trust_core.models import TrainConfig, train_classifier
from trust_core.models.localizer import train_localizer

LIGHT = dict(n_samples=2, smooth_ig_steps=2, ig_steps=3, xrai_steps=3)


@pytest.fixture(scope="session")
def app_workspace(tmp_path_factory, phantom_root):
    from trust_core.data import RSNADataset
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
    evaluate(dataset, models, EvalConfig(preset="fast", overrides=LIGHT, ssim_images=3, baseline_pairs=2, group=4),
             localizers=localizers, cache=Store(root / "store"), out=root / "results" / "rsna")
    return root
