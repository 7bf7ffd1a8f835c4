"""Your own image: upload a DICOM or PNG (or use the built-in real chest film) and see its maps."""
import tempfile
from pathlib import Path

import streamlit as st

from trust_core.data import load_radiograph
from trust_core.errors import TrustError
from trust_core.saliency import METHODS
from ui.common import ensure_frame, friendly_errors, method_label, model_name, panel, preset, preset_note, workspace

ensure_frame(__file__)

MAX_BYTES = 64 * 2**20

st.title("Your own image")
st.caption("DICOM (any transfer syntax pydicom decodes), PNG or JPEG. Nothing leaves this machine; patient "
           "identifiers are not shown.")
preset_note()
source = st.radio("Image", ["Upload a file", "Example: real chest film RG1_UNCR (pydicom-data)"], horizontal=True)
path = None
if source.startswith("Upload"):
    upload = st.file_uploader("DICOM, PNG or JPEG", type=["dcm", "dicom", "png", "jpg", "jpeg"])
    if upload is None:
        st.stop()
    if upload.size > MAX_BYTES:
        st.error(f"{upload.name}: {upload.size / 2**20:.0f} MB is larger than the {MAX_BYTES // 2**20} MB limit.")
        st.stop()
    folder = Path(tempfile.mkdtemp(prefix="trust-upload-"))
    path = folder / Path(upload.name).name
    path.write_bytes(upload.getvalue())
else:
    from pydicom.data import get_testdata_file
    path = Path(get_testdata_file("RG1_UNCR.dcm"))

try:
    image = load_radiograph(path)
except TrustError as exc:
    st.error(f"This file cannot be used: {exc}")
    st.stop()

methods = st.multiselect("Methods", list(METHODS), default=list(METHODS), format_func=method_label)
st.caption(f"Model: **{model_name()}** (choose another in the sidebar)")
if not methods:
    st.stop()
with friendly_errors(), st.spinner("Computing maps (cached for this image)…"):
    result = workspace().maps_for_image(image, model_name(), methods=methods, preset=preset())
st.success(f"Explained class {int(result.targets[0])}; "
           + ("from the cache" if all(all(v) for v in result.from_cache.values())
              else f"{result.passes} forward+backward passes"))
cols = st.columns(4)
with cols[0]:
    panel(image, None, caption="Input", size=result[methods[0]].shape[1] * 2)
for k, m in enumerate(methods, start=1):
    with cols[k % 4]:
        panel(image, result[m][0], caption=method_label(m) + (f" — {result.flags[m][0]}" if result.flags[m][0] else ""))
