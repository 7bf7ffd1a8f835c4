"""Image explorer: a gallery sorted by worst cases; one image in the viewer with every map, in sync."""
import streamlit as st

from trust_core.saliency import METHODS
from trust_core.workspace import GALLERY_ORDERS
from ui.frame import dataset_page, friendly_errors, run_page
from ui.measures import POINTING_HELP
from ui.state import finding, kind, model_name, open_image, preset, shared, shared_widget
from ui.viewer import film_for, map_panel, show, sync, truth_payload
from ui.widgets import (extended_toggle, id_namer, image_picker, method_label, number_columns, prediction_line,
                        shown_methods)


def measurements(result, methods, mask):
    """Per method, on this image: AUPRC, energy inside the ground truth, pointing-game hit (flagged maps: —)."""
    import pandas as pd

    from ui.measures import localization_measures

    rows = [{"method": method_label(key), **localization_measures(result, key, 0, mask),
             "note": result.flags[key][0] or ""} for key in methods]
    return pd.DataFrame(rows)


def render() -> None:
    ws, dataset = dataset_page("Image explorer")
    extended_toggle()
    order = shared("gallery_order", list(GALLERY_ORDERS)[0])
    with friendly_errors():
        gallery = ws.gallery(kind(), order if order in GALLERY_ORDERS else list(GALLERY_ORDERS)[0], finding=finding(),
                             model=model_name())

    if gallery is not None:
        # the gallery folded by default: the film and its maps open in view; the keyboard (← →) and the image
        # picker step through the gallery's order
        with st.expander(f"Gallery: {len(gallery)} evaluated images, {model_name()}'s maps, {order} — click a row "
                         f"to open it"):
            # (the radio's callback keeps the order before the rerun: the gallery above is already in it)
            order = shared_widget(st.radio, "Sort", "gallery_order", list(GALLERY_ORDERS)[0],
                                  options=list(GALLERY_ORDERS), horizontal=True)
            shown = gallery.rename(columns={k: method_label(k) for k in METHODS})  # labels, never raw keys
            shown_as = id_namer()  # pseudonyms (the workspace's key) unless identifiers are asked for
            shown.index = [shown_as(i) for i in shown.index]
            shown.index.name = "image"
            # (an image outside the randomization cohort has no SSIM: a dash, not "None")
            event = st.dataframe(shown, placeholder="—", on_select="rerun", selection_mode="single-row",
                                 column_config=number_columns(shown),
                                 key="gallery", width="stretch", height=220)
        rows = event.selection.rows
        chosen = (order, rows[0]) if rows else None
        if chosen and chosen != st.session_state.get("_gallery_chosen") and rows[0] < len(gallery):
            open_image(gallery.index[rows[0]])  # a new click, not a kept selection
        st.session_state["_gallery_chosen"] = chosen
        ids = list(gallery.index)
    else:
        ids = dataset.ids(split="test", label=1)
        if ws.results_config(kind()) is not None:
            ran = ws.results_model_index(kind(), model_name()) is not None
            st.caption(f"No gallery: the stored evaluation " + ("scored no maps of " if ran else "did not run ")
                       + f"{model_name()} on its utility images; its maps are computed here for the positive test "
                         f"films.")

    if not ids:
        st.info("No positive test image in this dataset.")
        st.stop()
    viewer(ws, dataset, ids)


@st.fragment
def viewer(ws, dataset, ids) -> None:
    """The image, its maps and the controls: a fragment, so that choosing an image or a class reruns this
    part only. Everything else (window, opacity, colormap, method, zoom) runs in the browser viewer."""
    image_id = image_picker(ids, dataset, viewer="explorer_viewer")
    with friendly_errors():
        output = ws.prediction(kind(), image_id, model_name(), finding=finding())
    choices = [f"predicted ({ws.class_name(model_name(), output['predicted'])})"] + [
        f"{c}: {ws.class_name(model_name(), c)}" for c in range(len(output["scores"]))]
    left, right = st.columns([3, 2])
    with right:  # which class the maps explain: the predicted one (the paper's choice) or any other
        target = shared_widget(st.selectbox, "Explain class", "explain_target", choices[0], options=choices,
                               help="The paper explained the predicted class; any other class can be explained")
    overrides = {} if target == choices[0] else {"target": int(target.split(":")[0])}
    methods = shown_methods()
    with friendly_errors(), st.spinner("Computing maps (cached after the first time)…"):
        result = ws.maps(kind(), [image_id], model_name(), methods=methods, preset=preset(), finding=finding(),
                         **overrides)
    size = result[methods[0]].shape[1]
    framing = ws.framing(model_name())  # the part of the film under the model's maps
    mask = dataset.mask(image_id, size, framing)
    measured = measurements(result, methods, mask) if mask.any() else None  # once: panels and table
    scores = dict(zip(methods, measured["AUPRC"])) if measured is not None else {}
    with left:  # what the maps explain, above them
        prediction_line(ws, dataset, image_id, model_name(), int(result.targets[0]), output)
    with friendly_errors():
        film = film_for(dataset, image_id, framing)
    panels = []
    for key in methods:
        score = scores.get(key)
        score = None if score is None or score != score else score  # NaN: a flagged map
        panels.append(map_panel(key, method_label(key), result[key][0], flag=result.flags[key][0],
                                caption=f"AUPRC {score:.3f}" if score is not None else ""))
    sync("explorer_viewer")  # what the viewer sent last, before reading it
    kept = shared("explorer_method", methods[0])
    st.caption("Drag to pan, wheel to zoom (all panels together), right- or shift-drag for window/level; click a "
               "small panel to show it large; ⌨ keys lists the shortcuts. Map values are normalized to [0, 1].")
    show(film, panels, truth=truth_payload(dataset, image_id, framing, film["shape"]), layout="explorer",
         method=kept if kept in methods else methods[0], key="explorer_viewer", height=640)

    if measured is not None:
        st.subheader("Measurements")
        boxes = dataset.boxes(image_id, None, framing)
        native = dataset.native_shape(image_id)
        st.caption("Ground truth: " + (", ".join(f"box {k + 1}: {b.width:.0f} × {b.height:.0f} px "
                                                 f"({100 * b.width * b.height / (native[0] * native[1]):.1f} % of "
                                                 f"the film)" for k, b in enumerate(boxes))
                                       if boxes else f"mask, {100 * mask.mean():.1f} % of the film")
                   + ". Per method: AUPRC, the share of the map's mass inside the ground truth (energy pointing "
                     "game) and the pointing hit — " + POINTING_HELP + ". A flagged map has none (—).")
        if overrides:
            st.warning(f"These are the maps of class {target}, chosen above: the evaluation scored the maps of "
                       f"the predicted class, so these values differ from the Scorecard's and the Metrics page's.")
        st.dataframe(measured, hide_index=True, width="stretch", placeholder="—", column_config=number_columns(measured))
    dicom_header(dataset, image_id)


def dicom_header(dataset, image_id: str) -> None:
    """The film's DICOM header, identifying elements hidden unless the sidebar asks for identifiers."""
    from trust_core.data.images import IMAGE_SUFFIXES

    path = dataset.record(image_id).path
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return  # a PNG or JPEG film has no header
    identifiers = bool(shared("identifiers", False))
    with st.expander("DICOM header"):
        with friendly_errors():
            rows, hidden = _header(str(path), path.stat().st_mtime, identifiers)
            st.dataframe(rows, hide_index=True, width="stretch", height=320)
            st.caption(f"{hidden} identifying elements hidden (names, dates, times, UIDs, private elements): the "
                       "sidebar's “Show patient identifiers” shows them." if hidden else
                       "Every element shown" + (" (identifiers asked for in the sidebar)." if identifiers else "."))


@st.cache_data(show_spinner=False, max_entries=64)
def _header(path: str, mtime: float, identifiers: bool):
    from trust_core.data.dicom import header_elements

    return header_elements(path, include_identifiers=identifiers)


run_page(__file__, render)
