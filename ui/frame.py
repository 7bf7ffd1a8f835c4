"""The frame around every page: inside app.py, one error boundary, the preset note, the dataset opening."""
from __future__ import annotations

import contextlib

import streamlit as st

from trust_core.errors import TrustError
from trust_core.saliency import METHODS, PRESETS
from ui.pages import framed, through_frame
from ui.state import finding, kind, preset, workspace, workspace_root


def ensure_frame(page_file: str) -> None:
    """Pages run inside app.py's frame. A fresh server asked for /page directly may run the page file on
    its own (Streamlit's legacy pages/ routing) — then go through app.py, which returns here."""
    if not framed():
        through_frame(page_file)


def run_page(page_file: str, body) -> None:
    """Every page: inside the app's frame, and with one error boundary — a project error (a bad file,
    a bad checkpoint, a folder refused) is shown as a message a clinician can act on, never a traceback."""
    ensure_frame(page_file)
    with friendly_errors():
        body()


@contextlib.contextmanager
def friendly_errors():
    """Show project errors as a message a clinician can act on, never a traceback."""
    try:
        yield
    except TrustError as exc:
        st.error(redact(f"{exc}"))
        st.stop()
    except FileNotFoundError as exc:
        st.error(redact(f"Missing file: {exc}"))
        st.stop()


def redact(text: str) -> str:
    """``text`` with the image ids of the current dataset replaced by their pseudonyms (file names and
    messages carry them), unless the sidebar asks for identifiers. Without a usable pseudonym key the ids
    are blanked out and the key's problem is appended (never an unkeyed hash, never the ids)."""
    from trust_core.pseudonyms import pseudonymizer
    from ui.state import kind, shared, workspace

    if shared("identifiers", False) or not text:
        return text
    try:
        ids = workspace().dataset(kind()).ids()
    except Exception:  # no dataset to redact against (the message is about that)
        return text
    found = sorted((i for i in ids if i in text), key=len, reverse=True)
    if not found:
        return text
    problem = None
    try:
        name = pseudonymizer(workspace())
    except TrustError as exc:
        name, problem = (lambda _image_id: "img-?"), exc
    for image_id in found:
        text = text.replace(image_id, name(image_id))
    return text + (f" (images not named: {problem})" if problem else "")


def dataset_page(title: str, caption: str | None = None):
    """The opening of a page about one dataset's images: title, caption, the preset note, then the
    workspace and the sidebar's dataset (a clear message and a stop if they cannot be opened)."""
    st.title(title)
    if caption:
        st.caption(caption)
    preset_note()
    with friendly_errors():
        ws = workspace()
        return ws, ws.dataset(kind(), finding=finding())


def require_results():
    """The current dataset's evaluation summary, or a pointer to the Runs page."""
    results = workspace().results(kind(), finding())
    if results is None:
        stored = workspace().results_finding(kind())
        if stored and finding() and stored != finding():
            st.info(f"The {kind().upper()} results of this workspace are for **{stored}**: choose it as the "
                    f"finding in the sidebar, or evaluate {finding()} on the **Runs** page (its results then "
                    f"replace {stored}'s).")
        else:
            st.info(f"No evaluation results for {kind().upper()} yet: start one on the **Runs** page "
                    f"(or run `trust demo`).")
        st.stop()
    if results.get("preset") in PRESETS and not PRESETS[results["preset"]].paper:
        preset_note(results["preset"])  # what produced these results, with fast's measured distance
    return results


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
