"""Saliency Trust Explorer core: data, models, saliency maps, trust metrics. Never imports streamlit."""
__version__ = "0.1.0"
