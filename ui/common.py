"""Shared UI state: the workspace resource, sidebar choices, error display, image panels."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import streamlit as st

from trust_core.access import AccessError, confine, configured_roots, serving_policy, user_allowed
from trust_core.errors import TrustError
from trust_core.report import overlay
from trust_core.saliency import METHODS, PRESETS
from trust_core.workspace import Workspace


def ensure_frame(page_file: str) -> None:
    """Pages run inside app.py's frame. A fresh server asked for /page directly may run the page file on
    its own (Streamlit's legacy pages/ routing) — then go through app.py, which returns here."""
    if not st.session_state.get("_frame"):
        st.session_state["_goto"] = Path(page_file).name
        st.switch_page("app.py")


def run_page(page_file: str, body) -> None:
    """Every page: inside the app's frame, and with one error boundary — a project error (a bad file,
    a bad checkpoint, a folder refused) is shown as a message a clinician can act on, never a traceback."""
    ensure_frame(page_file)
    with friendly_errors():
        body()


@st.cache_resource(show_spinner=False)
def get_workspace(root: str) -> Workspace:
    """One workspace (models, cache) for all sessions; its models are never mutated."""
    return Workspace(root)


def shared(name: str, default=None):
    """A choice shared by all pages (kept outside widget state, which Streamlit drops on page change)."""
    return st.session_state.get(f"_{name}", default)


def shared_widget(widget, label: str, name: str, default, **kwargs):
    """Render ``widget`` bound to the shared choice ``name`` (see :func:`shared`)."""
    store = f"_{name}"
    st.session_state.setdefault(store, default)
    options = kwargs.get("options")
    if options is not None and st.session_state[store] not in options and len(options):
        st.session_state[store] = options[0]
    st.session_state[name] = st.session_state[store]

    def remember():
        st.session_state[store] = st.session_state[name]

    return widget(label, key=name, on_change=remember, **kwargs)


def access_gate() -> None:
    """Refuse to serve beyond this machine without authentication; ask visitors to log in when set."""
    try:
        auth_configured = "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        auth_configured = False
    decision = serving_policy(st.get_option("server.address"), auth=os.environ.get("TRUST_AUTH"),
                              auth_configured=auth_configured, allowed_users=os.environ.get("TRUST_ALLOWED_USERS"))
    if not decision.allowed:
        st.error(f"🔒 {decision.message}")
        st.stop()
    if decision.login_required:
        if not st.user.get("is_logged_in", False):
            st.info(decision.message)
            st.button("Log in", on_click=st.login, type="primary")
            st.stop()
        if not user_allowed(decision, st.user.get("email")):
            st.error("🔒 Your account is not on this app's list of users (TRUST_ALLOWED_USERS).")
            st.button("Log out", on_click=st.logout)
            st.stop()


def workspace_root() -> tuple[str, str | None]:
    """The workspace folder to use — the one chosen, if inside the configured roots — and why not."""
    from trust_core.layout import workspace_path

    default = workspace_path()
    roots = configured_roots(default)
    try:
        return str(confine(shared("workspace") or default, roots)), None
    except AccessError as exc:
        fallback = default.resolve() if any(default.resolve().is_relative_to(r) for r in roots) else roots[0]
        return str(fallback), str(exc)


def workspace() -> Workspace:
    return get_workspace(workspace_root()[0])


def kind() -> str:
    return shared("dataset", "rsna")


def model_name() -> str:
    """The classifier chosen in the sidebar; without one the page says what to do and stops."""
    name = shared("model")
    if not name:
        st.info(f"No classifier for {kind().upper()} in this workspace: run `trust demo`, or train one with "
                f"`trust train` into its models/ folder.")
        st.stop()
    return name


def preset() -> str:
    return shared("preset", "fast")


def image_picker(ids: list[str], dataset) -> str:
    """The image selector every page shares (the current image follows you across pages)."""
    current = shared("image_id")
    options = sorted(set(ids) | ({current} if current in dataset else set()))
    return shared_widget(st.selectbox, "Image", "image_id", options[0], options=options)


def preset_note(name: str | None = None) -> None:
    """Say which preset produced what is on screen, loudly when it is not the paper's, with how far
    ``fast`` was measured from the paper's preset on this workspace (``trust bench presets``)."""
    p = PRESETS[name or preset()]
    if p.paper:
        st.caption(f"Preset **{p.label}**: {p.description}")
    else:
        st.warning(f"Preset **{p.label}** — {p.description} {fast_distance_text(workspace_root()[0])}", icon="⚠️")


def fast_distance_text(root) -> str:
    """One sentence on the measured distance of ``fast`` from ``arun2021`` (or how to measure it)."""
    from trust_core.bench_presets import read_preset_fidelity

    figures = read_preset_fidelity(root)
    if not figures or figures.get("fast_min_ssim") is None or figures.get("verdict_agreement") is None:
        return "Its distance from the paper's preset is not measured here yet: run `trust bench presets`."
    per_method = figures.get("per_method_ssim") or {}
    worst = min(per_method, key=lambda m: per_method[m] if per_method[m] is not None else 2.0) if per_method else None
    label = METHODS[worst].label if worst in METHODS else worst
    return (f"Measured on this workspace: its maps' SSIM to the paper preset's is {figures['fast_min_ssim']:.2f} at "
            f"worst ({label}), and {100 * figures['verdict_agreement']:.0f} % of verdicts agree.")


@contextlib.contextmanager
def friendly_errors():
    """Show project errors as a message a clinician can act on, never a traceback."""
    try:
        yield
    except TrustError as exc:
        st.error(f"{exc}")
        st.stop()
    except FileNotFoundError as exc:
        st.error(f"Missing file: {exc}")
        st.stop()


def dataset_page(title: str, caption: str | None = None):
    """The opening of a page about one dataset's images: title, caption, the preset note, then the
    workspace and the sidebar's dataset (a clear message and a stop if they cannot be opened)."""
    st.title(title)
    if caption:
        st.caption(caption)
    preset_note()
    with friendly_errors():
        ws = workspace()
        return ws, ws.dataset(kind())


def method_label(key: str) -> str:
    return METHODS[key].label


def panel(image01: np.ndarray, saliency: np.ndarray | None, *, mask=None, caption: str = "", **kwargs) -> None:
    st.image(overlay(image01, saliency, mask=mask, **kwargs), caption=caption, width="stretch")


def require_results():
    """The current dataset's evaluation summary, or a pointer to the Runs page."""
    results = workspace().results(kind())
    if results is None:
        st.info(f"No evaluation results for {kind().upper()} yet: start one on the **Runs** page "
                f"(or run `trust demo`).")
        st.stop()
    if results.get("preset") in PRESETS and not PRESETS[results["preset"]].paper:
        preset_note(results["preset"])  # what produced these results, with fast's measured distance
    return results
