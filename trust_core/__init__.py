"""Saliency Trust Explorer core: data, models, saliency maps, trust metrics. Never imports streamlit."""
from .saliency import METHODS, PRESETS, explain

__version__ = "0.1.0"
__all__ = ["METHODS", "PRESETS", "explain", "__version__"]
