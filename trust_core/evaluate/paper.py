"""The paper's published numbers (protocol.md section 6), for side-by-side display.

Mean per-image AUPRC (InceptionV3, trained; read from the paper's figures, ±0.02) and mean SSIM for
repeatability and reproducibility (100 images). ``None`` where the paper gives no value.
"""
from __future__ import annotations

SOURCE = "Arun et al., Radiology: AI 3(6):e200267, 2021 (values read from figures, ±0.02)"

AUPRC = {
    "siim": {"grad": 0.099, "smoothgrad": 0.037, "ig": 0.082, "smooth_ig": 0.024, "gradcam": 0.141, "xrai": 0.224,
             "gbp": 0.134, "guided_gradcam": 0.150, "average_mask": 0.142, "localizer": 0.404},
    "rsna": {"grad": 0.339, "smoothgrad": 0.169, "ig": 0.320, "smooth_ig": 0.160, "gradcam": 0.41, "xrai": 0.519,
             "gbp": 0.173, "guided_gradcam": 0.31, "average_mask": 0.465, "localizer": 0.596},
}

SSIM = {
    "repeatability": {
        "siim": {"grad": 0.22, "smoothgrad": 0.18, "ig": 0.22, "smooth_ig": 0.22, "gradcam": 0.43, "xrai": 0.64,
                 "gbp": 0.32, "guided_gradcam": 0.58, "localizer": 0.976},
        "rsna": {"grad": 0.30, "smoothgrad": 0.27, "ig": 0.36, "smooth_ig": 0.38, "gradcam": 0.68, "xrai": 0.84,
                 "gbp": 0.56, "guided_gradcam": 0.71, "localizer": 0.802},
    },
    "reproducibility": {
        "siim": {"grad": 0.17, "smoothgrad": 0.34, "ig": 0.17, "smooth_ig": 0.35, "gradcam": 0.37, "xrai": 0.49,
                 "gbp": 0.29, "guided_gradcam": 0.44},
        "rsna": {"grad": 0.24, "smoothgrad": 0.18, "ig": 0.27, "smooth_ig": 0.27, "gradcam": 0.60, "xrai": 0.75,
                 "gbp": 0.32, "guided_gradcam": 0.64},
    },
}

# Randomization (abstract): methods that failed (SSIM after full randomization not below the baseline).
RANDOMIZATION_FAILED = {"siim": {"grad", "smoothgrad", "ig", "smooth_ig", "xrai"}, "rsna": {"ig", "xrai"}}


def paper_value(criterion: str, dataset: str, method: str):
    """The paper's value for one cell of the scorecard, or None."""
    if criterion == "utility":
        return AUPRC.get(dataset, {}).get(method)
    if criterion in SSIM:
        return SSIM[criterion].get(dataset, {}).get(method)
    if criterion == "randomization" and dataset in RANDOMIZATION_FAILED:
        return "fail" if method in RANDOMIZATION_FAILED[dataset] else "pass"
    return None
