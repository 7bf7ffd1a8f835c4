"""Image explorer: a gallery sorted by worst cases; one image with any map over it; all eight maps."""
import streamlit as st

from trust_core.data import read_dicom
from trust_core.data.transforms import crop
from trust_core.errors import DicomError
from trust_core.metrics import auprc
from trust_core.report import COLORMAPS
from trust_core.workspace import GALLERY_ORDERS
from ui.frame import dataset_page, friendly_errors, redact, run_page
from trust_core.saliency import METHODS
from ui.state import finding, kind, model_name, preset, shared, shared_widget
from ui.widgets import extended_toggle, image_picker, method_label, panel, shown_id, shown_methods


def window_sliders(film: str, lo: float, hi: float) -> tuple[float, float]:
    """Window level and width over the film's stored values, in whole steps; kept across images as fractions
    of the value range (a window chosen on one film opens the next alike)."""
    span = max(hi - lo, 1.0)
    if st.session_state.get("_window_film") != (film, lo, hi) or "window_level" not in st.session_state:
        fc, fw = shared("window_center", 0.5), shared("window_width", 1.0)  # a new film: the kept window
        st.session_state["window_level"] = float(min(hi, max(lo, round(lo + fc * span))))
        st.session_state["window_width"] = float(min(span + 1, max(1.0, round(fw * span))))
        st.session_state["_window_film"] = (film, lo, hi)
    center = st.slider("Window level", lo, hi, step=1.0, key="window_level")
    width = st.slider("Window width", 1.0, span + 1, step=1.0, key="window_width")
    st.session_state["_window_center"] = (center - lo) / span
    st.session_state["_window_width"] = width / span
    return center, width


def measurements(result, methods, mask):
    """Per method, on this image: AUPRC, energy inside the ground truth, pointing-game hit (flagged maps: —)."""
    import pandas as pd

    from trust_core.metrics import extra

    rows = []
    for key in methods:
        values = result[key][0]
        ok = result.flags[key][0] is None
        rows.append({"method": method_label(key), "AUPRC": auprc(values, mask) if ok else None,
                     "mass inside GT": float(extra.energy_pointing_game(values[None], mask[None])[0]) if ok else None,
                     "pointing hit": float(extra.pointing_game(values[None], mask[None])[0]) if ok else None,
                     "note": result.flags[key][0] or ""})
    return pd.DataFrame(rows).round(3)


def render() -> None:
    ws, dataset = dataset_page("Image explorer")
    extended_toggle()
    order = shared_widget(st.radio, "Sort", "gallery_order", list(GALLERY_ORDERS)[0], options=list(GALLERY_ORDERS),
                          horizontal=True)
    with friendly_errors():
        gallery = ws.gallery(kind(), order, finding=finding())

    if gallery is not None:
        shown = gallery.round(3).rename(columns={k: method_label(k) for k in METHODS})  # labels, never raw keys
        shown.index = [shown_id(i) for i in shown.index]  # pseudonyms unless identifiers are asked for
        shown.index.name = "image"
        event = st.dataframe(shown, on_select="rerun", selection_mode="single-row", key="gallery",
                             width="stretch", height=220)
        rows = event.selection.rows
        chosen = (order, rows[0]) if rows else None
        if chosen and chosen != st.session_state.get("_gallery_chosen") and rows[0] < len(gallery):
            st.session_state["_image_id"] = gallery.index[rows[0]]  # a new click, not a kept selection
        st.session_state["_gallery_chosen"] = chosen
        ids = list(gallery.index)
    else:
        ids = dataset.ids(split="test", label=1)

    if not ids:
        st.info("No positive test image in this dataset.")
        st.stop()
    viewer(ws, dataset, ids)


@st.fragment
def viewer(ws, dataset, ids) -> None:
    """The image, its maps and the controls: a fragment, so that a control reruns this part only (not the
    sidebar, the gallery and the rest of the page: what the user waits for)."""
    image_id = image_picker(ids, dataset)

    left, right = st.columns([2, 1])
    with right:
        methods = shown_methods()
        # every setting is kept across pages and images (a click elsewhere may set the method)
        method = shared_widget(st.selectbox, "Method", "explorer_method", methods[0], options=methods,
                               format_func=method_label)
        opacity = shared_widget(st.slider, "Opacity", "opacity", 0.5, min_value=0.0, max_value=1.0, step=0.05)
        cmap = shared_widget(st.selectbox, "Colormap", "colormap", COLORMAPS[0], options=list(COLORMAPS))
        modes = ["all values", "above threshold", "top k %"]
        mode = shared_widget(st.radio, "Show", "show_mode", modes[0], options=modes, horizontal=True)
        threshold = (shared_widget(st.slider, "Threshold", "threshold", 0.5, min_value=0.0, max_value=1.0, step=0.05)
                     if mode == "above threshold" else None)
        top = (shared_widget(st.slider, "Top k %", "top_percent", 10, min_value=1, max_value=50)
               if mode == "top k %" else None)
        record = dataset.record(image_id)
        display = None
        if record.path.suffix.lower() in (".dcm", ".dicom"):
            try:
                dicom = read_dicom(record.path)
                lo, hi = (float(v) for v in dicom.value_range)
                center, width = window_sliders(image_id, lo, hi)
                display = dicom.windowed(center, width)
            except DicomError as exc:
                st.error(redact(str(exc)))

    with friendly_errors():
        output = ws.prediction(kind(), image_id, model_name(), finding=finding())
    with right:  # which class the maps explain: the predicted one (the paper's choice) or any other
        choices = [f"predicted ({ws.class_name(model_name(), output['predicted'])})"] + [
            f"{c}: {ws.class_name(model_name(), c)}" for c in range(len(output["scores"]))]
        target = shared_widget(st.selectbox, "Explain class", "explain_target", choices[0], options=choices,
                               help="The paper explained the predicted class; any other class can be explained")
    overrides = {} if target == choices[0] else {"target": int(target.split(":")[0])}
    with friendly_errors(), st.spinner("Computing maps (cached after the first time)…"):
        result = ws.maps(kind(), [image_id], model_name(), methods=methods, preset=preset(), finding=finding(),
                         **overrides)
    explained = int(result.targets[0])
    label = ws.class_name(model_name(), explained)
    kind_of_score = "probability" if output["activation"] != "logits" else "logit"
    size = result[method].shape[1]
    framing = ws.framing(model_name())  # the part of the film under the model's maps
    mask = dataset.mask(image_id, size, framing)
    image = crop(display if display is not None else dataset.native_image(image_id), framing)
    with left:  # what the maps explain, above them
        st.caption(f"Maps explain class {explained} — **{label}** (the model's {kind_of_score} "
                   f"{output['scores'][explained]:.2f}; predicted: {ws.class_name(model_name(), output['predicted'])})")
        if output["activation"] == "softmax" and label == "no finding":
            st.warning("These maps explain **no finding**: the model predicts this film negative, so its maps "
                       "show what argues against the finding, not where it is. The paper explained the predicted "
                       "class too; read them with that in mind.", icon="⚠️")
        flag = result.flags[method][0]
        if flag:
            st.warning(f"{method_label(method)}: {flag}")
        panel(image, result[method][0], mask=mask, alpha=opacity, cmap=cmap, threshold=threshold, top_percent=top,
              caption=f"{method_label(method)} over the X-ray; ground truth in cyan (label {dataset.label(image_id)})",
              size=512)

    measured = measurements(result, methods, mask) if mask.any() else None  # once: captions and table
    scores = dict(zip(methods, measured["AUPRC"])) if measured is not None else {}
    st.subheader(f"All {len(methods)} methods" + ("" if len(methods) == 8 else " (the paper's eight and beyond)"))
    cols = st.columns(4)
    for k, key in enumerate(methods):
        values = result[key][0]
        score = scores.get(key)
        score = None if score is None or score != score else score  # NaN: a flagged map
        with cols[k % 4]:
            panel(image, values, mask=mask, alpha=opacity, cmap=cmap, threshold=threshold, top_percent=top,
                  caption=f"{method_label(key)} · AUPRC {score:.3f}" if score is not None else method_label(key))

    if measured is not None:
        st.subheader("Measurements")
        boxes = dataset.boxes(image_id, None, framing)
        native = dataset.native_shape(image_id)
        st.caption("Ground truth: " + (", ".join(f"box {k + 1}: {b.width:.0f} × {b.height:.0f} px "
                                                 f"({100 * b.width * b.height / (native[0] * native[1]):.1f} % of "
                                                 f"the film)" for k, b in enumerate(boxes))
                                       if boxes else f"mask, {100 * mask.mean():.1f} % of the film")
                   + ". Per method: AUPRC, the share of the map's mass inside the ground truth (energy pointing "
                     "game) and whether its maximum lies inside it (pointing game; tied maxima count by their "
                     "share inside).")
        st.dataframe(measured, hide_index=True, width="stretch")


run_page(__file__, render)
