"""Saliency Trust Explorer — Streamlit entry point: router and frame only."""
from __future__ import annotations

import streamlit as st

from trust_core.demo import workspace_path
from trust_core.errors import TrustError
from trust_core.saliency import PRESETS
from ui.common import access_gate, get_workspace, shared, shared_widget, workspace_root

st.set_page_config(page_title="Saliency Trust Explorer", page_icon="🩻", layout="wide")

PAGE_FILES = {  # file → page; the registry that the navigation and the page sweep test both read
    "scorecard.py": st.Page("pages/scorecard.py", title="Scorecard", icon="📋", default=True, url_path="scorecard"),
    "explorer.py": st.Page("pages/explorer.py", title="Image explorer", icon="🔎", url_path="explorer"),
    "randomization.py": st.Page("pages/randomization.py", title="Randomization", icon="🎲", url_path="randomization"),
    "metrics.py": st.Page("pages/metrics.py", title="Metrics", icon="📊", url_path="metrics"),
    "compare.py": st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    "upload.py": st.Page("pages/upload.py", title="Your own image", icon="📤", url_path="upload"),
    "report.py": st.Page("pages/report.py", title="Reports", icon="📄", url_path="reports"),
    "runs.py": st.Page("pages/runs.py", title="Runs", icon="▶️", url_path="runs"),
}
PAGES = list(PAGE_FILES.values())

access_gate()
with st.sidebar:
    st.markdown("### 🩻 Saliency Trust Explorer")
    shared_widget(st.text_input, "Workspace", "workspace", str(workspace_path()),
                  help="Folder built by `trust demo` (datasets, models, results); it must lie inside the "
                       "folders this app may read (TRUST_ROOTS)")
    root, refused = workspace_root()
    if refused:
        st.error(f"{refused} Showing {root} instead.")
    ws = get_workspace(root)
    kinds = ws.kinds or ["rsna"]
    shared_widget(st.selectbox, "Dataset", "dataset", kinds[0], options=kinds, format_func=str.upper)
    try:
        models = ws.classifiers(shared("dataset"))
    except TrustError as exc:
        st.error(f"{exc}")
        models = []
    if models:
        shared_widget(st.selectbox, "Model", "model", models[0], options=models)
    shared_widget(st.selectbox, "Preset", "preset", "fast", options=list(PRESETS),
                  format_func=lambda p: PRESETS[p].label)

navigation = st.navigation(PAGES)
goto = st.session_state.pop("_goto", None)
if goto in PAGE_FILES:  # a page asked for directly before the frame existed (see ui.common.ensure_frame)
    st.switch_page(PAGE_FILES[goto])
st.session_state["_frame"] = True
try:
    navigation.run()
except TrustError as exc:  # whatever page met a bad file: a message, never a traceback
    st.error(f"{exc}")
