"""Saliency Trust Explorer — Streamlit entry point: router and frame only."""
from __future__ import annotations

import streamlit as st

from trust_core.layout import workspace_path
from trust_core.errors import TrustError
from trust_core.saliency import PRESETS
from ui.access import access_gate
from ui.byom import bring_your_own_model
from ui.state import get_workspace, jobs, shared, shared_widget, workspace_root
from ui.pages import PAGES as PAGE_SPECS, mark_framed, take_asked_page
from trust_core.saliency.registry import FAST_PRESET

st.set_page_config(page_title="Saliency Trust Explorer", page_icon="🩻", layout="wide")

PAGE_FILES = {spec.file: st.Page(spec.path, title=spec.title, icon=spec.icon, default=spec.default,
                                 url_path=spec.url_path) for spec in PAGE_SPECS}  # file name → page

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
    findings = ws.findings(shared("dataset"))
    if findings:  # NIH, VinDr, CheXlocalize: one finding at a time (its results first)
        shared_widget(st.selectbox, "Finding", "finding", findings[0], options=findings,
                      help="the finding whose boxes or masks are the ground truth; positives are the films "
                           "with it localized, negatives the dataset's clean films")
    try:
        models = ws.classifiers(shared("dataset"))
    except TrustError as exc:
        st.error(f"{exc}")
        models = []
    if models:
        shared_widget(st.selectbox, "Model", "model", models[0], options=models)
    bring_your_own_model(ws)
    shared_widget(st.selectbox, "Preset", "preset", FAST_PRESET, options=list(PRESETS),
                  format_func=lambda p: PRESETS[p].label)
    shared_widget(st.toggle, "Show patient identifiers", "identifiers", False,
                  help="Off: images are named by pseudonyms (img-…) on every page and in every export, as in "
                       "the reports. On: the dataset's own ids (patientId, SOPInstanceUID) and, in reports, the "
                       "DICOM identifiers.")

    @st.fragment(run_every=3.0)
    def busy() -> None:
        """A global indicator of the evaluations this server is running (any session's)."""
        running = [j for j in jobs().list() if j.status in ("queued", "running")]
        if running:
            st.info(" · ".join(f"⏳ {j.label}: {j.done}/{j.total} units" for j in running), icon="⏳")
    busy()

navigation = st.navigation(list(PAGE_FILES.values()))
goto = take_asked_page()
if goto in PAGE_FILES:  # a page asked for directly before the frame existed (see ui.frame.ensure_frame)
    st.switch_page(PAGE_FILES[goto])
mark_framed()
try:
    navigation.run()
except TrustError as exc:  # whatever page met a bad file: a message, never a traceback
    st.error(f"{exc}")
