"""The image viewer every page that shows maps uses: a Streamlit component over a plain canvas (no build step).

Python sends the film once, at native resolution in its stored values, with every map as float32; the browser
then does window/level (drag or presets), opacity, colormap, threshold, method choice, synchronized zoom/pan,
the value under the cursor and randomization playback without a round trip. Settings come back (debounced)
only to be kept across images and pages. Why a hand-written canvas rather than plotly or a web DICOM viewer
library: see the README ("The image viewer").
"""
from __future__ import annotations

import base64
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import streamlit as st
import streamlit.components.v1 as components

from trust_core.report import COLORMAPS
from ui.state import open_image, shared

_FRONTEND = Path(__file__).parent / "viewer_frontend"
_component = components.declare_component("trust_viewer", path=str(_FRONTEND))

SIGNED_CMAP = "RdBu_r"  # differences (A − B): blue where B is higher, red where A is
# Window presets for plain films. Radiographs have no Hounsfield scale, so the CT presets (lung W1500/L−600…)
# do not transfer: each preset is a brightness-percentile window of the film at hand (low, high percentile),
# which opens lungs, mediastinum or bone alike on films of any bit depth and photometry.
WINDOW_PRESETS = {
    "full": (None, None),
    "lung": (1.0, 70.0),
    "mediastinum": (45.0, 99.5),
    "bone": (75.0, 99.9),
}
PRESET_HELP = {
    "full": "every stored value, black to white",
    "lung": "brightness percentiles 1–70 of this film: air and lung parenchyma spread out",
    "mediastinum": "brightness percentiles 45–99.5: heart, mediastinum and diaphragm",
    "bone": "brightness percentiles 75–99.9: ribs, clavicles and spine",
    "default": "the file's own display window: a DICOM header's Window Center/Width, else the range its stored "
               "bits can hold; for an ordinary image, its full range",
}
DEFAULT_SETTINGS = {"method": None, "opacity": 0.5, "cmap": COLORMAPS[0], "mode": "fade", "threshold": 0.5,
                    "top": 10, "window": {"preset": "default"}, "gt": True, "invert": False, "markers": True,
                    "seq": 0}  # default: the file's own window
# A preset spans at least this many stored levels: on an 8-bit film the bone and mediastinum percentiles hold
# 23 and 56 levels, which stretched over the display's 256 show as bands (posterized); widened about their
# centre to 96 levels, steps stay below ~3 display levels.
MIN_PRESET_LEVELS = 96
# The header's window is the default only where it frames the film: at least this share of the window's width
# holds stored values (a 16-bit MONOCHROME1 file declaring L 15000 W 30000 over values 0–4095 shows flat grey).
MIN_WINDOW_COVER = 0.25


def encode(array: np.ndarray) -> dict:
    """An array as the viewer decodes it: little-endian bytes, zlib-deflated, base64."""
    dtype = {np.dtype(np.uint8): ("u1", "<u1"), np.dtype(np.uint16): ("u2", "<u2"),
             np.dtype(np.float32): ("f4", "<f4")}[array.dtype]
    raw = np.ascontiguousarray(array, dtype=dtype[1]).tobytes()
    return {"shape": list(array.shape), "dtype": dtype[0], "data": base64.b64encode(zlib.compress(raw, 1)).decode()}


def film_payload(values: np.ndarray, *, inverted: bool = False, header_window=None, unit: str = "",
                 spacing=None, orientation: dict | None = None) -> dict:
    """A film in its stored (modality) values, losslessly as 8/16-bit integers where they are integers in
    range, else quantized to 16 bits; with the window presets computed on it, its pixel spacing ([row,
    column] mm, for distances) and the patient's orientation at its right and bottom edges (markers)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    integral = np.array_equal(values, np.round(values))
    if integral and hi - lo <= 255:
        stored, scale = (values - lo).astype(np.uint8), 1.0
    elif integral and hi - lo <= 65535:
        stored, scale = (values - lo).astype(np.uint16), 1.0
    else:
        scale = max(hi - lo, 1e-12) / 65535
        stored = np.round((values - lo) / scale).astype(np.uint16)
    presets = window_presets(values, inverted)
    help_ = dict(PRESET_HELP)
    if header_window is not None and frames_film(header_window, lo, hi):
        presets["default"] = [float(header_window[0]), float(header_window[1])]
    else:
        presets["default"] = presets["full"]
        if header_window is not None:
            help_["default"] = (f"the file's window (L {header_window[0]:g} W {header_window[1]:g}) misses its values "
                                f"({lo:g}–{hi:g}): the full range instead")
    return dict(encode(stored), offset=lo, scale=scale, lo=lo, hi=hi, inverted=bool(inverted), presets=presets,
                preset_help=help_, unit=unit, spacing=spacing, orientation=orientation)


def frames_film(window, lo: float, hi: float) -> bool:
    """Whether a (center, width) window frames values in [lo, hi]: at least :data:`MIN_WINDOW_COVER` of its
    width holds them (a header's window written for another range shows a flat film)."""
    center, width = float(window[0]), float(window[1])
    if not width > 0:
        return False
    low, high = center - width / 2, center + width / 2
    return max(0.0, min(high, hi) - max(low, lo)) >= MIN_WINDOW_COVER * width


def window_presets(values: np.ndarray, inverted: bool = False) -> dict[str, list[float]]:
    """``{preset: [center, width]}`` in stored units (DICOM linear window), per :data:`WINDOW_PRESETS`.
    Percentiles are of displayed brightness: on a MONOCHROME1 film the bright values are the low ones."""
    sample = values.ravel()[:: max(1, values.size // 250_000)]
    lo, hi = float(values.min()), float(values.max())
    out = {}
    for name, (p_low, p_high) in WINDOW_PRESETS.items():
        if p_low is None:
            a, b = lo, hi
        elif inverted:
            a, b = np.percentile(sample, [100 - p_high, 100 - p_low])
        else:
            a, b = np.percentile(sample, [p_low, p_high])
        width = max(float(b - a) + 1.0, 2.0)
        center = float(a) + 0.5 + (width - 1) / 2  # the window that maps a → 0 and b → 1
        if p_low is not None and np.array_equal(sample, np.round(sample)) and width < MIN_PRESET_LEVELS:
            width = min(float(MIN_PRESET_LEVELS), hi - lo + 1.0)  # integer levels: no banding
            # kept inside the film's values, so that the preset's brightest (darkest) level still shows white
            # (black): [center − width/2, center + width/2] within [lo − 0.5, hi + 0.5]
            center = min(max(center, lo - 0.5 + width / 2), hi + 0.5 - width / 2)
        out[name] = [center, width]
    return out


def truth_payload(dataset, image_id: str, framing: str, shape: tuple[int, int]) -> dict:
    """Ground truth in the film's pixel frame: each box on its own, else the mask's outline (sub-pixel)."""
    boxes = dataset.boxes(image_id, None, framing)
    if boxes:
        return {"boxes": [[float(b.x), float(b.y), float(b.width), float(b.height)] for b in boxes], "contours": []}
    mask = dataset.mask(image_id, shape, framing)
    if not mask.any():
        return {"boxes": [], "contours": []}
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    lines = [approximate_polygon(c - 1, tolerance=0.4) for c in find_contours(padded, 0.5)]
    return {"boxes": [], "contours": [[[float(x) + 0.5, float(y) + 0.5] for y, x in line] for line in lines]}


def map_panel(key: str, label: str, values: np.ndarray | None, *, caption: str = "", flag: str | None = None,
              signed: bool = False) -> dict:
    return {"key": key, "label": label, "caption": caption, "flag": flag, "signed": signed,
            "map": encode(np.asarray(values, dtype=np.float32)) if values is not None else None}


@st.cache_data(show_spinner=False, max_entries=4)
def _colormaps() -> dict[str, list[int]]:
    from matplotlib import colormaps

    ramp = np.linspace(0, 1, 256)
    return {name: (colormaps[name](ramp)[:, :3] * 255).round().astype(int).ravel().tolist()
            for name in (*COLORMAPS, SIGNED_CMAP)}


def settings(method: str | None = None) -> dict:
    """The viewer settings kept for this session (across images and pages), with ``method`` when given."""
    kept = dict(DEFAULT_SETTINGS, **shared("viewer", {}))
    if method is not None:
        kept["method"] = method
    return kept


def keep(value: dict | None, *, chooses_method: bool = True) -> None:
    """Keep what the viewer sent back (its settings) for every page, when it is newer than what is kept.
    Pages call it (through :func:`show`, or :func:`sync` before they read a setting) before they send
    settings, so that a reply never lags a change. Only a viewer that shows a method choice (the explorer
    layout) sets the explorer's method."""
    if isinstance(value, dict) and value.get("seq", 0) > shared("viewer", {}).get("seq", 0):
        st.session_state["_viewer"] = {k: value[k] for k in DEFAULT_SETTINGS if k in value}
        if chooses_method and value.get("method"):
            open_image(method=value["method"])


def sync(key: str, *, chooses_method: bool = True) -> None:
    """Take in what the viewer ``key`` sent since the last run (its settings), before the page reads them."""
    keep(st.session_state.get(key), chooses_method=chooses_method)


def show(film: dict, panels: list[dict], *, truth: dict, layout: str = "row", height: int = 520, key: str,
         method: str | None = None, frames: list[dict] | None = None, curve: dict | None = None,
         reference_title: str | None = None, columns: int = 4, focus: dict | None = None) -> None:
    """Render the viewer. ``layout``: ``explorer`` (the chosen method large, every method below, all in
    sync), ``row`` (the panels side by side) or ``states`` (a reference row and a played row of frames;
    ``focus`` ``{"frame": k, "token": t}`` moves it to frame k once per token: a click elsewhere)."""
    sync(key, chooses_method=layout == "explorer")
    args = dict(film=film, panels=panels, frames=frames, curve=curve, truth=truth, layout=layout, height=height,
                columns=columns, reference_title=reference_title)
    # what the browser must rebuild for: everything but the settings (which it keeps itself)
    digest = hashlib.blake2b(json.dumps(args, sort_keys=True).encode(), digest_size=12).hexdigest()
    value = _component(**args, settings=settings(method), colormaps=_colormaps(), cmaps=list(COLORMAPS),
                       data_key=digest, focus=focus, key=key, default=None)
    keep(value, chooses_method=layout == "explorer")


@st.cache_resource(show_spinner=False, max_entries=16)  # shared, never copied: payloads are not mutated
def _film(path: str, mtime: float, framing: str) -> dict:
    from trust_core.data import read_dicom, read_image
    from trust_core.data.images import IMAGE_SUFFIXES

    return film_of(read_image(path) if Path(path).suffix.lower() in IMAGE_SUFFIXES else read_dicom(path), framing)


def film_of(decoded, framing: str = "stretch") -> dict:
    """The payload of a decoded film: a ``DicomImage`` in its stored values, or a [0, 1] image (8-bit
    values back exactly, others quantized to 16 bits)."""
    from trust_core.data import DicomImage
    from trust_core.data.transforms import crop

    if isinstance(decoded, DicomImage):
        return film_payload(crop(decoded.modality_values, framing), inverted=decoded.inverted,
                            header_window=decoded.window, spacing=pixel_spacing(decoded.metadata),
                            orientation=patient_orientation(decoded.metadata))
    image = crop(np.asarray(decoded), framing).astype(np.float64)
    stored = image * 255  # an 8-bit film comes back to its stored values exactly
    return film_payload(np.round(stored) if np.allclose(stored, np.round(stored), atol=1e-3) else image)


def pixel_spacing(metadata: dict) -> list[float] | None:
    """[row, column] spacing in mm: Pixel Spacing, else Imager Pixel Spacing (at the detector: a radiograph's
    distances then read as at the detector, without magnification correction)."""
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = metadata.get(key)
        try:
            row, column = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0:
            return [row, column]
    return None


def patient_orientation(metadata: dict) -> dict | None:
    """The patient's direction at the film's right and bottom edges: from Patient Orientation (0020,0020),
    else, for a chest film taken PA or AP, the display convention of chest radiographs (the patient's left on
    the viewer's right, feet down), said as an assumption; None when the file says neither."""
    value = metadata.get("PatientOrientation")
    codes = [str(v).strip().upper() for v in value] if isinstance(value, (list, tuple)) else []
    if len(codes) == 2 and all(codes) and all(set(c) <= set("LRAPHF") for c in codes):
        return {"right": codes[0], "bottom": codes[1], "source": "from the file's Patient Orientation",
                "assumed": False}
    view = str(metadata.get("ViewPosition") or "").strip().upper()
    if view in ("PA", "AP") and str(metadata.get("BodyPartExamined") or "CHEST").strip().upper() == "CHEST":
        return {"right": "L", "bottom": "F", "source": f"assumed: a {view} chest film shown as chest films are read "
                                                      f"(no Patient Orientation in the file)", "assumed": True}
    return None


def film_for(dataset, image_id: str, framing: str) -> dict:
    """The payload of a dataset film (the part its model sees), cached per file and framing."""
    path = dataset.record(image_id).path
    return _film(str(path), path.stat().st_mtime, framing)


def navigation(key: str) -> int:
    """The previous (−1) or next (+1) image asked from the viewer ``key`` by the keyboard (← →, PgUp PgDn), once
    per key press (each carries a token); 0 when none is new."""
    value = st.session_state.get(key)
    nav = value.get("nav") if isinstance(value, dict) else None
    seen = f"_nav_{key}"
    if not isinstance(nav, dict) or nav.get("token") == st.session_state.get(seen):
        return 0
    st.session_state[seen] = nav.get("token")
    return nav["step"] if nav.get("step") in (-1, 1) else 0
