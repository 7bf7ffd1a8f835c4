"""When and why a saliency method fails: lesion geometry, model confidence and a human ceiling
(CheXlocalize's analyses, Saporta et al. 2022), on an evaluation's own results; figures for a paper."""
from .analyze import ANALYSIS_FILE, Analysis, analyze, read_analysis, write_analysis
from .geometry import FEATURE_LABELS, FEATURES, Geometry, lesion_geometry

__all__ = ["ANALYSIS_FILE", "Analysis", "FEATURES", "FEATURE_LABELS", "Geometry", "analyze", "lesion_geometry",
           "read_analysis", "write_analysis"]
