"""Widgets the pages share: the image picker, method labels, image panels."""
from __future__ import annotations

import numpy as np
import streamlit as st

from trust_core.report import overlay
from trust_core.saliency import METHODS
from ui.state import shared, shared_widget


def image_picker(ids: list[str], dataset) -> str:
    """The image selector every page shares (the current image follows you across pages)."""
    current = shared("image_id")
    options = sorted(set(ids) | ({current} if current in dataset else set()))
    return shared_widget(st.selectbox, "Image", "image_id", options[0], options=options)


def method_label(key: str) -> str:
    return METHODS[key].label


def panel(image01: np.ndarray, saliency: np.ndarray | None, *, mask=None, caption: str = "", **kwargs) -> None:
    st.image(overlay(image01, saliency, mask=mask, **kwargs), caption=caption, width="stretch")
