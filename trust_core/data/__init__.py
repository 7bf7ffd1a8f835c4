"""Data layer: DICOM/image reading, RSNA/SIIM/folder and NIH/VinDr/CheXlocalize datasets, ground truth at the model size
(:mod:`.groundtruth`: the paper's rule and the coverage rule), RLE (the demo's phantom films: trust_core.demo)."""
from .datasets import RadiographDataset
from .folder import FolderDataset
from .kaggle import RSNADataset, SIIMDataset
from .records import Box, Record, Sample, make_splits
from .chexlocalize import CheXlocalizeDataset
from .findings import NIHDataset
from .vindr import VinDrDataset
from .kinds import DATASETS, open_dataset
from .dicom import DicomImage, read_dicom
from .images import load_radiograph, read_image
from .rle import rle_decode, rle_encode
from .transforms import resize_image, resize_mask, to_model_input

__all__ = [
    "DATASETS", "Box", "CheXlocalizeDataset", "DicomImage", "FolderDataset", "NIHDataset", "RSNADataset",
    "RadiographDataset", "Record", "VinDrDataset",
    "SIIMDataset", "Sample", "load_radiograph", "make_splits", "open_dataset",
    "read_dicom", "read_image", "resize_image", "resize_mask", "rle_decode", "rle_encode",
    "to_model_input",
]
