"""Choices shared by every page (workspace, dataset, model, preset) and the workspace resource."""
from __future__ import annotations

import streamlit as st

from trust_core.access import AccessError, confine, configured_roots
from trust_core.data.kinds import MULTI_FINDING
from trust_core.workspace import Workspace
from trust_core.saliency.registry import FAST_PRESET


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


def finding() -> str | None:
    """The finding chosen for a multi-finding dataset (NIH, VinDr, CheXlocalize); None for the others."""
    return shared("finding") if kind() in MULTI_FINDING else None


def model_name() -> str:
    """The classifier chosen in the sidebar; without one the page says what to do and stops."""
    name = shared("model")
    if not name:
        st.info(f"No classifier for {kind().upper()} in this workspace: run `trust demo`, or train one with "
                f"`trust train` into its models/ folder.")
        st.stop()
    return name


def preset() -> str:
    return shared("preset", FAST_PRESET)


@st.cache_resource
def jobs():
    """The job manager of this server process (every session's runs)."""
    from trust_core.evaluate.jobs import JobManager

    return JobManager()


# -- hand-offs between pages: what one page asks another to open ------------------------------------------
def set_shared(name: str, value) -> None:
    """Set a shared choice (see :func:`shared`)."""
    st.session_state[f"_{name}"] = value


def open_image(image_id: str | None = None, method: str | None = None) -> None:
    """Make ``image_id`` the image every page shows and ``method`` the explorer's method (None: unchanged).
    A scored point opens the maps that were scored: the explorer's class goes back to its default, the
    predicted class (a class chosen for another image would show other maps than the score clicked)."""
    if image_id is not None:
        set_shared("image_id", image_id)
        st.session_state.pop("_explain_target", None)
    if method is not None:
        set_shared("explorer_method", method)


def focus_randomization(method: str, frame: int) -> None:
    """Ask the randomization page to show ``method`` at cascade state ``frame`` (once: a new token each time)."""
    import time

    set_shared("rand_focus", {"method": method, "frame": frame, "token": time.time()})


def take_randomization_focus() -> dict | None:
    """What another page asked the randomization page to show (consumed)."""
    return st.session_state.pop("_rand_focus", None)


def focus_metrics(criterion: str) -> None:
    """Ask the metrics page to show ``criterion`` first."""
    set_shared("metrics_focus", criterion)
