"""Shared fixtures: small phantom datasets written as real DICOM files, tiny models."""
from __future__ import annotations

import os
import warnings

import pytest
import torch

os.environ.setdefault("PYTHONHASHSEED", "0")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory):
    """A tiny demo-like workspace: 24 RSNA and 24 SIIM phantom DICOMs in the Kaggle layouts."""
    from trust_core.data.phantom import build_phantom_dataset

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
