"""Data layer: DICOM/image reading, RSNA/SIIM/folder and NIH/VinDr/CheXlocalize datasets, ground truth at the model size
(:mod:`.groundtruth`: the paper's rule and the coverage rule), RLE (the demo's phantom films: trust_core.demo)."""
from .datasets import (Box, FolderDataset, RadiographDataset, Record, RSNADataset, Sample, SIIMDataset,
                       make_splits)
from .findings import CheXlocalizeDataset, NIHDataset, VinDrDataset
from .kinds import DATASETS, open_dataset
from .dicom import DicomImage, load_radiograph, read_dicom, read_image
from .rle import rle_decode, rle_encode
from .transforms import resize_image, resize_mask, to_model_input

__all__ = [
    "DATASETS", "Box", "CheXlocalizeDataset", "DicomImage", "FolderDataset", "NIHDataset", "RSNADataset",
    "RadiographDataset", "Record", "VinDrDataset",
    "SIIMDataset", "Sample", "load_radiograph", "make_splits", "open_dataset",
    "read_dicom", "read_image", "resize_image", "resize_mask", "rle_decode", "rle_encode",
    "to_model_input",
]
