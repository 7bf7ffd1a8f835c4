"""What an evaluation depends on (:class:`EvalConfig`, recorded in ``config.json``), and the version of the
evaluation code its results carry."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..cache.codec import DEFAULT_MAP_STORAGE
from ..metrics import PAPER_DATA_RANGE
from ..saliency.registry import PAPER_PRESET
from .criteria import PAPER_CRITERIA

RANDOMIZATION_CLASSES = {
    "original": "each randomized state explains the class the trained model explains for the image (Adebayo et "
                "al. 2018; Quantus MPRT)",
    "own": "each randomized state explains its own predicted class (the tool's behaviour before evaluate-3)"}
# 2: verdicts from paired CIs, random-pair baseline per replicate, localizer normalization and pairing,
# utility of every model state, paper ground-truth rule and RSNA classes (results of 1 are not reused)
EVAL_CODE_VERSION = "evaluate-3"  # 3: criteria on the map form their authors score, randomized states explain
# the original model's class, 10,000 bootstrap resamples, mIoU binarized with > (CheXlocalize)


@dataclass(frozen=True)
class EvalConfig:
    """Everything an evaluation depends on; recorded in ``config.json``."""

    methods: tuple[str, ...] | None = None
    preset: str = PAPER_PRESET
    overrides: dict = field(default_factory=dict)
    criteria: tuple[str, ...] = PAPER_CRITERIA
    utility_split: str = "test"
    utility_limit: int | None = None
    ssim_images: int = 100
    ssim_seed: int = 1
    baseline_pairs: int = 50
    data_range: float = PAPER_DATA_RANGE
    randomization_mode: str = "cascading"
    randomization_init: str = "reset"
    randomization_seed: int = 0
    # the class a randomized state explains: 'original' (the class the trained model explains for the image,
    # as Adebayo et al. and Quantus's MPRT keep y fixed) or 'own' (each state's own predicted class)
    randomization_class: str = "original"
    scored_maps: dict = field(default_factory=dict)  # criterion → 'clipped' / 'unclipped' departures
    ttest: bool = False
    precision: str = "fp32"
    # how maps are kept and scored (trust_core.cache.codec): 'compact' (exact up to 120 KB a map, half
    # precision beyond), or 'exact'
    map_storage: str = DEFAULT_MAP_STORAGE
    device: str | None = None
    batch_size: int | None = None
    group: int = 4
    bootstrap_seed: int = 0
    shuffled_models: tuple[str, ...] = ()  # models trained on shuffled labels (data_randomization)
    smprt_samples: int = 10  # sMPRT: maps averaged over the image and smprt_samples − 1 noisy copies
    smprt_noise: float = 0.1  # their σ, × the image's (max − min) (Quantus SmoothMPRT's noise_magnitude)
