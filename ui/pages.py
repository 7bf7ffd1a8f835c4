"""The app's page registry: one owner for the navigation (app.py) and the page sweeps of the tests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to the repository root
    title: str
    icon: str
    url_path: str
    default: bool = False

    @property
    def file(self) -> str:
        return Path(self.path).name


# Each page's url path is its file's name: Streamlit also routes the pages/ folder by file name on a first
# visit, before app.py declares the navigation, and a path that is no file's ("reports" for report.py) then
# showed "Page not found" over the page a deep link opened.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/scorecard.py", "Scorecard", "📋", "scorecard", default=True),
    PageSpec("pages/explorer.py", "Image explorer", "🔎", "explorer"),
    PageSpec("pages/randomization.py", "Randomization", "🎲", "randomization"),
    PageSpec("pages/metrics.py", "Metrics", "📊", "metrics"),
    PageSpec("pages/why.py", "Why it fails", "🧭", "why"),
    PageSpec("pages/compare.py", "Compare", "⚖️", "compare"),
    PageSpec("pages/upload.py", "Your own image", "📤", "upload"),
    PageSpec("pages/reports.py", "Reports", "📄", "reports"),
    PageSpec("pages/runs.py", "Runs", "▶️", "runs"),
)


ENTRY = "app.py"  # the router and frame every page runs inside
_FRAMED, _ASKED = "_frame", "_goto"  # session keys: the frame has run; the page asked for before it had


def through_frame(page_file: str) -> None:
    """A page that runs outside the frame (a fresh server asked for /page directly): remember it and go
    through :data:`ENTRY`, which opens it (:func:`take_asked_page`)."""
    import streamlit as st

    st.session_state[_ASKED] = Path(page_file).name
    st.switch_page(ENTRY)


def framed() -> bool:
    """Whether the frame has run in this session."""
    import streamlit as st

    return bool(st.session_state.get(_FRAMED))


def take_asked_page() -> str | None:
    """The file name of the page asked for before the frame existed, once (None when none was)."""
    import streamlit as st

    return st.session_state.pop(_ASKED, None)


def mark_framed() -> None:
    import streamlit as st

    st.session_state[_FRAMED] = True


def page(name: str) -> PageSpec:
    """A page by its url path (its file's name without .py): 'explorer', 'randomization'…"""
    for spec in PAGES:
        if spec.url_path == name:
            return spec
    raise KeyError(f"no page {name!r}; pages: {[p.url_path for p in PAGES]}")


def goto(name: str) -> None:
    """Open another page of the app by name (see :func:`page`)."""
    import streamlit as st

    st.switch_page(page(name).path)
