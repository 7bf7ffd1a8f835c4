"""Your own image: upload a DICOM or PNG (or use the built-in real chest film) and see its maps."""
from pathlib import Path

import streamlit as st

from trust_core.data import DicomImage, read_dicom
from trust_core.prose import explained_sentence, negative_class_warning
from trust_core.data.images import UPLOAD_SUFFIXES, decode_upload
from trust_core.errors import TrustError
from trust_core.saliency import resolve_methods
from ui.frame import friendly_errors, preset_note, run_page
from ui.state import model_name, preset, shared, workspace
from ui.viewer import film_of, map_panel, show, sync
from ui.widgets import extended_toggle, method_label, shown_methods


def render() -> None:
    MAX_BYTES = int(st.get_option("server.maxUploadSize")) * 2**20  # the server refuses more; we re-check

    st.title("Your own image")
    st.caption("DICOM (any transfer syntax pydicom decodes), PNG or JPEG. Nothing leaves this machine; patient "
               "identifiers are not shown.")
    preset_note()
    upload = None
    source = st.radio("Image", ["Upload a file", "Example: real chest film RG1_UNCR (pydicom-data)"], horizontal=True)
    try:
        if source.startswith("Upload"):
            # Any type is accepted here so that a wrong file gets our explanation, not a bare refusal.
            upload = st.file_uploader(f"DICOM, PNG or JPEG ({', '.join(UPLOAD_SUFFIXES)})")
            hidden = not shared("identifiers", False)  # a file's name is often a patient or accession number:
            if hidden:  # the uploader's chip (its text, tooltip and labels all carry it) is not drawn at all
                st.html("<style>[data-testid='stFileChip']{display:none}</style>")
            if upload is None:
                st.stop()
            if hidden:
                st.caption(f"Uploaded: a file of {upload.size / 1024:,.0f} KB (its name is hidden: the sidebar's "
                           f"“Show patient identifiers” shows it; upload another file to replace it).")
            decoded = decode_upload(upload.name, upload.getvalue(), max_bytes=MAX_BYTES)
        else:
            from pydicom.data import get_testdata_file
            decoded = read_dicom(Path(get_testdata_file("RG1_UNCR.dcm")))
    except TrustError as exc:
        said = str(exc)
        if upload is not None and not shared("identifiers", False):  # the file's name, said as such
            said = f"the uploaded file: {exc.reason}" if exc.path else said.replace(upload.name, "the uploaded file")
        st.error(f"This file cannot be used: {said}")
        st.stop()
    image = decoded.pixels if isinstance(decoded, DicomImage) else decoded  # display-ready, [0, 1]

    extended_toggle()
    methods = st.multiselect("Methods", shown_methods(), default=resolve_methods("paper"), format_func=method_label,
                             help="Score-CAM and Occlusion cost many forward passes on a large model")
    st.caption(f"Model: **{model_name()}** (choose another in the sidebar)")
    if not methods:
        st.stop()
    with friendly_errors(), st.spinner("Computing maps (cached for this image)…"):
        result = workspace().maps_for_image(image, model_name(), methods=methods, preset=preset())
    with friendly_errors():
        typical = workspace().typicality(image, model_name())
        output = workspace().prediction_for_image(image, model_name())
    target = int(result.targets[0])
    st.success(explained_sentence(output, target, lambda k: workspace().class_name(model_name(), k)) + "; "
               + ("from the cache" if all(all(v) for v in result.from_cache.values())
                  else f"{result.passes} forward+backward passes"))
    negative = workspace().negative_class(model_name(), len(output["scores"]), output["activation"])
    if target == negative:
        st.warning(negative_class_warning(target, workspace().class_name(model_name(), target),
                                          predicted_negative=output["predicted"] == negative), icon="⚠️")
    if typical and typical["unlike"]:
        st.warning(f"This image is **unlike the model's training films** ({typical['dataset'].upper()} of this "
                   f"workspace): its intensity histogram lies {typical['distance']:.2f} from theirs (Jensen–Shannon), "
                   f"farther than any of {typical['films']} training films (at most {typical['largest_training']:.2f}). "
                   "A model trained on other films (the demo's: one film's anatomy, varied, or synthetic phantoms) "
                   "is outside what it learned here: its prediction and maps say little about this film.", icon="⚠️")
    elif typical is None:
        st.caption("This model's training films are not in the workspace: whether this image resembles them is "
                   "not checked.")
    framing = workspace().framing(model_name())  # the part of the film under the maps
    panels = [map_panel(m, method_label(m), result[m][0], flag=result.flags[m][0]) for m in methods]
    sync("upload_viewer")  # what the viewer sent last, before reading it
    kept = shared("explorer_method")
    show(film_of(decoded, framing), panels, truth={"boxes": [], "contours": []}, layout="explorer",
         method=kept if kept in methods else methods[0], key="upload_viewer", height=640)

run_page(__file__, render)
