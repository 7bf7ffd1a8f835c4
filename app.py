"""Saliency Trust Explorer — Streamlit entry point: router and frame only."""
from __future__ import annotations

import streamlit as st

from trust_core.demo import workspace_path

st.set_page_config(page_title="Saliency Trust Explorer", page_icon="🩻", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon="🏠", default=True),
]

with st.sidebar:
    st.markdown("### Saliency Trust Explorer")
    st.session_state.setdefault("workspace", str(workspace_path()))
    st.text_input("Workspace", key="workspace", help="Folder built by `trust demo` (datasets + models)")

st.navigation(PAGES).run()
