"""Image explorer: a gallery sorted by worst cases; one image with any map over it; all eight maps."""
import streamlit as st

from trust_core.data import read_dicom
from trust_core.data.transforms import crop
from trust_core.errors import DicomError
from trust_core.metrics import auprc
from trust_core.report import COLORMAPS
from trust_core.workspace import GALLERY_ORDERS
from ui.frame import dataset_page, friendly_errors, run_page
from ui.state import finding, kind, model_name, preset
from trust_core.saliency import METHODS
from ui.widgets import extended_toggle, image_picker, method_label, panel, shown_methods


def render() -> None:
    ws, dataset = dataset_page("Image explorer")
    extended_toggle()
    order = st.radio("Sort", list(GALLERY_ORDERS), horizontal=True)
    with friendly_errors():
        gallery = ws.gallery(kind(), order, finding=finding())

    if gallery is not None:
        shown = gallery.round(3).rename(columns={k: method_label(k) for k in METHODS})  # labels, never raw keys
        event = st.dataframe(shown, on_select="rerun", selection_mode="single-row", key="gallery",
                             width="stretch", height=220)
        if event.selection.rows:
            st.session_state["_image_id"] = gallery.index[event.selection.rows[0]]
        ids = list(gallery.index)
    else:
        ids = dataset.ids(split="test", label=1)

    if not ids:
        st.info("No positive test image in this dataset.")
        st.stop()
    image_id = image_picker(ids, dataset)

    left, right = st.columns([2, 1])
    with right:
        methods = shown_methods()
        method = st.selectbox("Method", methods, format_func=method_label, key="explorer_method")
        opacity = st.slider("Opacity", 0.0, 1.0, 0.5, 0.05)
        cmap = st.selectbox("Colormap", COLORMAPS)
        mode = st.radio("Show", ["all values", "above threshold", "top k %"], horizontal=True)
        threshold = st.slider("Threshold", 0.0, 1.0, 0.5, 0.05) if mode == "above threshold" else None
        top = st.slider("Top k %", 1, 50, 10) if mode == "top k %" else None
        record = dataset.record(image_id)
        display = None
        if record.path.suffix.lower() in (".dcm", ".dicom"):
            try:
                dicom = read_dicom(record.path)
                lo, hi = dicom.value_range
                center = st.slider("Window level", float(lo), float(hi), float((lo + hi) / 2))
                width = st.slider("Window width", 1.0, float(hi - lo + 1), float(hi - lo + 1))
                display = dicom.windowed(center, width)
            except DicomError as exc:
                st.error(str(exc))

    with friendly_errors(), st.spinner("Computing maps (cached after the first time)…"):
        result = ws.maps(kind(), [image_id], model_name(), methods=methods, preset=preset(), finding=finding())
    explained = int(result.targets[0])
    with friendly_errors():
        output = ws.prediction(kind(), image_id, model_name(), finding=finding())
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

    st.subheader(f"All {len(methods)} methods" + ("" if len(methods) == 8 else " (the paper's eight and beyond)"))
    cols = st.columns(4)
    for k, key in enumerate(methods):
        values = result[key][0]
        score = auprc(values, mask) if mask.any() and result.flags[key][0] is None else None
        with cols[k % 4]:
            panel(image, values, mask=mask, alpha=opacity, cmap=cmap, threshold=threshold, top_percent=top,
                  caption=f"{method_label(key)} · AUPRC {score:.3f}" if score is not None else method_label(key))


run_page(__file__, render)
